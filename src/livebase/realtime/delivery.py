"""The second half of the event pipeline: writing packets to sockets.

No asyncio task per recipient (python-socketio's ``AsyncManager.emit``
creates one). Each payload is encoded once per form (with the offset
recovery-capable sockets get, :mod:`offsets`, and without): as one
Engine.IO packet, and, for WebSocket clients, as one WebSocket frame. The
frame goes straight to the connection's transport when nothing is waiting
before it (:meth:`session.Session.direct_transport`): no per-socket writer
task, no ASGI message, no framing per recipient. Otherwise (long-polling,
an upgrade, packets already queued, back-pressure) the packet joins
python-engineio's queue, which keeps order. A socket with more packets, or
more bytes, waiting than its bounds is a slow consumer: it is disconnected,
and nobody else waits. Bytes, because a packet count alone let a few big
events pin megabytes per socket; both are checked only on the queue path,
as a socket written to directly has next to nothing waiting.

A socket being brought up to date (a recovery's replay, :mod:`recovery`)
is *held*: live events for it wait until its replay is written, and events
the replay already covered are not written twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from livebase.metrics import DELIVERY_LATENCY, FRAMES_DELIVERED, ByEventType
from livebase.realtime.codec import event_packet
from livebase.realtime.connections import Connection
from livebase.realtime.offsets import Progress, offset
from livebase.realtime.router import Envelope
from livebase.realtime.session import ws_frame

REPLAY_ENCODED = 20_000  # replayed payloads whose encoding is kept for the next socket


class _Encoded:
    """One envelope's packet and frame, made on first use."""

    __slots__ = ("event", "frame", "offset", "packet", "payload", "position")

    def __init__(self, event: str, payload: Any, offset: str | None, position: int | None) -> None:
        self.event, self.payload, self.offset = event, payload, offset
        self.position = position  # the change log entry it tells of, if any
        self.packet: Any = None
        self.frame: bytes | None = None

    def get_packet(self) -> Any:
        if self.packet is None:
            self.packet = event_packet(self.event, self.payload, self.offset)
        return self.packet

    def get_frame(self) -> bytes:
        if self.frame is None:
            self.frame = ws_frame(self.get_packet().encode())
        return self.frame


@dataclass
class _Paused:
    """A socket whose events wait while a live query's snapshot is read."""

    count: int = 1  # snapshots under way
    waiting: list[Envelope] = field(default_factory=list)
    drops: list[Callable[[Envelope], bool]] = field(default_factory=list)
    extra: list[tuple[tuple[int, int], Envelope]] = field(default_factory=list)


@dataclass
class _Held:
    """A socket brought up to ``until``: the events up to there come from its replay."""

    until: int
    # Live events that arrived before the replay was written; None once it was.
    waiting: list[Envelope] | None = field(default_factory=list)


class Delivery:
    def __init__(
        self,
        eio_sockets: dict[str, Any],
        connections: dict[str, Connection],
        progress: Progress,
        max_queue: int,
        max_queue_bytes: int,
        drop: Callable[[str, str, str], None],
    ) -> None:
        self._eio_sockets = eio_sockets  # python-engineio's eio_sid -> socket table
        self._connections = connections  # sid -> Connection
        self._progress = progress
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._drop = drop
        self._held: dict[str, _Held] = {}
        self._paused: dict[str, _Paused] = {}
        # Replayed events' encodings, by payload (kept alive here, so ids stay theirs).
        self._replay_encoded: dict[tuple[int, str, int | None], tuple[Any, _Encoded]] = {}
        self.delivered = 0
        self.direct = 0  # of which written straight to the transport
        self._frames = ByEventType(FRAMES_DELIVERED)

    def deliver(self, envelopes: Iterable[Envelope], committed: float | None = None) -> None:
        """Write (or queue) each envelope to its sockets.

        ``committed``: when the logged change these envelopes tell of was written
        (seconds since the epoch); the delivery latency is measured from it.
        """
        delivered = 0
        for envelope in envelopes:
            reached = self._fan_out(envelope)
            if reached:  # counted per envelope, never per socket
                self._frames(envelope.event).inc(reached)
                delivered += reached
        self.delivered += delivered
        if committed is not None and delivered:
            DELIVERY_LATENCY.observe(max(0.0, time.time() - committed))

    def _fan_out(self, envelope: Envelope) -> int:
        """Write one envelope to its sockets; how many it reached."""
        # The loop per recipient is the fan-out's hot path: written out, not calls.
        connections, held, sessions = self._connections, self._held, self._eio_sockets
        paused = self._paused
        delivered = direct = 0
        position = envelope.position
        tagged = _Encoded(
            envelope.event,
            envelope.payload,
            offset(self._progress.position if position is None else position),
            position,
        )
        plain = None
        for sid in envelope.sids:
            connection = connections.get(sid)
            if connection is None:
                continue
            if paused and sid in paused and self._waits(sid, envelope):
                continue
            if held and sid in held and self._still_held(sid, envelope):
                continue
            if connection.pid is not None:
                encoded = tagged
            else:
                if plain is None:
                    plain = _Encoded(envelope.event, envelope.payload, None, position)
                encoded = plain
            session = sessions.get(connection.eio_sid)
            if session is None or session.closed or session.closing:
                continue
            transport = session.direct_transport()
            if transport is not None:
                transport.write(encoded.frame or encoded.get_frame())
                direct += 1
            elif not self._queue(sid, session, encoded.get_packet()):
                continue
            delivered += 1
            if position is not None:
                connection.sent = position
        self.direct += direct
        return delivered

    # -- a live query's snapshot ------------------------------------------------------------

    def pause(self, sid: str) -> None:
        """Keep ``sid``'s events until :meth:`resume`: a snapshot is being read, and
        the answer carrying it must go first. Pauses nest."""
        state = self._paused.get(sid)
        if state is None:
            self._paused[sid] = _Paused()
        else:
            state.count += 1

    def resume(
        self,
        sid: str,
        drop: Callable[[Envelope], bool] | None = None,
        extra: Iterable[tuple[tuple[int, int], Envelope]] = (),
    ) -> None:
        """One snapshot is answered: events it already holds are ``drop``-ped, and
        ``extra`` ones (sorted in by their keys, ``(position, 0 or 1)``) added. Once
        the last snapshot is answered, what waited is written, in position order."""
        state = self._paused.get(sid)
        if state is None:
            return
        if drop is not None:
            state.drops.append(drop)
        state.extra.extend(extra)
        state.count -= 1
        if state.count > 0:
            return
        del self._paused[sid]
        keyed: list[tuple[tuple[int, int], Envelope]] = []
        last = 0
        for envelope in state.waiting:
            if any(dropped(envelope) for dropped in state.drops):
                continue
            if envelope.position is not None:
                last = envelope.position
            keyed.append(((last, 0), envelope))
        keyed.extend(state.extra)
        keyed.sort(key=lambda pair: pair[0])
        self.deliver(
            Envelope(e.event, e.payload, (sid,), e.position, personal=e.personal) for _, e in keyed
        )

    def _waits(self, sid: str, envelope: Envelope) -> bool:
        waiting = self._paused[sid].waiting
        if len(waiting) >= self._max_queue:
            self._drop(
                sid, f"{self._max_queue} events arrived while a snapshot was read", "packets"
            )
        else:
            waiting.append(envelope)
        return True

    # -- bringing a socket up to date ----------------------------------------------------

    def hold(self, sid: str, until: int) -> None:
        """Keep live events for ``sid`` until :meth:`release`: its replay, up to
        ``until``, comes first. Holding again moves ``until`` on."""
        state = self._held.get(sid)
        if state is not None and state.waiting is not None:
            state.until = until
        else:
            self._held[sid] = _Held(until)

    def bring_up(self, sid: str, until: int) -> None:
        """``sid`` needs no replay but is up to ``until``, past this process: events up
        to there are not its own (they came before it), offsets start there."""
        if until > self._progress.position:
            self._held[sid] = _Held(until, waiting=None)

    def replay(self, sid: str, envelopes: Iterable[Envelope]) -> None:
        """Write a held socket's replayed events (each with its own position)."""
        connection = self._connections.get(sid)
        if connection is None:
            return
        encoded = self._replay_encoded
        if len(encoded) > REPLAY_ENCODED:
            encoded.clear()
        tagged = connection.pid is not None
        for envelope in envelopes:
            position = envelope.position
            # Sockets that recover together share payloads (replay.Replay): encode each once.
            key = (id(envelope.payload), envelope.event, position if tagged else None)
            held = encoded.get(key)
            if held is None or held[0] is not envelope.payload:
                tag = None if position is None or not tagged else offset(position)
                held = (envelope.payload, _Encoded(envelope.event, envelope.payload, tag, position))
                encoded[key] = held
            self._write(connection, held[1])

    def release(self, sid: str) -> None:
        """The replay is written: write what waited meanwhile, then deliver as usual."""
        state = self._held.get(sid)
        if state is None or state.waiting is None:
            return
        waiting, state.waiting = state.waiting, None
        connection = self._connections.get(sid)
        mark = state.until
        for envelope in waiting:
            position = envelope.position
            if position is not None:
                if position <= state.until and not envelope.personal:
                    continue  # the replay had it
                mark = max(mark, position)
            if connection is not None:
                tag = offset(mark) if connection.pid is not None else None
                self._write(connection, _Encoded(envelope.event, envelope.payload, tag, position))
        if self._progress.position >= state.until:
            del self._held[sid]

    def forget(self, sid: str) -> None:
        self._held.pop(sid, None)
        self._paused.pop(sid, None)

    def brought_up_to(self, sid: str) -> int | None:
        """The position ``sid`` has been brought up to; None while its replay waits."""
        state = self._held.get(sid)
        if state is None:
            return self._progress.position
        if state.waiting is not None:
            return None
        return max(state.until, self._progress.position)

    def _still_held(self, sid: str, envelope: Envelope) -> bool:
        """Whether the held socket ``sid`` is done with ``envelope`` (kept or skipped)."""
        state = self._held[sid]
        if state.waiting is not None:
            if len(state.waiting) >= self._max_queue:
                self._drop(sid, f"{self._max_queue} events arrived during its recovery", "packets")
            else:
                state.waiting.append(envelope)
            return True
        position = envelope.position
        if position is not None and position <= state.until and not envelope.personal:
            return True  # came before the socket, or its replay had it
        if self._progress.position >= state.until:
            del self._held[sid]  # this process has caught up with the socket
            return False
        if position is None:
            connection = self._connections[sid]
            tag = offset(state.until) if connection.pid is not None else None
            self._write(connection, _Encoded(envelope.event, envelope.payload, tag, None))
            return True
        return False

    # -- the delivery trace -----------------------------------------------------------------

    def waiting(self, sid: str, event: str, position: int) -> bool:
        """Whether ``event`` of ``position`` still waits for ``sid`` here: in its queue,
        or held behind its replay or a snapshot. Only a socket with offsets tells
        (each queued packet ends with its own); the trace asks, not the hot path."""
        for state in (self._held.get(sid), self._paused.get(sid)):
            waiting = state.waiting if state is not None else None
            if waiting and any(e.position == position and e.event == event for e in waiting):
                return True
        connection = self._connections.get(sid)
        session = self._eio_sockets.get(connection.eio_sid) if connection is not None else None
        if session is None or connection is None or connection.pid is None:
            return False
        start, end = f'42["{event}",', f',"{offset(position)}"]'
        for packet in list(session.queue._queue):
            encoded = getattr(packet, "encode_cache", None)
            if isinstance(encoded, str) and encoded.startswith(start) and encoded.endswith(end):
                return True
        return False

    # -- writing ---------------------------------------------------------------------------

    def _write(self, connection: Connection, encoded: _Encoded) -> None:
        session = self._eio_sockets.get(connection.eio_sid)
        if session is None or session.closed or session.closing:
            return
        transport = session.direct_transport()
        if transport is not None:
            transport.write(encoded.get_frame())
            self.direct += 1
        elif not self._queue(connection.sid, session, encoded.get_packet()):
            return
        self.delivered += 1
        self._frames(encoded.event).inc()  # one socket's replay or backlog: not the fan-out
        if encoded.position is not None:
            connection.sent = encoded.position

    def _queue(self, sid: str, session: Any, packet: Any) -> bool:
        queue = session.queue
        if queue.qsize() >= self._max_queue:
            self._drop(
                sid,
                f"slow consumer: {queue.qsize()} packets waiting (bound {self._max_queue})",
                "packets",
            )
            return False
        # Past the bound before this packet, not with it: one event bigger than
        # the bound still reaches a client that has kept up.
        reason = session.over_bytes(self._max_queue_bytes)
        if reason is not None:
            self._drop(sid, reason, "bytes")
            return False
        session.push(packet)
        return True
