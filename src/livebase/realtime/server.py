"""The realtime server, wired in one place.

:class:`Realtime` builds the parts and connects them; it holds no rules.

- :mod:`lifecycle`: sockets connecting (new, or recovering their session
  through :mod:`recovery`) and going;
- :mod:`requests`: what clients ask (join, leave, subscribe, unsubscribe,
  events of extensions);
- :mod:`live_queries`: subscriptions to queries, and the changes to them;
- :mod:`pipeline` driven by :mod:`event_kinds`: every event, from the
  services' event bus or another process, through :mod:`router` (who gets
  which payload) and :mod:`delivery` (writing to sockets);
- :mod:`authorization`: sockets' rooms and rights following users, roles,
  permissions, schemas, sessions and token expiry;
- :mod:`memberships`: rooms and what goes with them;
- :mod:`eviction`: disconnecting sockets the server no longer wants;
- :mod:`stats`: ``/stats/realtime``, here and across a cluster;
- :mod:`inspector`: the administrators' live view (``/admin/``, the room
  ``admin:inspector``, ``/stats/realtime/sockets``).

Nothing else writes to sockets.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio

from livebase.realtime.audience import Audience
from livebase.realtime.authorization import LiveAuthorization
from livebase.realtime.broadcasts import Broadcasts
from livebase.realtime.cluster import NAMESPACE, Manager
from livebase.realtime.codec import OrjsonCodec
from livebase.realtime.connections import Connection, Connections, SocketTakenOver
from livebase.realtime.delivery import Delivery
from livebase.realtime.emits import ToEveryone, ToRoom
from livebase.realtime.engine import EngineWorkarounds
from livebase.realtime.event_kinds import event_kinds
from livebase.realtime.eviction import Eviction
from livebase.realtime.history import SocketHistory
from livebase.realtime.inspector import MAX_SOCKETS, Inspector
from livebase.realtime.inspector import QUESTION as SOCKETS_QUESTION
from livebase.realtime.lifecycle import SocketLifecycle
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.memberships import Memberships
from livebase.realtime.nodes import HEARTBEAT, NodeDirectory
from livebase.realtime.offsets import Progress
from livebase.realtime.pipeline import Pipeline
from livebase.realtime.presence import Presence, SharedPresence
from livebase.realtime.pubsub.base import PubSub
from livebase.realtime.pubsub.memory import MemoryPubSub
from livebase.realtime.pubsub.redis import RedisPubSub
from livebase.realtime.recovery import Recovery
from livebase.realtime.replay import Replay
from livebase.realtime.requests import ClientRequests, ExtensionEvents
from livebase.realtime.room_presence import LocalMembers, Members, RoomPresence, SharedMembers
from livebase.realtime.rooms import RoomRules
from livebase.realtime.router import Router
from livebase.realtime.service import EventHandler, SocketService
from livebase.realtime.stats import Figures, RealtimeStats
from livebase.realtime.stored_sessions import (
    RENEW_EVERY,
    RedisSessions,
    SessionBook,
    SessionStore,
)
from livebase.realtime.tasks import TaskSet
from livebase.realtime.timers import Timers
from livebase.realtime.trace import DeliveryTrace
from livebase.services.container import Services
from livebase.services.errors import BadRequest
from livebase.settings import Settings
from livebase.storage.socket_sessions import DatabaseSessions

_log = logging.getLogger("livebase.realtime")


class Realtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.node_id = uuid.uuid4().hex[:12]
        self._manager = Manager(self.node_id)
        self.sio = EngineWorkarounds(
            async_mode="asgi",
            client_manager=self._manager,
            cors_allowed_origins=settings.SOCKET_CORS_ENABLED_ORIGINS or "*",
            json=OrjsonCodec,
            max_http_buffer_size=settings.SOCKET_MAX_MESSAGE_SIZE,
            max_payload_depth=settings.SOCKET_MAX_PAYLOAD_DEPTH,
            ping_interval=settings.SOCKET_PING_INTERVAL,
            ping_timeout=settings.SOCKET_PING_TIMEOUT,
            logger=False,
            engineio_logger=False,
        )
        # Until attach() sets ``sio.admit``, connects are refused: "server is starting".
        # Heartbeats (in the Engine.IO sessions) and token expiries share one set of timers.
        self.timers = self.sio.eio.timers = Timers()
        self.connections = Connections()
        self.progress = Progress()
        self._tasks = TaskSet()
        self.history = SocketHistory(
            self.progress, settings.CHANGE_LOG_RETENTION, self._transport_of
        )
        self.eviction = Eviction(
            self.sio,
            self.connections,
            self._tasks,
            settings.SOCKET_MAX_QUEUE,
            settings.SOCKET_MAX_QUEUE_BYTES,
            self.history,
        )
        # Packets python-socketio sends itself (acks) meet the byte bound too.
        self.sio.eio.on_overflow = self.eviction.overflowed
        self._extension_events = ExtensionEvents(self.sio, self.connections)
        self.broadcasts = Broadcasts(self._publish_now, settings.SOCKET_BROADCAST_RATE)
        self.socket = SocketService(self)
        self._attached: _Attached | None = None

    def asgi(self, app: Any) -> socketio.ASGIApp:
        return socketio.ASGIApp(
            self.sio, other_asgi_app=app, socketio_path=self.settings.SOCKET_PATH
        )

    async def attach(self, services: Services) -> None:
        """Build the parts that need the services, start sharing with the other
        processes, and start listening to the services' events and to clients."""
        settings = self.settings
        audience = Audience(services.permissions, services.registry)
        self.rules = RoomRules(audience, services.items)
        self.delivery = Delivery(
            self.sio.eio.sockets,
            self.connections.by_sid,
            self.progress,
            settings.SOCKET_MAX_QUEUE,
            settings.SOCKET_MAX_QUEUE_BYTES,
            self.eviction.drop_slow_consumer,
        )
        self.live = live = LiveQueries(
            services.live,
            self.connections,
            self.delivery,
            self.progress,
            self._manager.want,
            self._tasks.spawn,
            max_subscriptions=settings.SOCKET_MAX_SUBSCRIPTIONS,
        )
        # Room presence keeps its members in Redis once the cluster is known (below).
        self._room_presence = room_presence = RoomPresence(
            self._publish_now, LocalMembers(), settings.SOCKET_PRESENCE_GRACE
        )
        memberships = Memberships(
            self._manager,
            audience,
            self.rules,
            services.permissions,
            live,
            room_presence,
            self.history,
            max_rooms=settings.SOCKET_MAX_ROOMS,
            auto_join=settings.SOCKET_AUTO_JOIN_COLLECTIONS,
        )
        self._router = router = Router(
            self._namespace_rooms,
            self.connections,
            audience,
            services.registry,
            set(settings.SOCKET_EXCLUDE_COLLECTIONS),
        )
        tell = self._tell
        authorization = LiveAuthorization(
            self.connections,
            memberships,
            live,
            audience,
            services.permissions,
            services.registry,
            self.eviction,
            self.timers,
            tell,
            self.history,
        )
        kinds = event_kinds(
            router, live, self.delivery, authorization, services.registry, self._taken_over
        )
        self._pipeline = Pipeline(kinds, self._manager, self.progress)
        self._pipeline.start_at(await services.relay.log.published())
        pubsub: PubSub = MemoryPubSub(self.node_id)  # one process: nothing crosses
        if services.redis is not None:
            pubsub = RedisPubSub(services.redis, settings.SOCKET_REDIS_KEY, self.node_id)
        await self._manager.start(pubsub, self._pipeline.receive)
        nodes = shared = None
        if self._manager.clustered and services.redis is not None:
            nodes = NodeDirectory(services.redis, self.node_id)
            shared = SharedPresence(services.redis, self.node_id, nodes.prefix)
        presence = Presence(settings.SOCKET_PRESENCE_GRACE, self.publish_to_room, shared)
        if nodes is not None and services.redis is not None:
            members: Members = SharedMembers(services.redis, self.node_id, nodes.prefix)
            room_presence.use(members)
        recovery = None
        if settings.SOCKET_RECOVERY_WINDOW > 0:
            store: SessionStore = DatabaseSessions(services.db)
            if services.redis is not None:
                store = RedisSessions(services.redis)
            recovery = Recovery(
                SessionBook(store, settings.SOCKET_RECOVERY_WINDOW),
                Replay(services.relay, router, live, settings.SOCKET_RECOVERY_MAX_EVENTS),
                services.relay.log,
                memberships,
                self.progress,
                lambda: self._manager.clustered,
            )
            recovery.on_refused = self.history.refused
            self._tasks.spawn(self._renew_sessions(recovery.book))
        self._stats = RealtimeStats(
            self.sio.eio.sockets,
            self._manager,
            self.connections,
            self.delivery,
            nodes,
            recovery,
            live,
        )
        self._inspector = Inspector(
            self.sio.eio.sockets,
            self._manager,
            self.connections,
            self._stats,
            services.relay,
            services.items,
            tell,
            self._manager.ask,
        )
        self._tasks.spawn(self._inspector.run())
        self._lifecycle = SocketLifecycle(
            self.sio,
            self._manager,
            self.connections,
            services.auth,
            memberships,
            authorization,
            presence,
            self.delivery,
            recovery,
            self.eviction,
            self.history,
            allow_anonymous=settings.SOCKET_ALLOW_ANONYMOUS,
        )
        self._trace = DeliveryTrace(
            services.relay,
            router,
            audience,
            services.permissions,
            services.registry,
            self.history,
            self.connections,
            self.delivery,
            self._manager,
            auto_join=settings.SOCKET_AUTO_JOIN_COLLECTIONS,
        )
        self._manager.answer = self._answer
        self._lifecycle.take_over = self._pipeline.publish_now
        self._lifecycle.register()
        rooms_changed = recovery.book.save if recovery is not None else _nothing
        live.save = rooms_changed
        ClientRequests(
            self.sio, self.connections, memberships, live, self.broadcasts, rooms_changed
        ).register()
        unsubscribe = services.events.subscribe(self._pipeline.publish)
        self._attached = _Attached(nodes, presence, unsubscribe, recovery)
        if nodes is not None:
            await self._stats.beat()
            self._tasks.spawn(self._heartbeat(memberships))

    async def close(self) -> None:
        attached = self._attached
        if attached is not None:
            attached.unsubscribe()
            attached.presence.close()
            self._room_presence.close()
        for sid in list(self.connections.by_sid):
            await self.sio.disconnect(sid)
        if attached is not None and attached.recovery is not None:
            await attached.recovery.book.close()  # the sessions of the sockets just closed
        self._tasks.cancel()
        await self._manager.stop()
        if attached is not None and attached.nodes is not None:
            await attached.nodes.leave()

    # -- what services.socket and presence use ------------------------------------------

    def publish_to_room(self, room: str, event: str, payload: Any) -> None:
        self._publish_now(ToRoom(room, event, payload))

    def publish_to_everyone(self, event: str, payload: Any) -> None:
        self._publish_now(ToEveryone(event, payload))

    def _publish_now(self, emit: ToRoom | ToEveryone) -> None:
        if self._attached is not None:
            self._pipeline.publish_now(emit)

    def register_client_event(self, event: str, handler: EventHandler) -> None:
        self._extension_events.register(event, handler)

    # -- stats --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self._stats.here()

    def figures(self) -> Figures | None:
        """This process's sockets as the metrics show them; None before start-up."""
        return self._stats.figures() if self._attached is not None else None

    async def cluster_stats(self) -> dict[str, Any] | None:
        """Every node's stats and the totals, or None for one process (or Redis away)."""
        return await self._stats.cluster()

    async def trace(self, position: int, user_id: str) -> dict[str, Any] | None:
        """The delivery trace of one log entry for one user's sockets, cluster-wide
        (None: the log does not hold that entry); see :mod:`trace`."""
        return await self._trace.trace(position, user_id)

    async def sockets(self, limit: int | None = None) -> dict[str, Any]:
        """Every node's sockets, at most ``limit`` (by default and at most
        ``inspector.MAX_SOCKETS``; BadRequest past it), with the total."""
        if limit is None:
            limit = MAX_SOCKETS
        if not 1 <= limit <= MAX_SOCKETS:
            raise BadRequest(f"limit must be a number from 1 to {MAX_SOCKETS}")
        return await self._inspector.sockets(limit)

    async def _heartbeat(self, memberships: Memberships) -> None:
        """Cluster only: say this process is alive, with its stats; drop channels
        nobody here listens to any more."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            await self._stats.beat()
            await memberships.keep_only_listened()
            try:
                await self._room_presence.sweep()
            except Exception:
                _log.exception("ending the room presence of gone processes failed")

    async def _renew_sessions(self, book: SessionBook) -> None:
        """Connected sockets' stored sessions stay recoverable; expired ones go."""
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await book.renew(list(self.connections.by_sid.values()))
            except Exception:
                _log.exception("renewing the stored socket sessions failed")

    # -- plumbing -----------------------------------------------------------------------

    def _taken_over(self, event: SocketTakenOver) -> None:
        self._lifecycle.taken_over(event)

    async def _answer(self, what: str, body: Any) -> Any:
        """Another process's question (``Manager.ask``), to the part that answers it."""
        if what == SOCKETS_QUESTION:
            return await self._inspector.answer(what, body)
        return await self._trace.answer(what, body)

    def _tell(self, sid: str, event: str, payload: Any) -> None:
        """Send one socket an event of its own (``connected``, ``session.expired``)."""
        self.delivery.deliver(self._router.to_sid(sid, event, payload))

    def _transport_of(self, eio_sid: str) -> str | None:
        session = self.sio.eio.sockets.get(eio_sid)
        if session is None:
            return None
        return "websocket" if session.upgraded else "polling"

    def _namespace_rooms(self) -> dict[str | None, Any]:
        rooms: dict[str | None, Any] = self._manager.rooms.get(NAMESPACE, {})
        return rooms


@dataclass(frozen=True)
class _Attached:
    """What :meth:`Realtime.close` stops of what :meth:`Realtime.attach` started."""

    nodes: NodeDirectory | None
    presence: Presence
    unsubscribe: Callable[[], None]
    recovery: Recovery | None


async def _nothing(connection: Connection) -> None:
    return None
