"""What clients ask of the server: connect, disconnect, join, leave, and extension events.

Each handler answers a client; the rules it applies live elsewhere (who may
connect in ``services.auth``, who may join a room in :mod:`rooms`, what a
room means in :mod:`memberships`). Acks are ``{success, ...}`` objects; a
refusal never raises into python-socketio.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import socketio

from livebase.realtime.authorization import LiveAuthorization
from livebase.realtime.cluster import NAMESPACE, Manager
from livebase.realtime.connections import Connection, Connections
from livebase.realtime.engine import EngineWorkarounds
from livebase.realtime.handshake import presented_token
from livebase.realtime.memberships import Memberships
from livebase.realtime.presence import Presence
from livebase.realtime.rooms import RoomRefused, SocketInfo, room_name
from livebase.realtime.service import EventHandler
from livebase.services.auth import AuthService
from livebase.services.errors import ServiceError

_log = logging.getLogger("livebase.realtime")
RESERVED_EVENTS = frozenset({"connect", "disconnect", "join", "leave", "message", "*"})

Ack = dict[str, Any]
Tell = Callable[[str, str, Any], None]  # (sid, event, payload)


class ClientRequests:
    def __init__(
        self,
        sio: EngineWorkarounds,
        manager: Manager,
        connections: Connections,
        auth: AuthService,
        memberships: Memberships,
        authorization: LiveAuthorization,
        presence: Presence,
        tell: Tell,
        *,
        allow_anonymous: bool,
    ) -> None:
        self._sio = sio
        self._manager = manager
        self._connections = connections
        self._auth = auth
        self._memberships = memberships
        self._authorization = authorization
        self._presence = presence
        self._tell = tell
        self._allow_anonymous = allow_anonymous
        # Sockets between their handshake and "connect": each with the collections it auto-joins.
        self._pending: dict[str, tuple[Connection, list[str]]] = {}

    def register(self) -> None:
        """Take over python-socketio's handlers (replacing the "server is starting" refusal)."""
        self._sio.on("connect", self._on_connect)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on("join", self._on_join)
        self._sio.on("leave", self._on_leave)
        self._sio.on("*", self._on_unknown_event)
        self._manager.on_connected = self._on_connected

    # -- connecting and disconnecting --------------------------------------------------

    def _client_sent(self, sid: str) -> bool:
        """Whether a "connect"/"disconnect" call is really an event a client emitted.

        python-socketio dispatches client events by name, so ``42["disconnect"]``
        reaches the disconnect handler; during a real handshake or disconnect
        the socket is pending, during a client's event it is connected.
        """
        return bool(self._manager.is_connected(sid, NAMESPACE))

    async def _on_connect(self, sid: str, environ: Any = None, auth: Any = None) -> Any:
        if self._client_sent(sid):
            return await self._on_unknown_event("connect", sid)
        token = presented_token(environ, auth)
        if token is None and not self._allow_anonymous:
            raise socketio.exceptions.ConnectionRefusedError("authentication required: no token")
        try:
            who = await self._auth.authenticate(token)
        except ServiceError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from None
        eio_sid = self._manager.eio_sid_from_sid(sid, NAMESPACE)
        connection = Connection(sid=sid, eio_sid=eio_sid, who=who)
        collections = self._memberships.auto_joined(connection)
        self._pending[sid] = (connection, collections)
        # In a cluster: hear of changes made elsewhere before the client hears "connect".
        await self._memberships.want(collections)
        return True

    async def _on_connected(self, sid: str) -> None:
        """python-socketio has sent CONNECT: the socket is in, rooms and events may follow."""
        pending = self._pending.pop(sid, None)
        if pending is None:
            return
        connection, collections = pending
        self._connections.add(connection)
        self._sio.forget_request(connection.eio_sid)
        self._memberships.enter(connection, collections)
        self._authorization.schedule_expiry(connection)
        self._tell(sid, "connected", {"userId": connection.user_id, "role": connection.role})
        if connection.user_id is not None:
            await self._presence.arrived(
                connection.user_id, sid, self._connections.user_count(connection.user_id)
            )

    async def _on_disconnect(self, sid: str, reason: Any = None) -> Any:
        if self._client_sent(sid):
            return await self._on_unknown_event("disconnect", sid)
        self._pending.pop(sid, None)
        connection = self._connections.remove(sid)
        if connection is None:
            return None
        self._authorization.cancel_expiry(connection)
        self._sio.end_long_poll(connection.eio_sid)
        self._memberships.forget(connection)
        if connection.user_id is not None:
            self._presence.left(
                connection.user_id, sid, self._connections.user_count(connection.user_id)
            )
        return None

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
        return {"success": True, "room": room}

    async def _on_unknown_event(self, event: str, sid: str, *args: Any) -> Ack:
        return _refused(f"unknown event {str(event)[:100]!r}")


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


def _refused(message: str) -> Ack:
    return {"success": False, "message": message}
