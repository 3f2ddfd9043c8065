"""Which rooms each socket is in (and which live queries it holds), and what goes
with being in one.

A collection room registers the socket's read scope with the audience (the
router fans item events out by scope); an item room or a custom room counts
towards ``SOCKET_MAX_ROOMS``; joining a collection's or an item's room
subscribes this process to the collection's changes in a cluster. Every
join and leave of the realtime server goes through here, so the three stay
in step. A socket's live queries (:mod:`live_queries`) come and go with it
like its rooms: they enter, are forgotten and are restored here too.
"""

from __future__ import annotations

from typing import Any

from livebase.realtime.audience import Audience
from livebase.realtime.cluster import NAMESPACE, Manager
from livebase.realtime.connections import Connection
from livebase.realtime.history import SocketHistory
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.room_presence import RoomPresence
from livebase.realtime.rooms import (
    PRESENCE,
    RoomRefused,
    RoomRules,
    collection_room,
    is_admin_room,
    user_room,
)
from livebase.realtime.router import Envelope
from livebase.services.permissions import PermissionService

COLLECTION = "collection:"
ITEM = "item:"


class Memberships:
    def __init__(
        self,
        manager: Manager,
        audience: Audience,
        rules: RoomRules,
        permissions: PermissionService,
        live: LiveQueries,
        presence: RoomPresence,
        history: SocketHistory,
        *,
        max_rooms: int,
        auto_join: bool,
    ) -> None:
        self._manager = manager
        self._audience = audience
        self._rules = rules
        self._permissions = permissions
        self._live = live
        self.presence = presence
        self._history = history
        self._max_rooms = max_rooms
        self._auto_join = auto_join

    def auto_joined(self, connection: Connection) -> list[str]:
        """The collections whose rooms ``connection`` joins without asking."""
        if not self._auto_join:
            return []
        return self._permissions.readable_collections(connection.role)

    async def want(self, collections: list[str] | set[str]) -> None:
        """In a cluster: hear of these collections' changes made elsewhere, from now on."""
        await self._manager.want(collections)

    def enter(
        self, connection: Connection, collections: list[str], rooms: list[str] | None = None
    ) -> None:
        """A socket has just connected: its own user room, its auto-joined collections
        and, when it recovered its session, the rooms it had (:meth:`still_allowed`)."""
        if connection.user_id is not None:
            self._manager.join(connection.sid, user_room(connection.user_id))
        for collection in collections:
            self.join_collection(connection, collection)
        for room in rooms or ():
            self._manager.join(connection.sid, room)
            if _counted(connection, room):
                connection.rooms.add(room)
        self._live.enter(connection)

    async def still_allowed(
        self, connection: Connection, collections: list[str], rooms: list[str]
    ) -> tuple[list[str], list[str]]:
        """Of a recovered session's rooms, those ``connection`` may be in now (rights
        and validators asked again), with the collections it auto-joins now (but
        not those it left: :attr:`Connection.left`)."""
        kept = [c for c in collections if self._audience.read_scope(connection, c) is not None]
        kept += [
            c for c in self.auto_joined(connection) if c not in kept and c not in connection.left
        ]
        allowed = []
        for room in rooms[: self._max_rooms]:
            try:
                await self._rules.check_join(connection, room)
            except RoomRefused:
                continue
            allowed.append(room)
        return kept, allowed

    async def restore_live(self, connection: Connection, stored: list[Any]) -> list[Envelope]:
        """A recovered session's live queries, asked again with the rights of now
        (:meth:`LiveQueries.restore`); the notices of those that ended."""
        return await self._live.restore(connection, stored)

    @staticmethod
    def channels(collections: list[str], rooms: list[str]) -> set[str]:
        """The collections whose changes a process must hear of for these rooms."""
        return set(collections) | {room.split(":", 2)[1] for room in rooms if room.startswith(ITEM)}

    def forget(self, connection: Connection) -> None:
        """A socket is gone: python-socketio forgets its rooms, the audience its scopes."""
        for collection in connection.collections:
            self._audience.remove(connection.sid, collection)
        self._live.forget(connection)
        self.presence.disconnected(connection)

    async def join(self, connection: Connection, room: str) -> None:
        """Put ``connection`` in ``room``, or raise :class:`RoomRefused` saying why not."""
        self._check_room_count(connection, room)
        await self._rules.check_join(connection, room)
        if room.startswith((COLLECTION, ITEM)):
            await self.want([room.split(":", 2)[1]])
        if room.startswith(COLLECTION):
            collection = room.removeprefix(COLLECTION)
            self.join_collection(connection, collection, "joined on request")
            connection.left.discard(collection)
        else:
            self._manager.join(connection.sid, room)
            if _counted(connection, room):
                connection.rooms.add(room)
                self._history.joined(connection.sid, room, "joined on request")

    def leave(self, connection: Connection, room: str) -> None:
        """Take ``connection`` out of ``room``; it can never leave its own user room."""
        if connection.user_id is not None and room == user_room(connection.user_id):
            raise RoomRefused("a socket always stays in its own user room")
        if room.startswith(COLLECTION):
            collection = room.removeprefix(COLLECTION)
            self.leave_collection(connection, collection, "left on request")
            connection.left.add(collection)
        else:
            self._part(connection, room, "left on request")

    def join_collection(self, connection: Connection, collection: str, why: str = "") -> bool:
        scope = self._audience.read_scope(connection, collection)
        if scope is None:
            return False
        self._audience.add(connection.sid, collection, scope)
        if collection not in connection.collections:
            connection.collections.add(collection)
            self._history.joined(connection.sid, collection_room(collection), why)
        self._manager.join(connection.sid, collection_room(collection))
        return True

    def leave_collection(self, connection: Connection, collection: str, why: str = "") -> None:
        self._audience.remove(connection.sid, collection)
        if collection in connection.collections:
            connection.collections.discard(collection)
            self._history.left(connection.sid, collection_room(collection), why)
        self._manager.part(connection.sid, collection_room(collection))

    async def refresh(self, connection: Connection) -> None:
        """Permissions or the role changed: keep the rooms ``connection`` may still be in,
        with its current rights, and auto-join the collections it may now read."""
        for collection in list(connection.collections):
            scope = self._audience.read_scope(connection, collection)
            if scope is None:
                self.leave_collection(
                    connection, collection, f"its role {connection.role!r} lost read on it"
                )
            else:
                self._audience.add(connection.sid, collection, scope)
        if self._auto_join:
            for collection in self.auto_joined(connection):
                if collection not in connection.collections and collection not in connection.left:
                    self.join_collection(connection, collection, "auto-joined: read granted")
            await self.want(connection.collections)
        for room in list(self._manager.get_rooms(connection.sid, NAMESPACE)):
            if room.startswith(ITEM):
                readable = self._audience.read_scope(connection, room.split(":", 2)[1])
            elif room == PRESENCE:
                readable = self._audience.read_scope(connection, "users")
            elif is_admin_room(room):
                if not connection.who.is_admin:  # the administrators' rooms: role, not scope
                    self._part(
                        connection, room, f"its role {connection.role!r} is not administrator"
                    )
                continue
            else:
                continue
            if readable is None:
                self._part(connection, room, f"its role {connection.role!r} lost read on it")

    async def keep_only_listened(self) -> None:
        """Cluster only: stop hearing of collections nobody here has listened to for a while."""
        listened = set(self._audience.collections()) | self._live.collections()
        for room in self._manager.rooms.get(NAMESPACE, {}):
            if isinstance(room, str) and room.startswith(ITEM):
                listened.add(room.split(":", 2)[1])
        await self._manager.keep_only(listened)

    def _part(self, connection: Connection, room: str, why: str) -> None:
        self._manager.part(connection.sid, room)
        if room in connection.rooms:
            connection.rooms.discard(room)
            self._history.left(connection.sid, room, why)
        self.presence.left_room(connection, room)

    def _check_room_count(self, connection: Connection, room: str) -> None:
        """Refuse a room past ``SOCKET_MAX_ROOMS``: each one a socket is in costs memory."""
        if not _counted(connection, room) or room in connection.rooms:
            return  # a rejoin adds nothing
        if len(connection.rooms) >= self._max_rooms:
            raise RoomRefused(f"a socket may be in at most {self._max_rooms} rooms besides its own")


def _counted(connection: Connection, room: str) -> bool:
    """Whether ``room`` counts towards ``SOCKET_MAX_ROOMS``: not the socket's own user
    room, nor collection rooms (as many as the collections an administrator made).
    """
    if room.startswith(COLLECTION):
        return False
    return connection.user_id is None or room != user_room(connection.user_id)
