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
  write) until the heartbeat notices (``test_slow_consumer``);
- python-engineio does not keep a session's WebSocket, which the delivery
  stage needs to write frames directly (:func:`direct_transport`; every
  realtime test runs over it).
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from engineio import async_socket
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


class _Session(async_socket.AsyncSocket):  # type: ignore[misc]
    """python-engineio's session, remembering the WebSocket it is served over."""

    ws: Any = None

    async def _websocket_handler(self, ws: Any) -> Any:
        self.ws = ws
        try:
            return await super()._websocket_handler(ws)
        finally:
            self.ws = None


# python-engineio makes its sessions with ``async_socket.AsyncSocket(server, sid)``.
async_socket.AsyncSocket = _Session

_SansIO: Any
try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol as _SansIO,
    )
except ImportError:  # pragma: no cover - another ASGI server: the queue path only
    _SansIO = None


def direct_transport(session: Any) -> Any:
    """The asyncio transport to write this session's next frame to, or None.

    Only when a frame written there now cannot overtake anything: the
    session is a WebSocket (not polling, not upgrading), python-engineio's
    writer is idle (its queue is empty and it is waiting on it), and
    uvicorn's protocol is open and not applying back-pressure. Otherwise the
    caller uses python-engineio's queue, which keeps order.
    """
    ws = session.ws
    if ws is None or not session.upgraded or session.upgrading:
        return None
    queue = session.queue
    if queue._queue or not queue._getters:
        return None
    protocol: Any = getattr(ws.asgi_send, "__self__", None)
    if _SansIO is None or type(protocol) is not _SansIO:
        return None
    if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
        return None
    transport = protocol.transport
    return None if transport.is_closing() else transport


def text_frame(text: str) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (server to client), FIN set."""
    data = text.encode()
    size = len(data)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + data
