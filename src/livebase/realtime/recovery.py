"""Connection state recovery: a reconnecting socket gets its session back and
every event it missed (docs/realtime.md, "Reconnecting without losing events").

socket.io-client ≥ 4.6 speaks the protocol already: the CONNECT reply gives
it a private session id (``pid``), every event ends with an offset
(:mod:`offsets`), and a reconnect sends both back. If the session is
stored (:mod:`stored_sessions`), belongs to the same user, went less than
``SOCKET_RECOVERY_WINDOW`` seconds ago and the log still holds what came
after the offset, the socket comes back with the same sid and pid, its
rooms re-checked, and the events it missed replayed (:mod:`replay`) before
any newer one. Otherwise the reconnect is a new session, and ``connected``
says ``recovered: false``: nothing is replayed partially.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livebase.metrics import RECOVERIES, RECOVERIES_REFUSED
from livebase.realtime.connections import Connection
from livebase.realtime.memberships import Memberships
from livebase.realtime.offsets import Progress, position_of
from livebase.realtime.replay import Replay, TooMany
from livebase.realtime.router import Envelope
from livebase.realtime.stored_sessions import Record, SessionBook
from livebase.services.accountability import Accountability
from livebase.storage.changelog import ChangeLog

_log = logging.getLogger("livebase.realtime")

PID_BYTES = 18  # 144 random bits
BOUNDS_FOR = 1.0  # seconds the log's bounds, once read, serve recoveries
ATTEMPT_WAIT = 5.0
# The missed events all recoveries under way may hold, in SOCKET_RECOVERY_MAX_EVENTS:
# past it a reconnect is a new session (it reloads) rather than memory for all.
HELD_PER_MAX = 20  # seconds a retry waits for an earlier handshake of its session
_PID_LENGTH = len(secrets.token_urlsafe(PID_BYTES))


def new_pid() -> str:
    return secrets.token_urlsafe(PID_BYTES)


@dataclass
class Recovered:
    """A recovered session, between the handshake and the socket's first event."""

    connection: Connection
    record: Record
    collections: list[str]  # the rooms it may still be in
    rooms: list[str]
    offset: int  # the client's
    until: int  # the replay reaches this position
    missed: list[Envelope] = field(default_factory=list)
    ended: list[Envelope] = field(default_factory=list)  # live queries it may not have now
    # Done once the socket is in, or its client went during the handshake.
    settled: asyncio.Future[None] | None = None
    held: int = 0  # of the events every recovery under way holds (Recovery.holding)
    after: int = 0  # the replay starts after this position (the offset, or past it)


class Recovery:
    def __init__(
        self,
        book: SessionBook,
        replay: Replay,
        log: ChangeLog,
        memberships: Memberships,
        progress: Progress,
        clustered: Callable[[], bool],
    ) -> None:
        self.book = book
        self.replay = replay
        self._log = log
        self._memberships = memberships
        self._progress = progress
        self._clustered = clustered
        self.counts = {"recovered": 0, "refused": 0, "replayed": 0}  # /stats/realtime
        self._attempts: dict[str, asyncio.Future[None]] = {}  # pid -> its handshake here
        self._known_bounds = (0, 0, -BOUNDS_FOR)  # the log's (oldest, newest, when read)
        # Missed events held by the recoveries under way, and how many they may hold.
        self.holding = 0
        self._may_hold = HELD_PER_MAX * replay.max_events
        # Told (eio_sid, reason) of each refusal, for the delivery trace.
        self.on_refused: Callable[[str, str], None] = lambda eio_sid, reason: None

    async def starting_point(self) -> int:
        """The position a new socket starts at: all this process has handled; in a
        cluster, all that is logged (this process hears only of the collections
        its sockets listen to, so its own position may lag)."""
        position = self._progress.position
        if self._clustered():
            try:
                position = max(position, await self._log.last_position())
            except Exception:
                _log.exception("reading the change log's newest position failed")
        return position

    async def recover(
        self, who: Accountability, auth: dict[str, Any], eio_sid: str
    ) -> Recovered | None:
        """The session ``auth`` asks back, ready to enter its rooms; None to start afresh."""
        pid = auth.get("pid")
        earlier = self._attempts.get(pid) if isinstance(pid, str) else None
        if earlier is not None:
            # A retry while an earlier handshake of this session is still under way
            # here (its client stopped waiting for it): that one ends first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(earlier), ATTEMPT_WAIT)
        try:
            recovered = await self._recover(who, auth, eio_sid)
        except (_NotRecoverable, TooMany) as exc:
            reason = exc.reason if isinstance(exc, _NotRecoverable) else "too_many_missed"
            _log.info(
                "recovery refused for user %s: %s",
                who.user_id,
                exc,
                extra={"event": "recovery_refused", "reason": reason, "user_id": who.user_id},
            )
            self.counts["refused"] += 1
            self.on_refused(eio_sid, str(exc))
            RECOVERIES_REFUSED.labels(reason).inc()
            return None
        self.counts["recovered"] += 1
        RECOVERIES.inc()
        recovered.settled = self._attempts[str(pid)] = asyncio.get_running_loop().create_future()
        return recovered

    async def _recover(self, who: Accountability, auth: dict[str, Any], eio_sid: str) -> Recovered:
        pid, offset = auth.get("pid"), position_of(auth.get("offset"))
        if not isinstance(pid, str) or len(pid) != _PID_LENGTH:
            raise _NotRecoverable("bad_request", "no usable pid")
        if offset is None:
            raise _NotRecoverable("bad_request", "no usable offset")
        record = await self.book.take(pid)
        if record is None:
            raise _NotRecoverable("unknown_session", "unknown or expired session")
        if record.user_id != who.user_id:
            await self.book.put_back(pid, record)
            raise _NotRecoverable("other_user", "the session is another user's")
        connection = Connection(
            sid=record.sid,
            eio_sid=eio_sid,
            who=who,
            pid=pid,
            start=offset,
            generation=record.generation + 1,
        )
        return await self._restore(connection, record, offset)

    async def _restore(self, connection: Connection, record: Record, offset: int) -> Recovered:
        if offset < record.start:
            raise _NotRecoverable("bad_offset", "the offset is older than the session")
        oldest, newest = await self._bounds(offset)
        if offset > max(newest, self._progress.position):
            raise _NotRecoverable("bad_offset", "the offset is not one of this deployment's")
        after = offset
        if record.upto is not None and record.sent is not None and record.sent <= offset:
            # It had every event written to it; up to ``upto`` nothing else was its.
            after = max(offset, min(record.upto, newest))
        if oldest > after + 1:
            raise _NotRecoverable(
                "log_pruned", "the change log no longer holds what the socket missed"
            )
        connection.left.update(record.left)
        collections, rooms = await self._memberships.still_allowed(
            connection, record.collections, record.rooms
        )
        connection.collections.update(collections)
        connection.rooms.update(rooms)
        ended = await self._memberships.restore_live(connection, record.subscriptions)
        await self._memberships.want(self._memberships.channels(collections, rooms))
        until = max(after, await self.starting_point())
        missed = await self.replay.missed(connection, after, until)
        if self.holding + len(missed) > self._may_hold:
            raise _NotRecoverable(
                "busy", f"recoveries under way already hold {self.holding} missed events"
            )
        self.holding += len(missed)
        recovered = Recovered(connection, record, collections, rooms, offset, until, missed, ended)
        recovered.held = len(missed)
        recovered.after = after
        return recovered

    async def _bounds(self, offset: int) -> tuple[int, int]:
        """The log's oldest and newest positions, read at most every :data:`BOUNDS_FOR`
        seconds (sockets that drop together come back together); again at once for
        an offset past the newest one read, which may have come since. (Pruning
        takes entries ``CHANGE_LOG_RETENTION`` old: a second-old oldest bound
        only matters to an offset about that old.)"""
        now = time.monotonic()
        oldest, newest, read_at = self._known_bounds
        if now - read_at > BOUNDS_FOR or offset > max(newest, self._progress.position):
            oldest, newest = await self._log.bounds()
            self._known_bounds = (oldest, newest, now)
        return oldest, newest

    async def catch_up(self, recovered: Recovered) -> int:
        """What the process handled between the handshake and the socket entering its
        rooms, added to the replay; the position the replay now reaches."""
        now = self._progress.position
        if now > recovered.until:
            connection = recovered.connection
            more = await self.replay.missed(
                connection, recovered.until, now, already=len(recovered.missed)
            )
            recovered.missed += more
            recovered.held += len(more)
            self.holding += len(more)
            recovered.until = now
        self.counts["replayed"] += len(recovered.missed)
        return recovered.until

    def written(self, recovered: Recovered) -> None:
        """The replay is written (or will never be): its events are no longer held."""
        self.holding -= recovered.held
        recovered.held = 0
        recovered.missed = []

    def settle(self, recovered: Recovered) -> None:
        """The recovered socket is in: a later reconnect of its session may go ahead."""
        pid, settled = recovered.connection.pid, recovered.settled
        if pid is not None and self._attempts.get(pid) is settled:
            del self._attempts[pid]
        if settled is not None and not settled.done():
            settled.set_result(None)

    async def abandon(self, recovered: Recovered) -> None:
        """The reconnect went before it was in: its session stays recoverable."""
        pid = recovered.connection.pid
        self.written(recovered)
        if pid is not None:
            await self.book.put_back(pid, recovered.record)
        self.settle(recovered)


class _NotRecoverable(Exception):
    """Why a session cannot come back: ``reason``, a word for the metrics and the log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
