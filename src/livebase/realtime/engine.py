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
- python-socketio picks a new sid before the connect handler runs and
  answers CONNECT with ``{sid}`` alone; a recovered session keeps its sid
  and the reply carries its private id (``_handle_connect``;
  ``test_recovery``);
- an event handler's answer is the last thing it can send: a live query's
  ack (its snapshot) must go before the changes that follow it
  (``_handle_event_internal``, :class:`FollowedBy`; ``test_live_queries``);
- python-engineio keeps four asyncio tasks per WebSocket session and does
  not keep the session's WebSocket, which the delivery stage needs to write
  frames directly: its sessions are :class:`session.Session` (every realtime
  test runs over it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import socketio
from engineio import async_socket
from engineio.payload import Payload
from socketio import packet

from livebase.realtime.codec import nested_deeper_than
from livebase.realtime.session import Session

_log = logging.getLogger("livebase.realtime")

# What python-engineio reads of a request's environ after the handshake.
_STILL_READ = ("asgi.scope", "asgi.receive", "asgi.send", "REMOTE_ADDR")

# The request size stays capped by SOCKET_MAX_MESSAGE_SIZE.
Payload.max_decode_packets = max(Payload.max_decode_packets, 1024)


@dataclass(frozen=True)
class Admission:
    """A connect the server accepts: the socket's sid and, if it recovers, its private id."""

    sid: str
    pid: str | None


@dataclass(frozen=True)
class FollowedBy:
    """A handler's answer, and what to send the socket once the answer went out
    (a live query's first changes come after the snapshot its ack carries)."""

    ack: Any
    then: Callable[[], None]


# (eio_sid, environ, auth) -> Admission, or raises ConnectionRefusedError.
Admit = Callable[[str, dict[str, Any], Any], Awaitable[Admission]]
Abandon = Callable[[str], Awaitable[None]]  # an admitted sid whose client went meanwhile


class EngineWorkarounds(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *, max_payload_depth: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_payload_depth = max_payload_depth
        # Who may connect, and as which sid; None while the server starts.
        self.admit: Admit | None = None
        self.abandon: Abandon | None = None
        self._admitting: set[str] = set()

    async def _handle_connect(self, eio_sid: str, namespace: Any, data: Any) -> None:
        """python-socketio's, with the sid and the reply chosen by :attr:`admit`.

        The sid is picked after the connect handler decides (a recovered
        socket keeps its old one), the reply is ``{sid, pid}`` for sockets
        that recover, and a client's ``42["connect"]`` event never reaches
        the handler (no ``connect`` event handler is registered).
        """
        namespace = namespace or "/"
        refusal: Any = "Unable to connect"
        if namespace == "/" and self.admit is None:
            refusal = {"message": "server is starting"}
        busy = eio_sid in self._admitting or self.manager.sid_from_eio_sid(eio_sid, namespace)
        if namespace != "/" or self.admit is None or busy or eio_sid not in self.environ:
            await self._send_packet(
                eio_sid, self.packet_class(packet.CONNECT_ERROR, data=refusal, namespace=namespace)
            )
            return
        self._admitting.add(eio_sid)
        try:
            admission = await self.admit(eio_sid, self.environ[eio_sid], data)
        except socketio.exceptions.ConnectionRefusedError as exc:
            refusal = exc.error_args
        except ConnectionRefusedError:
            refusal = {"message": "Connection refused by server"}
        else:
            refusal = None
        finally:
            self._admitting.discard(eio_sid)
        if refusal is not None:
            await self._send_packet(
                eio_sid, self.packet_class(packet.CONNECT_ERROR, data=refusal, namespace=namespace)
            )
            return
        sid = None
        if eio_sid in self.environ:  # still there after the handler's awaits
            sid = self.manager.pre_connect_as(eio_sid, namespace, admission.sid)
        if sid is None:
            if self.abandon is not None:
                await self.abandon(admission.sid)
            return
        reply = {"sid": sid} if admission.pid is None else {"sid": sid, "pid": admission.pid}
        await self._send_packet(
            eio_sid, self.packet_class(packet.CONNECT, reply, namespace=namespace)
        )
        await self.manager.connect(sid, namespace)

    async def _handle_event(self, eio_sid: str, namespace: Any, id: Any, data: Any) -> None:
        problem = self._event_problem(data)
        if problem is not None:
            _log.info("ignored an event from %s: %s", eio_sid, problem)
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: Any, id: Any
    ) -> None:
        """python-socketio's, with :class:`FollowedBy` answers: the ack is sent
        (queued behind what the socket was sent before), then ``then`` runs."""
        answer = await server._trigger_event(data[0], namespace, sid, *data[1:])
        then = None
        if isinstance(answer, FollowedBy):
            answer, then = answer.ack, answer.then
        if answer is not self.not_handled and id is not None:
            if answer is None:
                args = []
            elif isinstance(answer, tuple):
                args = list(answer)
            else:
                args = [answer]
            await server._send_packet(
                eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=args)
            )
        if then is not None:
            then()

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
