"""Where livebase reaches into python-socketio / python-engineio internals, all in one place.

Each workaround is covered by a test in ``tests/realtime`` and is a
candidate for an upstream report:

- a long-polling POST with more than 16 packets is dropped whole (and
  answered 200): clients batch what they queued, so a burst of joins would
  vanish (``test_robustness``);
- a malformed binary packet leaves a half-built packet that swallows every
  later message of that socket (``test_robustness``);
- a polling client's pending GET stays open until the ping timeout after its
  session ended (``test_robustness``, ``test_presence``);
- a slow consumer's session keeps its backlog (and its writer, blocked in a
  write) until the heartbeat notices (``test_slow_consumer``).
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from engineio.payload import Payload

_log = logging.getLogger("livebase.realtime")

# The request size stays capped by SOCKET_MAX_MESSAGE_SIZE.
Payload.max_decode_packets = max(Payload.max_decode_packets, 1024)


class EngineWorkarounds(socketio.AsyncServer):  # type: ignore[misc]
    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:
            # Forget the half-built packet and carry on with the next message.
            self._binary_packet.pop(eio_sid, None)
            _log.info("ignored a malformed packet from %s: %s", eio_sid, exc)

    def end_long_poll(self, eio_sid: str) -> None:
        """Answer a polling client's pending GET now, so it sees its session end at once."""
        session = self.eio.sockets.get(eio_sid)
        if session is not None and not session.upgraded:
            session.queue.put_nowait(None)

    async def abort_session(self, eio_sid: str) -> None:
        """End an Engine.IO session now, dropping its backlog, instead of at the heartbeat."""
        session = self.eio.sockets.pop(eio_sid, None)
        if session is None or session.closed:
            return
        while not session.queue.empty():
            session.queue.get_nowait()
            session.queue.task_done()
        await session.close(wait=False, abort=True)
        session.queue.put_nowait(None)  # its writer stops after the write it is stuck in
