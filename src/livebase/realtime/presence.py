"""Who is online: ``user.connected`` / ``user.disconnected`` with a grace period.

In a cluster a user is online once, from their first socket on any process
until their last one anywhere has been gone for the grace period. Each
process counts its own sockets and keeps one mark per (user, process) in
Redis; the mark is set and cleared by a script, so exactly one process sees
the first arrival and exactly one sees the last departure. While Redis is
away each process decides from its own sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from livebase.realtime.rooms import PRESENCE
from livebase.realtime.router import stamped
from livebase.storage.redis import RedisLink

Announce = Callable[[str, str, dict[str, object]], None]  # (room, event, payload)

# KEYS[1]: the user's marks; ARGV: this process, the node-key prefix. Marks of
# processes whose heartbeat key expired are dropped; returns how many remain.
_MARKS_LEFT = """
for _, node in ipairs(redis.call('HKEYS', KEYS[1])) do
  if node ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. node) == 0 then
    redis.call('HDEL', KEYS[1], node)
  end
end
return redis.call('HLEN', KEYS[1])
"""
_ARRIVE = "redis.call('HSET', KEYS[1], ARGV[1], 1)\n" + _MARKS_LEFT
_LEAVE = "redis.call('HDEL', KEYS[1], ARGV[1])\n" + _MARKS_LEFT


class SharedPresence:
    """The cluster-wide half: is this the user's first / last process?"""

    def __init__(self, link: RedisLink, node_id: str, node_prefix: str) -> None:
        self._link = link
        self._args = (node_id, node_prefix)
        self._arrive: Any = link.client.register_script(_ARRIVE)
        self._leave: Any = link.client.register_script(_LEAVE)

    async def first(self, user_id: str) -> bool | None:
        marks = await self._link.attempt(self._arrive(keys=[self._key(user_id)], args=self._args))
        return None if marks is None else marks == 1

    async def last(self, user_id: str) -> bool | None:
        marks = await self._link.attempt(self._leave(keys=[self._key(user_id)], args=self._args))
        return None if marks is None else marks == 0

    def _key(self, user_id: str) -> str:
        return self._link.key("presence", user_id)


class Presence:
    """A user is online from their first socket until their last one has been
    gone for ``grace`` seconds; a reconnect within the grace emits nothing."""

    def __init__(self, grace: float, announce: Announce, shared: SharedPresence | None) -> None:
        self._grace = grace
        self._announce = announce
        self._shared = shared
        self._leaving: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def arrived(
        self, user_id: str, sid: str, sockets_now: int, *, announce: bool = True
    ) -> None:
        """A socket of ``user_id`` is in; without ``announce`` (it took over a socket
        still connected) the user was online all along."""
        pending = self._leaving.pop(user_id, None)
        if pending is not None:
            pending.cancel()  # back within the grace: still online, say nothing
            return
        if sockets_now != 1:
            return
        first = await self._shared.first(user_id) if self._shared else None
        if first is not False and announce:
            self._announce(
                PRESENCE, "user.connected", stamped({"userId": user_id, "socketId": sid})
            )

    def left(self, user_id: str, sid: str, sockets_now: int) -> None:
        if sockets_now > 0 or user_id in self._leaving:
            return
        loop = asyncio.get_running_loop()
        self._leaving[user_id] = loop.call_later(self._grace, self._gone, user_id, sid)

    async def moved_away(self, user_id: str, sockets_now: int) -> None:
        """A socket of ``user_id`` went on in another one (a recovery): no word of it."""
        if sockets_now == 0 and user_id not in self._leaving and self._shared is not None:
            await self._shared.last(user_id)

    def _gone(self, user_id: str, sid: str) -> None:
        self._leaving.pop(user_id, None)
        task = asyncio.ensure_future(self._announce_gone(user_id, sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_gone(self, user_id: str, sid: str) -> None:
        last = await self._shared.last(user_id) if self._shared else None
        if last is not False:
            payload = stamped({"userId": user_id, "socketId": sid})
            self._announce(PRESENCE, "user.disconnected", payload)

    def close(self) -> None:
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()
        for task in self._tasks:
            task.cancel()
