"""What clients ask of the server: join, leave, subscribe, unsubscribe, broadcast, and
extension events.

Each handler answers a client; the rules it applies live elsewhere (who may
join a room in :mod:`rooms`, what a room means in :mod:`memberships`);
connecting and disconnecting are :mod:`lifecycle`'s. Acks are
``{success, ...}`` objects; a refusal never raises into python-socketio.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from livebase.realtime.broadcasts import Broadcasts
from livebase.realtime.connections import Connection, Connections
from livebase.realtime.engine import EngineWorkarounds, FollowedBy
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.memberships import Memberships
from livebase.realtime.rooms import RoomRefused, SocketInfo, room_name
from livebase.realtime.service import EventHandler

_log = logging.getLogger("livebase.realtime")
RESERVED_EVENTS = frozenset(
    {
        *("connect", "disconnect", "join", "leave", "subscribe", "unsubscribe", "broadcast"),
        *("presence.track", "presence.untrack", "presence.list", "message", "*"),
    }
)

Ack = dict[str, Any]


class ClientRequests:
    def __init__(
        self,
        sio: EngineWorkarounds,
        connections: Connections,
        memberships: Memberships,
        live: LiveQueries,
        broadcasts: Broadcasts,
        rooms_changed: Callable[[Connection], Awaitable[None]],
    ) -> None:
        self._sio = sio
        self._connections = connections
        self._memberships = memberships
        self._live = live
        self._broadcasts = broadcasts
        self._rooms_changed = rooms_changed  # stored: a recovery restores them

    def register(self) -> None:
        self._sio.on("join", self._on_join)
        self._sio.on("leave", self._on_leave)
        self._sio.on("subscribe", self._on_subscribe)
        self._sio.on("unsubscribe", self._on_unsubscribe)
        self._sio.on("broadcast", self._on_broadcast)
        self._sio.on("presence.track", self._on_track)
        self._sio.on("presence.untrack", self._on_untrack)
        self._sio.on("presence.list", self._on_list)
        self._sio.on("*", self._on_unknown_event)

    # -- rooms ---------------------------------------------------------------------------

    async def _on_join(self, sid: str, *args: Any) -> Ack:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        try:
            room = room_name(args[0] if args else None)
            await self._memberships.join(connection, room)
        except RoomRefused as exc:
            return _refused(str(exc))
        await self._rooms_changed(connection)
        return {"success": True, "room": room}

    async def _on_leave(self, sid: str, *args: Any) -> Ack:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        try:
            room = room_name(args[0] if args else None)
            self._memberships.leave(connection, room)
        except RoomRefused as exc:
            return _refused(str(exc))
        await self._rooms_changed(connection)
        return {"success": True, "room": room}

    # -- live queries ----------------------------------------------------------------------

    async def _on_subscribe(self, sid: str, *args: Any) -> Ack | FollowedBy:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        return await self._live.subscribe(connection, args[0] if args else None)

    async def _on_unsubscribe(self, sid: str, *args: Any) -> Ack:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        return await self._live.unsubscribe(connection, args[0] if args else None)

    # -- collaboration ---------------------------------------------------------------------

    async def _on_broadcast(self, sid: str, *args: Any) -> Ack:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        return await self._broadcasts.send(connection, args[0] if args else None)

    async def _on_track(self, sid: str, *args: Any) -> Ack:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        answer = await self._memberships.presence.track(connection, args[0] if args else None)
        await self._rooms_changed(connection)  # a recovery tracks it again
        return answer

    async def _on_untrack(self, sid: str, *args: Any) -> Ack:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        answer = await self._memberships.presence.untrack(connection, args[0] if args else None)
        await self._rooms_changed(connection)
        return answer

    async def _on_list(self, sid: str, *args: Any) -> Ack:
        connection = self._connections.get(sid)
        if connection is None:
            return _refused("not connected")
        return await self._memberships.presence.list(connection, args[0] if args else None)

    async def _on_unknown_event(self, event: str, sid: str, *args: Any) -> Ack:
        return unknown_event(event)


class ExtensionEvents:
    """Client events that extensions handle (``services.socket.register_event_handler``)."""

    def __init__(self, sio: EngineWorkarounds, connections: Connections) -> None:
        self._sio = sio
        self._connections = connections

    def register(self, event: str, handler: EventHandler) -> None:
        if not isinstance(event, str) or not event or event in RESERVED_EVENTS:
            raise ValueError(f"cannot register a handler for {event!r}")

        async def on_event(sid: str, *args: Any) -> Any:
            connection = self._connections.get(sid)
            if connection is None:
                return _refused("not connected")
            info = SocketInfo(sid=sid, user_id=connection.user_id, role=connection.role)
            try:
                result = handler(info, args[0] if args else None)
                return await result if inspect.isawaitable(result) else result
            except Exception:
                _log.exception("client event handler for %r failed", event)
                return _refused(f"handler for {event!r} failed")

        self._sio.on(event, on_event)


def unknown_event(event: Any) -> Ack:
    return _refused(f"unknown event {str(event)[:100]!r}")


def _refused(message: str) -> Ack:
    return {"success": False, "message": message}
