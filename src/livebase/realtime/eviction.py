"""Disconnecting the sockets the server no longer wants, once each, saying why in the log.

Sockets go when their session is revoked, their token expires, their user
is deleted or suspended, or they read too slowly (a slow consumer, found by
:mod:`delivery` or by a session's byte bound). A slow consumer's session is
aborted as well: it would never read its backlog, nor the goodbye behind it.
A socket whose session a reconnect recovered goes without a goodbye.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from livebase.metrics import SLOW_CONSUMER_DISCONNECTS
from livebase.realtime.cluster import NAMESPACE
from livebase.realtime.connections import Connections
from livebase.realtime.engine import EngineWorkarounds
from livebase.realtime.history import SocketHistory
from livebase.realtime.session import Session
from livebase.realtime.tasks import TaskSet

_log = logging.getLogger("livebase.realtime")


class Eviction:
    def __init__(
        self,
        sio: EngineWorkarounds,
        connections: Connections,
        tasks: TaskSet,
        max_queue: int,
        max_queue_bytes: int,
        history: SocketHistory,
    ) -> None:
        self._sio = sio
        self._connections = connections
        self._tasks = tasks
        self._bounds = {"packets": max_queue, "bytes": max_queue_bytes}
        self._history = history

    def drop(
        self, sid: str, reason: str, *, abort: bool = False, extra: dict[str, Any] | None = None
    ) -> bool:
        """Disconnect one socket, once, saying why in the log (with ``extra`` fields);
        whether this call did (not an earlier one)."""
        connection = self._connections.get(sid)
        if connection is None or connection.dropped:
            return False
        connection.dropped = True
        self._history.evicted(sid, reason)
        fields = {"event": "socket_disconnected", "sid": sid, "user_id": connection.user_id}
        _log.warning(
            "disconnecting socket %s (user %s): %s",
            sid,
            connection.user_id,
            reason,
            extra={**fields, "reason": reason, **(extra or {})},
        )
        self._tasks.spawn(self._disconnect(sid, connection.eio_sid, abort))
        return True

    def end_quietly(self, eio_sid: str) -> None:
        """End an Engine.IO session whose socket python-socketio already forgot."""
        self._tasks.spawn(self._sio.abort_session(eio_sid))

    def later(self, work: Coroutine[Any, Any, Any]) -> None:
        """Finish what a disconnect started, in the background."""
        self._tasks.spawn(work)

    def drop_slow_consumer(self, sid: str, reason: str, bound: str = "bytes") -> None:
        """Disconnect a socket that has more waiting than its ``bound`` (``packets``
        or ``bytes``) allows."""
        connection = self._connections.get(sid)
        session = self._sio.eio.sockets.get(connection.eio_sid) if connection else None
        if connection is not None and not connection.dropped:
            self._history.slow_consumer(connection, reason, getattr(session, "queue", None))
        waiting = {
            "queued_bytes": session.bytes_waiting() if session is not None else None,
            "queued_packets": session.queue.qsize() if session is not None else None,
        }
        extra = {"event": "slow_consumer_disconnect", **waiting, "bound": bound}
        if self.drop(sid, reason, abort=True, extra={**extra, "limit": self._bounds[bound]}):
            SLOW_CONSUMER_DISCONNECTS.labels(bound).inc()

    def overflowed(self, session: Session) -> bool:
        """Whether ``session`` is past the byte bound, and so dropped, instead of sent more."""
        reason = session.over_bytes(self._bounds["bytes"])
        if reason is None:
            return False
        sid = self._sio.manager.sid_from_eio_sid(session.sid, NAMESPACE)
        if sid is not None and sid in self._connections.by_sid:
            self.drop_slow_consumer(sid, reason, "bytes")
        elif not session.closed:
            _log.warning("disconnecting Engine.IO session %s: %s", session.sid, reason)
            self._tasks.spawn(self._sio.abort_session(session.sid))
        return True

    async def _disconnect(self, sid: str, eio_sid: str, abort: bool) -> None:
        await self._sio.disconnect(sid)
        if abort:
            await self._sio.abort_session(eio_sid)
