"""The second half of the event pipeline: writing packets to sockets.

No asyncio task per recipient (python-socketio's ``AsyncManager.emit``
creates one). Each payload is encoded once: as one Engine.IO packet, and,
for WebSocket clients, as one WebSocket frame. The frame goes straight to
the connection's transport when nothing is waiting before it
(:meth:`session.Session.direct_transport`): no per-socket writer task, no ASGI
message, no framing per recipient. Otherwise (long-polling, an upgrade,
packets already queued, back-pressure) the packet joins python-engineio's
queue, which keeps order. A socket with more packets, or more bytes, waiting
than its bounds is a slow consumer: it is disconnected, and nobody else
waits. Bytes, because a packet count alone let a few big events pin
megabytes per socket; both are checked only on the queue path, as a socket
written to directly has next to nothing waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from livebase.realtime.codec import event_packet
from livebase.realtime.router import Envelope
from livebase.realtime.session import ws_frame


class Delivery:
    def __init__(
        self,
        eio_sockets: dict[str, Any],
        eio_sid_of: Callable[[str], str | None],
        max_queue: int,
        max_queue_bytes: int,
        drop: Callable[[str, str], None],
    ) -> None:
        self._eio_sockets = eio_sockets  # python-engineio's eio_sid -> socket table
        self._eio_sid_of = eio_sid_of
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._drop = drop
        self.delivered = 0
        self.direct = 0  # of which written straight to the transport

    def deliver(self, envelopes: Iterable[Envelope]) -> None:
        for envelope in envelopes:
            packet = event_packet(envelope.event, envelope.payload)
            frame = None
            for sid in envelope.sids:
                eio_sid = self._eio_sid_of(sid)
                session = self._eio_sockets.get(eio_sid) if eio_sid else None
                if session is None or session.closed or session.closing:
                    continue
                transport = session.direct_transport()
                if transport is not None:
                    if frame is None:
                        frame = ws_frame(packet.encode())
                    transport.write(frame)
                    self.direct += 1
                else:
                    self._queue(sid, session, packet)
                    continue
                self.delivered += 1

    def _queue(self, sid: str, session: Any, packet: Any) -> None:
        queue = session.queue
        if queue.qsize() >= self._max_queue:
            self._drop(
                sid, f"slow consumer: {queue.qsize()} packets waiting (bound {self._max_queue})"
            )
            return
        # Past the bound before this packet, not with it: one event bigger than
        # the bound still reaches a client that has kept up.
        reason = session.over_bytes(self._max_queue_bytes)
        if reason is not None:
            self._drop(sid, reason)
            return
        session.push(packet)
        self.delivered += 1
