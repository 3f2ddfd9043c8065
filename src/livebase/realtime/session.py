"""python-engineio's session, without an asyncio task per connected socket.

python-engineio keeps four tasks alive for every WebSocket client: a
writer waiting on the packet queue (plus the task ``asyncio.wait_for``
wraps that wait in on Python 3.11), a reader wrapped the same way, and a
ping task sleeping for the ping interval. With the ``asyncio.Queue`` (four
deques) that is about 10 KB of a connected socket's ~45 KB.

Here the only task is the ASGI connection's own, which reads. Packets are
written as they are produced, straight to the transport as WebSocket
frames while nothing is queued before them and the transport is not
applying back-pressure; otherwise they wait in a small queue that a drain
task, started only then, empties through the ASGI ``send`` (which waits for
the transport). Pings come from the server's shared :class:`timers.Timers`.
Long-polling sessions keep python-engineio's behaviour: the polling GET
waits on the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from typing import Any

from engineio import async_socket, exceptions, packet
from engineio.payload import Payload

from livebase.realtime.primitives import SmallQueue
from livebase.realtime.timers import Timers

_SansIO: Any
try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol as _SansIO,
    )
except ImportError:  # pragma: no cover - another ASGI server: frames go through ASGI
    _SansIO = None

_log = logging.getLogger("livebase.realtime")
# OPEN to NOOP. python-engineio takes any digit for a type and then fails on the
# ones it has no name for (an IndexError while logging), with a traceback.
_PACKET_TYPES = range(len(packet.packet_names))


class MalformedPacket(exceptions.EngineIOError):  # type: ignore[misc]
    """Not Engine.IO v4: the session is closed, as the reference server does on a parse error."""


class OverlappingPoll(exceptions.EngineIOError):  # type: ignore[misc]
    """A second long-polling GET while one is pending: answered 400, the session closed."""


def decode_packet(data: str | bytes) -> Any:
    """One packet from the client, or :class:`MalformedPacket`."""
    try:
        pkt = packet.Packet(encoded_packet=data)
    except ValueError as exc:  # not a digit, empty, bad base64
        raise MalformedPacket(f"not an Engine.IO packet ({exc})") from None
    if pkt.packet_type not in _PACKET_TYPES:
        raise MalformedPacket(f"unknown Engine.IO packet type {pkt.packet_type}")
    return pkt


def decode_payload(body: bytes) -> list[Any]:
    """The packets of a long-polling POST body, or :class:`MalformedPacket`."""
    try:
        packets: list[Any] = Payload(encoded_payload=body.decode("utf-8")).packets
    except ValueError as exc:  # not UTF-8, too many packets, a packet that does not parse
        raise MalformedPacket(f"not an Engine.IO payload ({exc})") from None
    for pkt in packets:
        if pkt.packet_type not in _PACKET_TYPES:
            raise MalformedPacket(f"unknown Engine.IO packet type {pkt.packet_type}")
    return packets


def ws_frame(data: str | bytes) -> bytes:
    """One unmasked, uncompressed WebSocket frame (server to client), FIN set."""
    if isinstance(data, str):
        data, opcode = data.encode(), 0x81
    else:
        opcode = 0x82
    size = len(data)
    if size < 126:
        header = bytes((opcode, size))
    elif size < 65536:
        header = bytes((opcode, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((opcode, 127)) + size.to_bytes(8, "big")
    return header + data


def packet_size(pkt: Any) -> int:
    """The bytes a queued packet holds for its client: its encoded form, which it caches.

    ``sys.getsizeof``, not ``len``: a string of emoji holds four bytes a character.
    A binary packet is measured by its data: encoding it here would cache the
    WebSocket form, and a polling GET needs the base64 one.
    """
    if pkt is None:
        return 0
    if pkt.binary:
        return len(pkt.data)
    return sys.getsizeof(pkt.encode())


class PacketQueue(SmallQueue):
    """A session's queue of packets, keeping the count of the bytes they hold."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        self.bytes += packet_size(item)

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        self.bytes -= packet_size(item)
        return item

    async def get(self) -> Any:
        item = await super().get()
        self.bytes -= packet_size(item)
        return item

    def discard_all(self) -> None:
        super().discard_all()
        self.bytes = 0


def _protocol_of(ws: Any) -> Any:
    """The server's protocol object behind python-engineio's ASGI WebSocket, if it has one."""
    return getattr(getattr(ws, "asgi_send", None), "__self__", None)


def _writable_transport(ws: Any) -> Any:
    """uvicorn's transport under this ASGI WebSocket, if a frame may be written to it now."""
    protocol = _protocol_of(ws)
    if _SansIO is None or not isinstance(protocol, _SansIO):
        return None
    if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
        return None
    if protocol.conn.extensions:  # frames would need the negotiated compression
        return None
    transport = protocol.transport
    return None if transport.is_closing() else transport


class Session(async_socket.AsyncSocket):  # type: ignore[misc]
    """One Engine.IO session; see the module docstring."""

    last_ping: float | None  # python-engineio's: when the unanswered PING went out
    connected: bool
    ws: Any = None  # python-engineio's ASGI WebSocket, while the session is served over one
    _drain: asyncio.Task[None] | None = None
    _sending = 0  # the bytes of the packet the drain task has taken and is sending
    _ping_slot: int | None = None  # when the next PING is due, on the server's timers
    _closer: asyncio.Task[None] | None = None  # closing the WebSocket from this side
    _polling = False  # a long-polling GET is waiting for packets

    def __init__(self, server: Any, sid: str) -> None:
        super().__init__(server, sid)
        self.queue = PacketQueue()

    # -- sending -----------------------------------------------------------------------

    def direct_transport(self) -> Any:
        """Where the next frame of this session may be written now, or None.

        Only when nothing can be overtaken: a WebSocket session (not polling,
        not upgrading), nothing queued, no drain under way, and a uvicorn
        transport that is open and not applying back-pressure.
        """
        if self.ws is None or self.queue._queue or self._drain is not None or self.upgrading:
            return None
        return _writable_transport(self.ws)

    def bytes_waiting(self) -> int:
        """What this session holds for its client and the client has not read yet.

        The queued packets (a polling client's whole backlog), the packet a
        drain task is sending, and what the connection's transport buffers:
        a frame written straight to it stays there until the client reads.
        """
        transport = getattr(_protocol_of(self.ws), "transport", None)
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return int(self.queue.bytes + self._sending + buffered)

    def over_bytes(self, bound: int) -> str | None:
        """Why this session is a slow consumer, if more than ``bound`` bytes wait for it."""
        waiting = self.bytes_waiting()
        if waiting <= bound:
            return None
        return f"slow consumer: {waiting} bytes waiting (bound {bound} bytes)"

    def push(self, pkt: Any) -> None:
        """Queue one packet and write what can be written now."""
        self.queue.put_nowait(pkt)
        self._flush()

    async def send(self, pkt: Any) -> None:
        """A packet python-socketio sends itself (an ack, CONNECT, a DISCONNECT).

        Held to the same byte bound as events: a client that sends requests
        but never reads their answers would otherwise pile acks up without end.
        """
        if not await self.check_ping_timeout():
            return
        overflow = getattr(self.server, "on_overflow", None)
        if overflow is not None and overflow(self):
            return
        self.push(pkt)

    def _flush(self) -> None:
        if self.ws is None or self._drain is not None or self.upgrading:
            return  # polling (the GET takes the queue), upgrading, or a drain is on it
        queue = self.queue
        while queue._queue:
            transport = _writable_transport(self.ws)
            if transport is None:
                self._drain = asyncio.ensure_future(self._drain_queue(self.ws))
                return
            pkt = queue.get_nowait()
            if pkt is not None:
                transport.write(ws_frame(pkt.encode()))
            queue.task_done()
        if self.closed:
            self._close_ws()

    async def _drain_queue(self, ws: Any) -> None:
        queue = self.queue
        try:
            while queue._queue:
                pkt = queue.get_nowait()
                self._sending = packet_size(pkt)
                try:
                    if pkt is not None:
                        await ws.send(pkt.encode())
                finally:
                    self._sending = 0
                    queue.task_done()
        except Exception:
            queue.discard_all()  # the client is gone: nobody will read the rest
        finally:
            self._drain = None
        if self.closed:
            self._close_ws()

    def _close_ws(self) -> None:
        if self.ws is not None and self._closer is None:
            self._closer = asyncio.ensure_future(self.ws.close())

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        await super().close(wait=wait, abort=abort, reason=reason)
        if self.closed and self._drain is None and not self.queue._queue:
            self._close_ws()  # the client has its CLOSE packet; do not wait for it to hang up

    def abort(self) -> None:
        """Drop the backlog and the connection now (a slow consumer)."""
        self.queue.discard_all()
        if self._drain is not None:
            self._drain.cancel()
        transport = getattr(_protocol_of(self.ws), "transport", None)
        if transport is not None:
            transport.abort()
        elif not self.upgraded:
            self.queue.put_nowait(None)  # a pending polling GET returns at once

    # -- heartbeat ---------------------------------------------------------------------

    def schedule_ping(self) -> None:
        # Called at the handshake and on each PONG; python-engineio's service
        # task closes sessions whose PING went unanswered (check_ping_timeout).
        if self.last_ping:
            self.last_ping = None
            self._ping_slot = self._timers().call_later(self.server.ping_interval, self, self._ping)

    def _ping(self) -> None:
        self._ping_slot = None
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.push(packet.Packet(packet.PING))

    def _timers(self) -> Timers:
        timers: Timers | None = getattr(self.server, "timers", None)
        if timers is None:
            timers = self.server.timers = Timers()
        return timers

    # -- the WebSocket ----------------------------------------------------------------

    async def _websocket_handler(self, ws: Any) -> Any:
        if self.connected:
            if not await self._upgrade(ws):
                return None
        else:
            self.connected = True
            self.upgraded = True
        self.ws = ws
        self._flush()  # the OPEN packet, or what was queued during the upgrade
        try:
            await self._read(ws)
        finally:
            self.ws = None
            if self._drain is not None:
                self._drain.cancel()
            self._timers().cancel(self._ping_slot, self)
            self.queue.discard_all()
        if self._closer is None:
            await ws.close()
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return None

    async def _read(self, ws: Any) -> None:
        limit = self.server.max_http_buffer_size
        while True:
            try:
                data = await ws.wait()  # no timeout: the heartbeat ends silent sessions
            except Exception:
                return
            if data is None or len(data) > limit:
                return
            try:
                pkt = decode_packet(data)
            except MalformedPacket as exc:
                _log.info("closing Engine.IO session %s: %s", self.sid, exc)
                return
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                return
            except Exception:
                self.server.logger.exception("%s: cannot handle a packet", self.sid)
                return

    # -- long-polling -----------------------------------------------------------------

    async def poll(self) -> Any:
        # Two GETs would share out the queue between them, each hanging until the
        # heartbeat; the reference server refuses the second and closes the session.
        if self._polling:
            await self._refuse("a second long-poll while one is pending")
            raise OverlappingPoll()
        self._polling = True
        try:
            return await super().poll()
        finally:
            self._polling = False

    async def handle_post_request(self, environ: Any) -> None:
        # python-engineio's, with the body decoded by decode_payload: its own
        # decoding logged a traceback for unknown packet types and bodies not UTF-8.
        length = int(environ.get("CONTENT_LENGTH", "0"))
        if length > self.server.max_http_buffer_size:
            raise exceptions.ContentTooLongError()
        body = await environ["wsgi.input"].read(length)
        try:
            packets = decode_payload(body)
        except MalformedPacket as exc:
            await self._refuse(str(exc))
            raise
        for pkt in packets:
            # A type a client has no reason to send (OPEN, NOOP) is ignored, as over WebSocket.
            with contextlib.suppress(exceptions.UnknownPacketError):
                await self.receive(pkt)

    async def _refuse(self, reason: str) -> None:
        """Close the session for a request it cannot serve; python-engineio then answers 400."""
        _log.info("closing Engine.IO session %s: %s", self.sid, reason)
        # Not waiting for the CLOSE packet to be polled: the client may never poll again.
        await self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)

    async def _upgrade(self, ws: Any) -> bool:
        """The polling-to-WebSocket probe, as python-engineio does it."""
        self.upgrading = True  # packets wait in the queue meanwhile
        try:
            probe = packet.Packet(encoded_packet=await ws.wait())
            if probe.packet_type != packet.PING or probe.data != "probe":
                self.upgrading = False
                return False
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            self.queue.put_nowait(packet.Packet(packet.NOOP))  # ends the pending poll
            upgrade = packet.Packet(encoded_packet=await ws.wait())
            if upgrade.packet_type != packet.UPGRADE:
                self.upgrading = False
                return False
        except Exception:
            self.upgrading = False
            return False
        self.upgraded = True
        self.upgrading = False
        return True
