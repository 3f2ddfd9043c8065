"""The second half of the event pipeline: writing packets to sockets.

No asyncio task per recipient (python-socketio's ``AsyncManager.emit``
creates one): each payload becomes one Engine.IO packet, encoded once, put
straight onto every recipient's outgoing queue. A socket whose queue is past
the bound is a slow consumer: it is disconnected, and nobody else waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from livebase.realtime.codec import event_packet
from livebase.realtime.router import Envelope


class Delivery:
    def __init__(
        self,
        eio_sockets: dict[str, Any],
        eio_sid_of: Callable[[str], str | None],
        max_queue: int,
        drop: Callable[[str, str], None],
    ) -> None:
        self._eio_sockets = eio_sockets  # python-engineio's eio_sid -> socket table
        self._eio_sid_of = eio_sid_of
        self._max_queue = max_queue
        self._drop = drop
        self.delivered = 0

    def deliver(self, envelopes: Iterable[Envelope]) -> None:
        for envelope in envelopes:
            packet = event_packet(envelope.event, envelope.payload)
            for sid in envelope.sids:
                self._push(sid, packet)

    def _push(self, sid: str, packet: Any) -> None:
        eio_sid = self._eio_sid_of(sid)
        socket = self._eio_sockets.get(eio_sid) if eio_sid else None
        if socket is None or socket.closed or socket.closing:
            return
        queue = socket.queue
        if queue.qsize() >= self._max_queue:
            self._drop(
                sid, f"slow consumer: {queue.qsize()} packets waiting (bound {self._max_queue})"
            )
            return
        queue.put_nowait(packet)
        self.delivered += 1
