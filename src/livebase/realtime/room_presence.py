"""Room presence: who is in a room, with a state of their choosing (docs/realtime.md,
"Room presence"): the avatars on a board, the cursor colours, "Ann is editing".

A socket in a room *tracks* itself there with a JSON state; the room's
sockets get ``presence.join`` ``{room, key, userId, state}`` (``key`` is the
socket's id), again whenever the state changes. Untracking, leaving the room,
or disconnecting (after ``SOCKET_PRESENCE_GRACE``, so that a reconnect that
recovers its session says nothing) sends ``presence.leave`` ``{room, key,
userId}``. ``presence.list`` answers the members.

Members are kept where every process sees them: in one process, here; in a
cluster, a Redis hash per room, each member naming the process that holds
its socket, and a set per process of what it holds. A process that dies
without a word takes its members with it: the others find its heartbeat
gone (:mod:`nodes`, 10 s) and remove them, once, with their
``presence.leave``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from livebase import encoding
from livebase.realtime.connections import Connection
from livebase.realtime.emits import ToRoom
from livebase.realtime.rooms import PRESENCE, RoomRefused, room_name
from livebase.realtime.router import stamped
from livebase.storage.redis import RedisLink

MAX_STATE_BYTES = 4096
JOIN, LEAVE = "presence.join", "presence.leave"
REFUSED_PREFIXES = ("user:", "collection:", "admin:")

Ack = dict[str, Any]
Member = dict[str, Any]  # {key, userId, state}


class Members(Protocol):
    """Where a room's members are kept."""

    async def put(self, room: str, member: Member) -> bool: ...  # whether it is new
    async def remove(self, room: str, key: str) -> bool: ...  # whether it was there
    async def all(self, room: str) -> list[Member]: ...
    async def orphans(self) -> list[tuple[str, Member]]: ...  # members of dead processes


class LocalMembers:
    """One process: members in memory."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Member]] = {}

    async def put(self, room: str, member: Member) -> bool:
        members = self._rooms.setdefault(room, {})
        new = member["key"] not in members
        members[member["key"]] = member
        return new

    async def remove(self, room: str, key: str) -> bool:
        members = self._rooms.get(room)
        if members is None or members.pop(key, None) is None:
            return False
        if not members:
            del self._rooms[room]
        return True

    async def all(self, room: str) -> list[Member]:
        return list(self._rooms.get(room, {}).values())

    async def orphans(self) -> list[tuple[str, Member]]:
        return []


# KEYS[1]: the dead process's set of "room\0key"; ARGV: the rooms' key prefix, the
# dead process. Each member still its (a recovered socket's is its new process's)
# is removed once; the members removed come back, as [room, json, ...].
_TAKE_ORPHANS = """
local taken = {}
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local sep = string.find(entry, '\\0', 1, true)
  local room, key = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
  local member = redis.call('HGET', ARGV[1] .. room, key)
  if member and cjson.decode(member).node == ARGV[2] then
    redis.call('HDEL', ARGV[1] .. room, key)
    table.insert(taken, room)
    table.insert(taken, member)
  end
end
redis.call('DEL', KEYS[1])
return taken
"""


class SharedMembers:
    """A cluster: members in Redis, each owned by its socket's process."""

    def __init__(self, link: RedisLink, node_id: str, node_prefix: str) -> None:
        self._link = link
        self._node = node_id
        self._node_prefix = node_prefix  # a process is alive while this key + its id exists
        self._rooms = link.key("room-presence", "")
        self._held = link.key("room-presence-node", "")
        self._take: Any = link.client.register_script(_TAKE_ORPHANS)

    async def put(self, room: str, member: Member) -> bool:
        pipe = self._link.client.pipeline(transaction=True)
        pipe.hset(self._rooms + room, member["key"], encoding.dumps({**member, "node": self._node}))
        pipe.sadd(self._held + self._node, f"{room}\0{member['key']}")
        done = await self._link.attempt(pipe.execute())
        return bool(done and done[0])

    async def remove(self, room: str, key: str) -> bool:
        pipe = self._link.client.pipeline(transaction=True)
        pipe.hdel(self._rooms + room, key)
        pipe.srem(self._held + self._node, f"{room}\0{key}")
        done = await self._link.attempt(pipe.execute())
        return bool(done and done[0])

    async def all(self, room: str) -> list[Member]:
        found = await self._link.attempt(self._link.client.hgetall(self._rooms + room))
        return [_member(value) for value in (found or {}).values()]

    async def orphans(self) -> list[tuple[str, Member]]:
        """Take the members of processes whose heartbeat is gone (each taken once)."""
        client = self._link.client
        held = await self._link.attempt(_keys(client, self._held + "*"))
        taken: list[tuple[str, Member]] = []
        for key in held or []:
            node = key.decode().removeprefix(self._held)
            if node == self._node or await client.exists(self._node_prefix + node):
                continue
            found = await self._link.attempt(self._take(keys=[key], args=[self._rooms, node]))
            pairs = list(found or [])
            for room, member in zip(pairs[::2], pairs[1::2], strict=True):
                taken.append((room.decode(), _member(member)))
        return taken


class RoomPresence:
    def __init__(self, publish: Callable[[ToRoom], None], members: Members, grace: float) -> None:
        self._publish = publish
        self._members = members
        self._grace = grace
        self._leaving: dict[str, asyncio.TimerHandle] = {}  # sid -> its members' end
        self._tasks: set[asyncio.Task[None]] = set()

    def use(self, members: Members) -> None:
        """Keep members there from now on (a cluster's Redis, once it is known)."""
        self._members = members

    # -- what clients ask ---------------------------------------------------------------

    async def track(self, connection: Connection, raw: object) -> Ack:
        try:
            room = _room_of(connection, raw)
            state = raw.get("state", {}) if isinstance(raw, dict) else None
            if not isinstance(state, dict):
                raise RoomRefused("state must be a JSON object")
            if len(encoding.dumps(state)) > MAX_STATE_BYTES:
                raise RoomRefused(f"state is limited to {MAX_STATE_BYTES} bytes of JSON")
        except RoomRefused as exc:
            return _refused(str(exc))
        member = {"key": connection.sid, "userId": connection.user_id, "state": state}
        await self._members.put(room, member)
        connection.tracked[room] = state
        self._publish(ToRoom(room, JOIN, stamped({"room": room, **member})))
        return {"success": True, "room": room}

    async def untrack(self, connection: Connection, raw: object) -> Ack:
        try:
            room = room_name(raw)
        except RoomRefused as exc:
            return _refused(str(exc))
        if room not in connection.tracked:
            return _refused(f"not tracked in {room!r}")
        await self._gone(connection.sid, connection.user_id, room)
        connection.tracked.pop(room, None)
        return {"success": True, "room": room}

    async def list(self, connection: Connection, raw: object) -> Ack:
        try:
            room = _room_of(connection, raw)
        except RoomRefused as exc:
            return _refused(str(exc))
        members = await self._members.all(room)
        members.sort(key=lambda member: str(member["key"]))
        return {"success": True, "room": room, "members": members}

    # -- sockets leaving ----------------------------------------------------------------

    def left_room(self, connection: Connection, room: str) -> None:
        """``connection`` left ``room``: it is no longer a member there."""
        if connection.tracked.pop(room, None) is not None:
            self._spawn(self._gone(connection.sid, connection.user_id, room))

    def disconnected(self, connection: Connection) -> None:
        """Its members end after the grace, unless it recovers its session meanwhile."""
        if not connection.tracked:
            return
        rooms, user = dict(connection.tracked), connection.user_id
        loop = asyncio.get_running_loop()
        self._leaving[connection.sid] = loop.call_later(
            self._grace, lambda: self._spawn(self._all_gone(connection.sid, user, rooms))
        )

    async def recovered(self, connection: Connection, tracked: dict[str, Any]) -> None:
        """A recovered socket's memberships go on (held here now), without a word,
        unless they had ended (it came back after the grace): then it joins again."""
        self.stay(connection.sid)
        for room, state in tracked.items():
            if room in connection.rooms:
                member = {"key": connection.sid, "userId": connection.user_id, "state": state}
                if await self._members.put(room, member):
                    self._publish(ToRoom(room, JOIN, stamped({"room": room, **member})))
                connection.tracked[room] = state

    def stay(self, sid: str) -> None:
        """``sid`` recovered (here or elsewhere): its members do not end."""
        pending = self._leaving.pop(sid, None)
        if pending is not None:
            pending.cancel()

    async def sweep(self) -> None:
        """Cluster: end the members of processes that died."""
        for room, member in await self._members.orphans():
            self._publish(ToRoom(room, LEAVE, _leave(room, member["key"], member.get("userId"))))

    def close(self) -> None:
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()
        for task in self._tasks:
            task.cancel()

    async def _all_gone(self, sid: str, user: str | None, rooms: dict[str, Any]) -> None:
        self._leaving.pop(sid, None)
        for room in rooms:
            await self._gone(sid, user, room)

    async def _gone(self, sid: str, user: str | None, room: str) -> None:
        if await self._members.remove(room, sid):
            self._publish(ToRoom(room, LEAVE, _leave(room, sid, user)))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _room_of(connection: Connection, raw: object) -> str:
    room = room_name(raw)
    if room == PRESENCE or room.startswith(REFUSED_PREFIXES):
        raise RoomRefused(f"no room presence in {room!r}: it is the server's room")
    if room not in connection.rooms:
        raise RoomRefused(f"join {room!r} first")
    return room


def _leave(room: str, key: str, user: str | None) -> dict[str, Any]:
    return stamped({"room": room, "key": key, "userId": user})


def _member(value: Any) -> Member:
    member = dict(encoding.loads(value))
    member.pop("node", None)
    return member


async def _keys(client: Any, pattern: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=pattern, count=1000)]


def _refused(message: str) -> Ack:
    return {"success": False, "message": message}
