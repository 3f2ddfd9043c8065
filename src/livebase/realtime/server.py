"""The Socket.IO server: handshake, rooms, live authorization, and the event pipeline.

Services publish after-commit events on the event bus; this module listens,
keeps each socket's rooms and rights in step with permissions, and sends
every outgoing event through :mod:`router` then :mod:`delivery`. Nothing
else writes to sockets.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from dataclasses import replace
from functools import partial
from typing import Any

import socketio

from livebase.realtime import messages
from livebase.realtime.audience import Audience
from livebase.realtime.cluster import Manager
from livebase.realtime.codec import OrjsonCodec
from livebase.realtime.connections import Connection, Connections
from livebase.realtime.delivery import Delivery
from livebase.realtime.engine import EngineWorkarounds
from livebase.realtime.handshake import presented_token
from livebase.realtime.nodes import HEARTBEAT, NodeDirectory
from livebase.realtime.presence import Presence, SharedPresence
from livebase.realtime.pubsub.base import PubSub
from livebase.realtime.pubsub.memory import MemoryPubSub
from livebase.realtime.pubsub.redis import RedisPubSub
from livebase.realtime.rooms import (
    PRESENCE,
    RoomRefused,
    RoomRules,
    SocketInfo,
    collection_room,
    room_name,
    user_room,
)
from livebase.realtime.router import Router, stamped
from livebase.realtime.service import EventHandler, SocketService
from livebase.realtime.session import Session
from livebase.realtime.timers import Timers
from livebase.services.accountability import ADMIN_ROLE
from livebase.services.container import Services
from livebase.services.errors import ServiceError
from livebase.services.events import (
    ChangeEvent,
    Event,
    FileChanged,
    NotificationChanged,
    PermissionsChanged,
    SessionRevoked,
)
from livebase.settings import Settings

_log = logging.getLogger("livebase.realtime")
NAMESPACE = "/"
NOTIFICATION_FIELDS = ("id", "type", "title", "message", "data", "seen", "userId", "createdAt")
RESERVED_EVENTS = frozenset({"connect", "disconnect", "join", "leave", "message", "*"})
# Changes every process must see, whoever listens: they change sockets and caches.
CLUSTER_BOOKKEEPING = frozenset({"users", "schemas"})


class Realtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node_id = uuid.uuid4().hex[:12]
        self._manager = Manager(self.node_id)
        self._manager.on_connected = self.on_connected
        self._nodes: NodeDirectory | None = None
        origins = settings.SOCKET_CORS_ENABLED_ORIGINS or "*"
        self.sio = EngineWorkarounds(
            async_mode="asgi",
            client_manager=self._manager,
            cors_allowed_origins=origins,
            json=OrjsonCodec,
            max_http_buffer_size=settings.SOCKET_MAX_MESSAGE_SIZE,
            max_payload_depth=settings.SOCKET_MAX_PAYLOAD_DEPTH,
            ping_interval=settings.SOCKET_PING_INTERVAL,
            ping_timeout=settings.SOCKET_PING_TIMEOUT,
            logger=False,
            engineio_logger=False,
        )
        # Heartbeats (in the Engine.IO sessions) and token expiries share one set of timers.
        self.timers = self.sio.eio.timers = Timers()
        self._max_queue = settings.SOCKET_MAX_QUEUE
        # Packets python-socketio sends itself (acks) meet the byte bound too.
        self.sio.eio.on_overflow = self._session_overflow
        self._services: Services | None = None
        # Sockets between their handshake and "connect": each with the collections it auto-joins.
        self._pending: dict[str, tuple[Connection, list[str]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client_events: dict[str, EventHandler] = {}
        self.connections = Connections()
        self.socket = SocketService(self)
        self._register_handlers()

    def asgi(self, app: Any) -> socketio.ASGIApp:
        return socketio.ASGIApp(
            self.sio, other_asgi_app=app, socketio_path=self.settings.SOCKET_PATH
        )

    # -- wiring ------------------------------------------------------------------------

    async def attach(self, services: Services) -> None:
        """Start listening to the services' events (called once they have started)."""
        self._services = services
        self.audience = Audience(services.permissions, services.registry)
        self.rules = RoomRules(self.audience, services.items)
        excluded = set(self.settings.SOCKET_EXCLUDE_COLLECTIONS)
        self.router = Router(
            self._namespace_rooms, self.connections, self.audience, services.registry, excluded
        )
        self.delivery = Delivery(
            self.sio.eio.sockets,
            self._eio_sid_of,
            self._max_queue,
            self.settings.SOCKET_MAX_QUEUE_BYTES,
            self._drop_slow_consumer,
        )
        pubsub: PubSub = MemoryPubSub(self.node_id)  # one process: nothing crosses
        if services.redis is not None:
            pubsub = RedisPubSub(services.redis, self.settings.SOCKET_REDIS_KEY, self.node_id)
        await self._manager.start(pubsub, self._receive)
        shared = None
        if self._manager.clustered and services.redis is not None:
            self._nodes = NodeDirectory(services.redis, self.node_id)
            shared = SharedPresence(services.redis, self.node_id, self._nodes.prefix)
            await self._nodes.beat(self.stats())
            self._spawn(self._heartbeat())
        self.presence = Presence(self.settings.SOCKET_PRESENCE_GRACE, self.publish_to_room, shared)
        self._unsubscribe = services.events.subscribe(self._on_event)

    async def close(self) -> None:
        if self._services is not None:
            self._unsubscribe()
            self.presence.close()
        for sid in list(self.connections.by_sid):
            await self.sio.disconnect(sid)
        for task in list(self._tasks):
            task.cancel()
        await self._manager.stop()
        if self._nodes is not None:
            await self._nodes.leave()

    def _namespace_rooms(self) -> dict[str | None, Any]:
        rooms: dict[str | None, Any] = self._manager.rooms.get(NAMESPACE, {})
        return rooms

    def _eio_sid_of(self, sid: str) -> str | None:
        connection = self.connections.by_sid.get(sid)
        return connection.eio_sid if connection else None

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the pipeline's entry points ---------------------------------------------------

    def publish_to_room(self, room: str, event: str, payload: Any) -> None:
        if self._services is not None:
            self.delivery.deliver(self.router.to_room(room, event, payload))
            if self._manager.clustered:
                self._manager.send(messages.room(room, event, payload))

    def publish_to_everyone(self, event: str, payload: Any) -> None:
        if self._services is not None:
            self.delivery.deliver(self.router.to_everyone(event, payload))
            if self._manager.clustered:
                self._manager.send(messages.everyone(event, payload))

    def _publish_to_sid(self, sid: str, event: str, payload: Any) -> None:
        self.delivery.deliver(self.router.to_sid(sid, event, payload))

    async def _on_event(self, event: Event) -> None:
        """An event of this process: handle it here, then tell the other processes."""
        await self._handle(event)
        if not self._manager.clustered:
            return
        if isinstance(event, ChangeEvent):
            if event.collection == "schemas":
                await self._manager.send_confirmed(messages.change(event))
            else:
                shared = event.collection in CLUSTER_BOOKKEEPING
                self._manager.send(messages.change(event), None if shared else event.collection)
        elif isinstance(event, FileChanged):
            self._manager.send(messages.file(event))
        elif isinstance(event, SessionRevoked):
            self._manager.send(messages.revoke(event))
        elif isinstance(event, PermissionsChanged):
            await self._manager.send_confirmed(messages.permissions(event))
        # NotificationChanged becomes a room emit, which publish_to_room shares.

    async def _receive(self, message: dict[str, Any]) -> None:
        """An event of another process, in the order that process sent it."""
        services = self._services
        assert services is not None
        kind = message["type"]
        if kind == messages.CHANGE:
            event = messages.change_event(message, services.registry)
            if event.collection == "schemas":
                await services.registry.load()
                await services.permissions.load()
            await self._handle(event)
        elif kind == messages.ROOM:
            room, name, payload = message["room"], message["event"], message["payload"]
            self.delivery.deliver(self.router.to_room(room, name, payload))
        elif kind == messages.EVERYONE:
            self.delivery.deliver(self.router.to_everyone(message["event"], message["payload"]))
        elif kind == messages.FILE:
            await self._handle(messages.file_event(message, services.registry))
        elif kind == messages.REVOKE:
            await self._handle(messages.revoke_event(message))
        elif kind == messages.PERMISSIONS:
            await services.permissions.load()
            await self._handle(messages.permissions_event(message))

    async def _handle(self, event: Event) -> None:
        if isinstance(event, ChangeEvent):
            if event.collection == "users":
                await self._user_changed(event)
            elif event.collection == "schemas":
                # Schema changes are bookkeeping here, not item events for clients.
                await self._schema_changed(event)
                return
            self.delivery.deliver(self.router.change(event))
        elif isinstance(event, NotificationChanged):
            note = event.notification
            payload = {
                "notification": {k: note.get(k) for k in NOTIFICATION_FIELDS},
                "timestamp": event.timestamp,
            }
            self.publish_to_room(user_room(note["userId"]), f"notification.{event.action}", payload)
        elif isinstance(event, FileChanged):
            self.delivery.deliver(self.router.file(event))
        elif isinstance(event, SessionRevoked):
            for connection in self.connections.of_session(event.session_id):
                self.drop(connection.sid, "session revoked (logged out)")
        elif isinstance(event, PermissionsChanged):
            self.audience.forget_views()
            for connection in self.connections.of_role(event.role):
                await self._refresh(connection)

    # -- connecting and disconnecting --------------------------------------------------

    def _register_handlers(self) -> None:
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("join", self._on_join)
        self.sio.on("leave", self._on_leave)
        self.sio.on("*", self._on_unknown_event)

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
        if self._services is None:
            raise socketio.exceptions.ConnectionRefusedError("server is starting")
        token = presented_token(environ, auth)
        if token is None and not self.settings.SOCKET_ALLOW_ANONYMOUS:
            raise socketio.exceptions.ConnectionRefusedError("authentication required: no token")
        try:
            who = await self._services.auth.authenticate(token)
        except ServiceError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from None
        eio_sid = self._manager.eio_sid_from_sid(sid, NAMESPACE)
        collections = (
            self._services.permissions.readable_collections(who.role)
            if self.settings.SOCKET_AUTO_JOIN_COLLECTIONS
            else []
        )
        self._pending[sid] = (Connection(sid=sid, eio_sid=eio_sid, who=who), collections)
        # In a cluster: hear of changes made elsewhere before the client hears "connect".
        await self._manager.want(collections)
        return True

    async def on_connected(self, sid: str) -> None:
        pending = self._pending.pop(sid, None)
        if pending is None:
            return
        connection, collections = pending
        self.connections.add(connection)
        self.sio.forget_request(connection.eio_sid)
        if connection.user_id is not None:
            self._manager.join(sid, user_room(connection.user_id))
        for collection in collections:
            self._join_collection(connection, collection)
        self._schedule_expiry(connection)
        self._publish_to_sid(
            sid, "connected", {"userId": connection.user_id, "role": connection.role}
        )
        if connection.user_id is not None:
            await self.presence.arrived(
                connection.user_id, sid, self.connections.user_count(connection.user_id)
            )

    async def _on_disconnect(self, sid: str, reason: Any = None) -> Any:
        if self._client_sent(sid):
            return await self._on_unknown_event("disconnect", sid)
        self._pending.pop(sid, None)
        connection = self.connections.remove(sid)
        if connection is None:
            return
        self.timers.cancel(connection.expiry, sid)
        self.sio.end_long_poll(connection.eio_sid)
        for collection in connection.collections:
            self.audience.remove(sid, collection)
        if connection.user_id is not None:
            self.presence.left(
                connection.user_id, sid, self.connections.user_count(connection.user_id)
            )

    def drop(self, sid: str, reason: str, *, abort: bool = False) -> None:
        """Disconnect one socket, once, saying why in the log."""
        connection = self.connections.get(sid)
        if connection is None or connection.dropped:
            return
        connection.dropped = True
        _log.warning("disconnecting socket %s (user %s): %s", sid, connection.user_id, reason)
        self._spawn(self._disconnect(sid, connection.eio_sid, abort))

    def _drop_slow_consumer(self, sid: str, reason: str) -> None:
        self.drop(sid, reason, abort=True)

    def _session_overflow(self, session: Session) -> bool:
        """Whether ``session`` is past the byte bound, and so dropped, instead of sent more."""
        reason = session.over_bytes(self.settings.SOCKET_MAX_QUEUE_BYTES)
        if reason is None:
            return False
        sid = self.sio.manager.sid_from_eio_sid(session.sid, "/")
        if sid is not None and sid in self.connections.by_sid:
            self.drop(sid, reason, abort=True)
        elif not session.closed:
            _log.warning("disconnecting Engine.IO session %s: %s", session.sid, reason)
            self._spawn(self.sio.abort_session(session.sid))
        return True

    async def _disconnect(self, sid: str, eio_sid: str, abort: bool) -> None:
        await self.sio.disconnect(sid)
        if abort:
            # A slow consumer will never read its backlog (nor the goodbye behind it).
            await self.sio.abort_session(eio_sid)

    def _schedule_expiry(self, connection: Connection) -> None:
        if connection.expires_at is None:
            return
        delay = max(0.0, connection.expires_at.timestamp() - time.time())
        expire = partial(self._expire, connection.sid)
        connection.expiry = self.timers.call_later(delay, connection.sid, expire)

    def _expire(self, sid: str) -> None:
        if self.connections.get(sid) is None:
            return
        self._publish_to_sid(sid, "session.expired", stamped({"message": "token expired"}))
        self.drop(sid, "token expired")

    # -- rooms ---------------------------------------------------------------------------

    def _join_collection(self, connection: Connection, collection: str) -> bool:
        scope = self.audience.read_scope(connection, collection)
        if scope is None:
            return False
        self.audience.add(connection.sid, collection, scope)
        connection.collections.add(collection)
        self._manager.join(connection.sid, collection_room(collection))
        return True

    def _leave_collection(self, connection: Connection, collection: str) -> None:
        self.audience.remove(connection.sid, collection)
        connection.collections.discard(collection)
        self._manager.part(connection.sid, collection_room(collection))

    async def _on_join(self, sid: str, *args: Any) -> dict[str, Any]:
        connection = self.connections.get(sid)
        if connection is None:
            return {"success": False, "message": "not connected"}
        try:
            room = room_name(args[0] if args else None)
            self._check_room_count(connection, room)
            await self.rules.check_join(connection, room)
        except RoomRefused as exc:
            return {"success": False, "message": str(exc)}
        if room.startswith(("collection:", "item:")):
            await self._manager.want([room.split(":", 2)[1]])
        if room.startswith("collection:"):
            self._join_collection(connection, room.removeprefix("collection:"))
        else:
            self._manager.join(sid, room)
            if _counted(connection, room):
                connection.rooms.add(room)
        return {"success": True, "room": room}

    def _check_room_count(self, connection: Connection, room: str) -> None:
        """Refuse a room past ``SOCKET_MAX_ROOMS``: each one a socket is in costs memory."""
        bound = self.settings.SOCKET_MAX_ROOMS
        if not _counted(connection, room) or room in connection.rooms:
            return  # a rejoin adds nothing
        if len(connection.rooms) >= bound:
            raise RoomRefused(f"a socket may be in at most {bound} rooms besides its own")

    async def _on_leave(self, sid: str, *args: Any) -> dict[str, Any]:
        connection = self.connections.get(sid)
        if connection is None:
            return {"success": False, "message": "not connected"}
        try:
            room = room_name(args[0] if args else None)
        except RoomRefused as exc:
            return {"success": False, "message": str(exc)}
        if connection.user_id is not None and room == user_room(connection.user_id):
            return {"success": False, "message": "a socket always stays in its own user room"}
        if room.startswith("collection:"):
            self._leave_collection(connection, room.removeprefix("collection:"))
        else:
            self._manager.part(sid, room)
            connection.rooms.discard(room)
        return {"success": True, "room": room}

    # -- live authorization ----------------------------------------------------------------

    async def _refresh(self, connection: Connection) -> None:
        """Permissions or role changed: recompute this socket's rooms and rights."""
        for collection in list(connection.collections):
            scope = self.audience.read_scope(connection, collection)
            if scope is None:
                self._leave_collection(connection, collection)
            else:
                self.audience.add(connection.sid, collection, scope)
        if self.settings.SOCKET_AUTO_JOIN_COLLECTIONS:
            assert self._services is not None
            for collection in self._services.permissions.readable_collections(connection.role):
                if collection not in connection.collections:
                    self._join_collection(connection, collection)
            await self._manager.want(connection.collections)
        for room in list(self._manager.get_rooms(connection.sid, NAMESPACE)):
            if room.startswith("item:"):
                collection = room.split(":", 2)[1]
                if self.audience.read_scope(connection, collection) is None:
                    self._manager.part(connection.sid, room)
                    connection.rooms.discard(room)
            elif room == PRESENCE and self.audience.read_scope(connection, "users") is None:
                self._manager.part(connection.sid, room)
                connection.rooms.discard(room)

    async def _user_changed(self, event: ChangeEvent) -> None:
        for connection in self.connections.of_user(str(event.key)):
            if event.action == "delete":
                self.drop(connection.sid, "user deleted")
            elif event.item.get("status") != "active":
                self.drop(connection.sid, "user suspended")
            elif event.item.get("role") != connection.role:
                connection.who = replace(connection.who, role=event.item["role"])
                await self._refresh(connection)

    async def _schema_changed(self, event: ChangeEvent) -> None:
        self.audience.forget_views()
        name = str(event.key)
        if event.action == "delete":
            for sid in self.audience.drop_collection(name):
                connection = self.connections.get(sid)
                if connection is not None:
                    self._leave_collection(connection, name)
            return
        # A new or changed collection: scopes (fields) may differ; admins auto-join.
        for connection in list(self.connections.by_sid.values()):
            if name in connection.collections or (
                event.action == "create" and connection.role == ADMIN_ROLE
            ):
                await self._refresh(connection)

    # -- client events ---------------------------------------------------------------------

    def register_client_event(self, event: str, handler: EventHandler) -> None:
        if not isinstance(event, str) or not event or event in RESERVED_EVENTS:
            raise ValueError(f"cannot register a handler for {event!r}")
        self._client_events[event] = handler

        async def on_event(sid: str, *args: Any) -> Any:
            connection = self.connections.get(sid)
            if connection is None:
                return {"success": False, "message": "not connected"}
            info = SocketInfo(sid=sid, user_id=connection.user_id, role=connection.role)
            try:
                result = handler(info, args[0] if args else None)
                return await result if inspect.isawaitable(result) else result
            except Exception:
                _log.exception("client event handler for %r failed", event)
                return {"success": False, "message": f"handler for {event!r} failed"}

        self.sio.on(event, on_event)

    async def _on_unknown_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        return {"success": False, "message": f"unknown event {str(event)[:100]!r}"}

    # -- stats -------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Cluster only: publish this node's stats; drop channels nobody here listens to."""
        assert self._nodes is not None
        while True:
            await asyncio.sleep(HEARTBEAT)
            await self._nodes.beat(self.stats())
            await self._manager.keep_only(self._listened_collections())

    def _listened_collections(self) -> set[str]:
        listened = set(self.audience.collections())
        for room in self._namespace_rooms():
            if isinstance(room, str) and room.startswith("item:"):
                listened.add(room.split(":", 2)[1])
        return listened

    async def cluster_stats(self) -> dict[str, Any] | None:
        """Every node's stats and the totals, or None for one process (or Redis away)."""
        if self._nodes is None:
            return None
        nodes = await self._nodes.nodes()
        if nodes is None:
            return None
        here = self.stats()
        nodes = [here] + [n for n in nodes if n.get("nodeId") != self.node_id]
        nodes.sort(key=lambda n: str(n.get("nodeId")))
        return {
            "nodes": nodes,
            "total": {
                "nodes": len(nodes),
                "connections": sum(int(n.get("connections", 0)) for n in nodes),
                "delivered": sum(int(n.get("delivered", 0)) for n in nodes),
            },
        }

    def stats(self) -> dict[str, Any]:
        rooms = {
            name: len(members)
            for name, members in self._manager.rooms.get(NAMESPACE, {}).items()
            if name is not None and name not in self.connections.by_sid
        }
        return {
            "nodeId": self.node_id,
            "connections": len(self.connections),
            "users": self.connections.users,
            "rooms": rooms,
            "delivered": self.delivery.delivered if self._services is not None else 0,
            **({"pubsub": self._manager.counters()} if self._manager.clustered else {}),
        }


def _counted(connection: Connection, room: str) -> bool:
    """Whether ``room`` counts towards ``SOCKET_MAX_ROOMS``: not the socket's own user
    room, nor collection rooms (as many as the collections an administrator made).
    """
    if room.startswith("collection:"):
        return False
    return connection.user_id is None or room != user_room(connection.user_id)
