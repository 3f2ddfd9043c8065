"""Where livebase reaches into python-socketio / python-engineio internals, all in one place.

Each workaround is covered by a test in ``tests/realtime`` and is a
candidate for an upstream report:

- a long-polling POST with more than 16 packets is dropped whole (and
  answered 200): clients batch what they queued, so a burst of joins would
  vanish (``test_robustness``);
- an event whose name is not a string raises in python-socketio's handler
  task, and nothing bounds how deeply its arguments nest
  (``test_engine``);
- a malformed binary packet leaves a half-built packet that swallows every
  later message of that socket (``test_robustness``);
- a polling client's pending GET stays open until the ping timeout after its
  session ended (``test_robustness``, ``test_presence``);
- a connected socket keeps its whole handshake request (``forget_request``;
  ``test_memory``);
- a slow consumer's session keeps its backlog (and its writer, blocked in a
  write) until the heartbeat notices (``test_slow_consumer``);
- python-engineio keeps four asyncio tasks per WebSocket session and does
  not keep the session's WebSocket, which the delivery stage needs to write
  frames directly: its sessions are :class:`session.Session` (every realtime
  test runs over it).
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from engineio import async_socket
from engineio.payload import Payload

from livebase.realtime.codec import nested_deeper_than
from livebase.realtime.session import Session

_log = logging.getLogger("livebase.realtime")

# What python-engineio reads of a request's environ after the handshake.
_STILL_READ = ("asgi.scope", "asgi.receive", "asgi.send", "REMOTE_ADDR")

# The request size stays capped by SOCKET_MAX_MESSAGE_SIZE.
Payload.max_decode_packets = max(Payload.max_decode_packets, 1024)


class EngineWorkarounds(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *, max_payload_depth: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_payload_depth = max_payload_depth

    async def _handle_event(self, eio_sid: str, namespace: Any, id: Any, data: Any) -> None:
        problem = self._event_problem(data)
        if problem is not None:
            _log.info("ignored an event from %s: %s", eio_sid, problem)
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    def _event_problem(self, data: Any) -> str | None:
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return "an event is [name, ...arguments] with a string name"
        if nested_deeper_than(data[1:], self.max_payload_depth):
            return f"its arguments nest deeper than {self.max_payload_depth} levels"
        return None

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

    def forget_request(self, eio_sid: str) -> None:
        """Keep of a connected socket's handshake request only what python-engineio reads again.

        python-socketio keeps the request's WSGI-style environ for the whole
        session (and, for a WebSocket, so do the frames of the connection's
        task): ~4 KB of header strings a socket, read only while connecting.
        """
        environ = self.environ.get(eio_sid)
        if environ is None:
            return
        kept = {key: environ[key] for key in _STILL_READ if key in environ}
        environ.clear()
        environ.update(kept)
        scope = kept.get("asgi.scope")
        if scope is not None and scope.get("type") == "websocket":
            scope["headers"] = []  # read by the handshake and the proxy-headers step only

    async def abort_session(self, eio_sid: str) -> None:
        """End an Engine.IO session now, dropping its backlog, instead of at the heartbeat."""
        session = self.eio.sockets.pop(eio_sid, None)
        if session is None or session.closed:
            return
        session.abort()
        await session.close(wait=False, abort=True)


# python-engineio makes its sessions with ``async_socket.AsyncSocket(server, sid)``.
async_socket.AsyncSocket = Session
