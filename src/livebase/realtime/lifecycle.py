"""A socket's life: admitted (new, or recovering its session), in, gone, or taken over.

- :meth:`SocketLifecycle.admit` decides during the handshake who the
  socket is (``services.auth``) and which session it has: a recovered one
  (:mod:`recovery`) or a new one, with a private id when the client
  recovers;
- :meth:`SocketLifecycle.connected` runs once the CONNECT reply went out:
  the socket enters its rooms, and receives ``connected``, then what it
  missed;
- a disconnect stores what a later recovery needs;
- :meth:`SocketLifecycle.taken_over` lets a socket go without a word when
  its session was recovered by a newer connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio

from livebase.realtime.authorization import LiveAuthorization
from livebase.realtime.cluster import NAMESPACE, Manager
from livebase.realtime.connections import Connection, Connections, SocketTakenOver
from livebase.realtime.delivery import Delivery
from livebase.realtime.engine import Admission, EngineWorkarounds
from livebase.realtime.eviction import Eviction
from livebase.realtime.handshake import presented_token
from livebase.realtime.history import SocketHistory
from livebase.realtime.memberships import Memberships
from livebase.realtime.presence import Presence
from livebase.realtime.recovery import Recovered, Recovery, new_pid
from livebase.realtime.replay import TooMany
from livebase.realtime.requests import Ack, unknown_event
from livebase.realtime.router import Envelope
from livebase.services.auth import AuthService
from livebase.services.errors import ServiceError

_log = logging.getLogger("livebase.realtime")

Drop = Callable[[str, str], None]  # (sid, reason)


@dataclass
class _Admitted:
    """A socket between its handshake and its CONNECT reply."""

    connection: Connection
    collections: list[str]
    recovered: Recovered | None


class SocketLifecycle:
    def __init__(
        self,
        sio: EngineWorkarounds,
        manager: Manager,
        connections: Connections,
        auth: AuthService,
        memberships: Memberships,
        authorization: LiveAuthorization,
        presence: Presence,
        delivery: Delivery,
        recovery: Recovery | None,
        eviction: Eviction,
        history: SocketHistory,
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
        self._delivery = delivery
        self._recovery = recovery  # None: SOCKET_RECOVERY_WINDOW is 0
        self._eviction = eviction
        self._history = history
        self._allow_anonymous = allow_anonymous
        self._admitted: dict[str, _Admitted] = {}
        self.take_over: Callable[[SocketTakenOver], None] = lambda event: None

    def register(self) -> None:
        """Take over the handshake (replacing the "server is starting" refusal)."""
        self._sio.admit = self.admit
        self._sio.abandon = self.abandon
        self._sio.on("disconnect", self._on_disconnect)
        # Never called for a handshake (engine.EngineWorkarounds admits those): this
        # answers a client's 42["connect"] event, which python-socketio dispatches by name.
        self._sio.on("connect", self._on_connect_event)
        self._manager.on_connected = self.connected

    # -- the handshake -------------------------------------------------------------------

    async def admit(self, eio_sid: str, environ: dict[str, Any], auth: Any) -> Admission:
        token = presented_token(environ, auth)
        if token is None and not self._allow_anonymous:
            raise socketio.exceptions.ConnectionRefusedError("authentication required: no token")
        try:
            who = await self._auth.authenticate(token)
        except ServiceError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from None
        recovery = self._recovery
        recovers = recovery is not None and not (
            isinstance(auth, dict) and auth.get("recovery") is False
        )
        recovered = None
        if recovery is not None and recovers and isinstance(auth, dict) and "pid" in auth:
            recovered = await recovery.recover(who, auth, eio_sid)
        if recovered is not None:
            connection = recovered.connection
            # The old socket may still look alive, here or on another process.
            self.take_over(SocketTakenOver(connection.sid))
            collections = recovered.collections
        else:
            sid = self._sio.eio.generate_id()
            pid = new_pid() if recovers else None
            connection = Connection(sid=sid, eio_sid=eio_sid, who=who, pid=pid)
            collections = self._memberships.auto_joined(connection)
            # In a cluster: hear of changes made elsewhere before the client hears "connect".
            await self._memberships.want(collections)
            if recovery is not None:
                connection.start = await recovery.starting_point()
        if recovery is not None:
            # Stored before the client hears its pid: any process may be asked for it next.
            await recovery.book.save(connection)
        self._admitted[connection.sid] = _Admitted(connection, collections, recovered)
        return Admission(connection.sid, connection.pid)

    async def abandon(self, sid: str) -> None:
        admitted = self._admitted.pop(sid, None)
        if admitted is not None and admitted.recovered is not None and self._recovery:
            await self._recovery.abandon(admitted.recovered)

    # -- in --------------------------------------------------------------------------------

    async def connected(self, sid: str) -> None:
        """python-socketio has sent CONNECT: the socket is in, rooms and events may follow."""
        admitted = self._admitted.pop(sid, None)
        if admitted is None:
            return
        connection, recovered = admitted.connection, admitted.recovered
        if recovered is not None:
            self._delivery.hold(sid, recovered.until)  # what it missed comes first
        else:
            self._delivery.bring_up(sid, connection.start)
        self._connections.add(connection)
        self._sio.forget_request(connection.eio_sid)
        rooms = recovered.rooms if recovered is not None else None
        self._memberships.enter(connection, admitted.collections, rooms)
        # What its replay covers, for the delivery trace (completed once it is known).
        replay: dict[str, int] | None = None
        if recovered is not None:
            replay = {"offset": recovered.offset, "after": recovered.after}
            replay |= {"until": recovered.until, "missed": 0}
        self._history.connected(connection, replay)
        self._authorization.schedule_expiry(connection)
        if recovered is not None:
            await self._memberships.presence.recovered(connection, recovered.record.tracked)
            await self._replay(connection, recovered, replay)
        else:
            hello: dict[str, Any] = {"userId": connection.user_id, "role": connection.role}
            if connection.pid is not None:
                hello["recovered"] = False
            self._delivery.deliver([Envelope("connected", hello, (sid,))])
        if connection.user_id is not None:
            await self._presence.arrived(
                connection.user_id,
                sid,
                self._connections.user_count(connection.user_id),
                announce=recovered is None or recovered.record.upto is not None,
            )

    async def _replay(
        self, connection: Connection, recovered: Recovered, traced: dict[str, int] | None
    ) -> None:
        assert self._recovery is not None
        self._recovery.settle(recovered)
        sid = connection.sid
        try:
            until = await self._recovery.catch_up(recovered)
        except TooMany as exc:
            self._recovery.written(recovered)
            self._eviction.drop(sid, f"recovered, but {exc} arrived while it reconnected")
            return
        self._delivery.hold(sid, until)
        if traced is not None:
            traced.update(until=until, missed=len(recovered.missed))
        hello = {
            "userId": connection.user_id,
            "role": connection.role,
            "recovered": True,
            "missed": len(recovered.missed),
        }
        ended = [Envelope(e.event, e.payload, e.sids, until) for e in recovered.ended]
        self._delivery.replay(
            sid,
            [Envelope("connected", hello, (sid,), recovered.offset), *recovered.missed, *ended],
        )
        self._recovery.written(recovered)
        self._delivery.release(sid)

    # -- out -------------------------------------------------------------------------------

    async def _on_connect_event(self, sid: str, *args: Any) -> Ack:
        return unknown_event("connect")

    async def _on_disconnect(self, sid: str, reason: Any = None) -> Ack | None:
        # python-socketio dispatches client events by name, so 42["disconnect"]
        # lands here too: during a real disconnect the socket is no longer connected.
        if self._manager.is_connected(sid, NAMESPACE):
            return unknown_event("disconnect")
        self._admitted.pop(sid, None)
        connection = self._connections.remove(sid)
        if connection is None:
            return None
        self._authorization.cancel_expiry(connection)
        self._history.disconnected(connection, str(reason or "disconnected"))
        self._sio.end_long_poll(connection.eio_sid)
        self._memberships.forget(connection)
        if self._recovery is not None:  # kept for a recovery
            upto = self._delivery.brought_up_to(sid)
            self._recovery.book.save(connection, gone=True, upto=upto)
        self._delivery.forget(sid)
        if connection.user_id is not None:
            self._presence.left(
                connection.user_id, sid, self._connections.user_count(connection.user_id)
            )
        return None

    def taken_over(self, event: SocketTakenOver) -> None:
        """A newer connection recovered this socket's session: it goes quietly."""
        sid = event.sid
        self._memberships.presence.stay(sid)  # its room presence goes on in the new one
        connection = self._connections.remove(sid)
        if connection is None:
            return
        self._authorization.cancel_expiry(connection)
        self._history.disconnected(connection, "taken over by its recovery (a newer connection)")
        self._memberships.forget(connection)
        self._memberships.presence.stay(sid)
        self._delivery.forget(sid)
        # python-socketio forgets it now, so its Engine.IO session's end finds no socket.
        self._manager.basic_disconnect(sid, NAMESPACE)
        self._sio.end_long_poll(connection.eio_sid)
        self._eviction.end_quietly(connection.eio_sid)
        _log.info("socket %s (user %s) taken over by its recovery", sid, connection.user_id)
        if connection.user_id is not None:
            count = self._connections.user_count(connection.user_id)
            self._eviction.later(self._presence.moved_away(connection.user_id, count))
