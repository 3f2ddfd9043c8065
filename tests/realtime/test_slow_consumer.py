"""A slow client must not hold up delivery to the others.

One raw websocket client does the Engine.IO / Socket.IO handshake by hand,
then stops reading. Its server-side queue grows past ``SOCKET_MAX_QUEUE``
packets, or past ``SOCKET_MAX_QUEUE_BYTES`` bytes (queued packets plus what
the transport buffers); it must be disconnected with a logged reason while
ordinary clients receive every event. A long-polling client that stops
polling has its backlog held to the same byte bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import time
import tracemalloc
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import bearer
from tests.realtime.conftest import TIMEOUT, Client, Live

MAX_QUEUE = 20
BLOB = "x" * 100_000
MAX_BROADCASTS = 400  # measured: about 50 fill the stuck socket's buffers and queue
WINDOW = 5  # how far the broadcaster may run ahead of the healthy clients (< MAX_QUEUE)

# A long heartbeat, so that only a queue bound can be why a stuck socket goes.
LONG_HEARTBEAT = {"SOCKET_PING_INTERVAL": 60, "SOCKET_PING_TIMEOUT": 60}
packet_bound = pytest.mark.parametrize(
    "settings_overrides", [{"SOCKET_MAX_QUEUE": MAX_QUEUE, **LONG_HEARTBEAT}]
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.parametrize("transport", ["websocket"]),
]


class Stuck:
    """A websocket client, connected to ``/`` by hand, that never reads after connecting."""

    def __init__(self, ws: ClientConnection, eio_sid: str, sid: str) -> None:
        self.ws = ws
        self.eio_sid = eio_sid  # the Engine.IO session (from the OPEN packet)
        self.sid = sid  # the Socket.IO id (from the CONNECT packet)

    @classmethod
    async def connect(cls, live: Live, token: str) -> Stuck:
        # A small kernel receive buffer (set before connecting, so that TCP
        # honours it) and a one-frame read-ahead in websockets: the backlog
        # builds up on the server, where the bound applies. No compression:
        # the blob would shrink to nothing on the wire.
        port = int(live.base_url.rsplit(":", 1)[1])
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
        ws = await connect(
            f"ws://127.0.0.1:{port}/realtime/?EIO=4&transport=websocket",
            sock=raw,
            compression=None,
            max_queue=1,
            max_size=None,
            ping_interval=None,
        )
        opened = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        await ws.send("40" + json.dumps({"token": token}))
        while True:
            message = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert isinstance(message, str)
            if message.startswith("40{"):
                return cls(ws, json.loads(opened[1:])["sid"], json.loads(message[2:])["sid"])
            assert message.startswith("42"), message  # nothing else comes before CONNECT

    async def close(self) -> None:
        """Read again: the backlog, then the server's DISCONNECT (or the close); then close."""
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                while await self.ws.recv() != "41":
                    pass
        await self.ws.close()

    def abort(self) -> None:
        """Hang up without reading (nor waiting for) anything more."""
        self.ws.transport.abort()


async def healthy_clients(live: Live, count: int) -> tuple[list[Client], dict[str, list[int]]]:
    """``count`` ordinary clients, each recording only the ``n`` of every ``load`` it gets."""
    clients: list[Client] = []
    received: dict[str, list[int]] = {}

    async def one(i: int) -> None:
        client = await live.connect(None, f"healthy-{i}")
        got = received[client.name] = []

        async def on_load(payload: Any, *offset: Any) -> None:
            assert payload["blob"] == BLOB
            got.append(payload["n"])

        # Takes precedence over the recording catch-all: 100 kB payloads are not kept.
        client.sio.on("load", on_load)
        clients.append(client)

    for start in range(0, count, 20):  # a few at a time: 2 cores
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 20))))
    return clients, received


async def broadcast_until_dropped(live: Live, stuck: Stuck, received: dict[str, list[int]]) -> int:
    """Broadcast 100 kB payloads, keeping pace with the healthy clients, until ``stuck`` is gone.

    Returns how many were sent; by then every healthy client has all of them.
    """
    sent = 0
    while stuck.sid in live.realtime.connections.by_sid:
        assert sent < MAX_BROADCASTS, f"still connected after {sent} broadcasts of 100 kB"
        await live.realtime.socket.broadcast("load", {"blob": BLOB, "n": sent})
        sent += 1
        await _all_received(received, sent - WINDOW)
    await _all_received(received, sent)
    return sent


async def _all_received(received: dict[str, list[int]], count: int) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while any(len(got) < count for got in received.values()):
        late = {name: len(got) for name, got in received.items() if len(got) < count}
        assert asyncio.get_running_loop().time() < deadline, f"fell behind (of {count}): {late}"
        await asyncio.sleep(0.005)


def _log_lines_about(caplog: pytest.LogCaptureFixture, sid: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "livebase.realtime" and sid in r.getMessage()
    ]


@packet_bound
async def test_stuck_socket_is_dropped_and_100_others_get_every_broadcast(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="livebase.realtime")
    started = time.monotonic()
    token, user = await live.api.user("slow@example.com")
    healthy, received = await healthy_clients(live, 100)
    connected = time.monotonic()
    stuck = await Stuck.connect(live, token)
    try:
        assert live.realtime.connections.by_sid[stuck.sid].user_id == user["id"]

        sent = await broadcast_until_dropped(live, stuck, received)
        dropped = time.monotonic()

        assert all(got == list(range(sent)) for got in received.values())
        assert not any(client.disconnected.is_set() for client in healthy)
        reasons = _log_lines_about(caplog, stuck.sid)
        assert len(reasons) == 1, reasons
        assert "slow consumer" in reasons[0] and f"bound {MAX_QUEUE}" in reasons[0], reasons
        assert user["id"] in reasons[0]
        # Delivery to the others goes on after the drop; the stuck socket is no longer counted.
        await live.realtime.socket.broadcast("load", {"blob": BLOB, "n": sent})
        await _all_received(received, sent + 1)
        stats = live.realtime.stats()
        assert stats["connections"] == 100 and stats["users"] == 0
        took = time.monotonic() - started
        print(f"\n100 clients connected in {connected - started:.1f}s, stuck socket dropped after")
        print(f"{sent} broadcasts in {dropped - connected:.1f}s, {took:.1f}s in all")
        assert took < 30
    finally:
        await stuck.close()


@packet_bound
async def test_dropped_slow_consumer_loses_its_engineio_session(live: Live) -> None:
    """Disconnected means the transport too: its backlog is not kept for a client that
    will not read it, and the DISCONNECT packet, queued behind that backlog, cannot reach it.
    """
    token, _ = await live.api.user("slow@example.com")
    _, received = await healthy_clients(live, 1)
    stuck = await Stuck.connect(live, token)
    try:
        assert stuck.eio_sid in live.realtime.sio.eio.sockets
        await broadcast_until_dropped(live, stuck, received)
        deadline = asyncio.get_running_loop().time() + 5
        while stuck.eio_sid in live.realtime.sio.eio.sockets:
            session = live.realtime.sio.eio.sockets[stuck.eio_sid]
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(
                    f"5 s after the drop its Engine.IO session is still open "
                    f"(closed={session.closed}), holding {session.queue.qsize()} queued packets"
                )
            await asyncio.sleep(0.05)
    finally:
        await stuck.close()


@packet_bound
async def test_a_client_that_pauses_and_resumes_in_time_gets_everything_in_order(
    live: Live,
) -> None:
    """Back-pressure, then recovery: packets wait in the session's queue (drained by a
    task through uvicorn) and nothing written straight to the transport overtakes them.
    """
    token, _ = await live.api.user("slow@example.com")
    stuck = await Stuck.connect(live, token)
    try:
        session = live.realtime.sio.eio.sockets[stuck.eio_sid]
        sent = 0
        while not (session._drain is not None and session.queue.qsize() >= 3):
            assert sent < MAX_BROADCASTS, "the transport never pushed back"
            await live.realtime.socket.broadcast("load", {"blob": BLOB, "n": sent})
            sent += 1
        assert session.queue.qsize() < MAX_QUEUE  # backed up, not yet a slow consumer
        for small in range(3):  # small ones must queue behind the big ones too
            await live.realtime.socket.broadcast("load", {"blob": "", "n": sent + small})
        sent += 3

        # Read again, with a normal receive buffer: a 4 kB window moves 100 kB slowly.
        raw = stuck.ws.transport.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got: list[int] = []
        async with asyncio.timeout(TIMEOUT):
            while len(got) < sent:
                message = await stuck.ws.recv()
                assert isinstance(message, str), message
                if message.startswith('42["connected",'):
                    continue
                assert message.startswith('42["load",'), message[:40]
                got.append(json.loads(message[2:])[1]["n"])
        assert got == list(range(sent))
        assert stuck.sid in live.realtime.connections.by_sid

        # Caught up: the next event goes straight to the transport again.
        direct = live.realtime.delivery.direct
        await live.realtime.socket.broadcast("load", {"blob": "", "n": sent})
        message = await asyncio.wait_for(stuck.ws.recv(), TIMEOUT)
        assert json.loads(str(message)[2:])[1]["n"] == sent
        assert live.realtime.delivery.direct == direct + 1
        # Everything read: nothing is counted against the byte bound any more.
        assert session.bytes_waiting() == 0
    finally:
        await stuck.ws.close()  # still a healthy client: nothing to wait for


# -- the byte bound ------------------------------------------------------------------------

MAX_QUEUE_BYTES = 512 * 1024
ITEM_SIZE = 128 * 1024
ITEMS = 40  # 5 MiB of events: ten times the bound, far below SOCKET_MAX_QUEUE's 1000 packets
byte_bound = pytest.mark.parametrize(
    "settings_overrides", [{"SOCKET_MAX_QUEUE_BYTES": MAX_QUEUE_BYTES, **LONG_HEARTBEAT}]
)


class Unpolled:
    """A long-polling client, connected to ``/`` by hand, that never polls after connecting."""

    def __init__(self, eio_sid: str, sid: str) -> None:
        self.eio_sid = eio_sid
        self.sid = sid

    @classmethod
    async def connect(cls, live: Live, token: str) -> Unpolled:
        url = f"{live.base_url}/realtime/"
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            opened = (await http.get(url, params={"EIO": "4", "transport": "polling"})).text
            assert opened.startswith("0{"), opened
            eio_sid = json.loads(opened[1:])["sid"]
            session = {"EIO": "4", "transport": "polling", "sid": eio_sid}
            posted = await http.post(
                url, params=session, content="40" + json.dumps({"token": token})
            )
            assert posted.text == "OK", posted.text
            while True:
                for message in (await http.get(url, params=session)).text.split("\x1e"):
                    if message.startswith("40{"):
                        return cls(eio_sid, json.loads(message[2:])["sid"])
                    assert message.startswith(("42", "2")), message


async def writer_and_reader(live: Live) -> tuple[str, str, Client, list[int]]:
    """User U, allowed to write and read ``blobs``, with a reading socket.

    Returns U's token and id, the reading socket, and the ``n`` of every
    ``blobs`` item it gets.
    """
    await live.api.collection("blobs", {"n": {"type": "Integer"}, "body": {"type": "Text"}})
    await live.api.allow("user", "blobs", "create", fields=["*"])
    await live.api.allow("user", "blobs", "read", fields=["*"])
    token, user = await live.api.user("writer@example.com")
    reader = await live.connect(token, "reader")
    got: list[int] = []

    async def on_created(payload: Any, *offset: Any) -> None:
        got.append(payload["item"]["n"])  # not the body: memory is measured

    reader.sio.on("item.created", on_created)
    return token, user["id"], reader, got


async def write_big_items(live: Live, token: str) -> int:
    """U writes ``ITEMS`` items of ``ITEM_SIZE`` bytes, one at a time.

    Returns the most memory still held, after any of the writes, of what was
    allocated since the first: the server runs in this process, and what a
    write leaves behind (garbage collected) is what waits for someone.
    """
    tracemalloc.start()
    try:
        held = 0
        for n in range(ITEMS):
            body = {"n": n, "body": chr(ord("a") + n % 26) * ITEM_SIZE}
            await live.api.ok("POST", "/items/blobs", 201, headers=bearer(token), json=body)
            if n % 4 == 3:  # a full collection takes a while
                gc.collect()
                held = max(held, tracemalloc.get_traced_memory()[0])
        return held
    finally:
        tracemalloc.stop()


async def session_ends(live: Live, eio_sid: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while eio_sid in live.realtime.sio.eio.sockets:
        session = live.realtime.sio.eio.sockets[eio_sid]
        assert asyncio.get_running_loop().time() < deadline, (
            f"still open, {session.queue.qsize()} packets queued"
        )
        await asyncio.sleep(0.05)


def assert_dropped_once_for_bytes(caplog: pytest.LogCaptureFixture, sid: str, user: str) -> None:
    reasons = _log_lines_about(caplog, sid)
    assert len(reasons) == 1, reasons
    assert "slow consumer" in reasons[0] and f"bound {MAX_QUEUE_BYTES} bytes" in reasons[0]
    assert user in reasons[0]


# Without the byte bound the stuck socket kept every event: ITEMS x ITEM_SIZE, 5 MiB here
# (twice that before event packets kept only their encoded form). With it: the bound,
# one event past it, and the few copies the last request and event leave until the next.
HELD_LIMIT = MAX_QUEUE_BYTES + 8 * ITEM_SIZE


@byte_bound
async def test_a_socket_with_more_bytes_waiting_than_the_bound_is_dropped(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="livebase.realtime")
    token, user_id, reader, got = await writer_and_reader(live)
    stuck = await Stuck.connect(live, token)
    try:
        assert live.realtime.connections.by_sid[stuck.sid].user_id == user_id

        held = await write_big_items(live, token)

        await live.sentinel(reader)
        assert got == list(range(ITEMS))  # the reading socket, in order
        assert held < HELD_LIMIT, f"{held / 2**20:.1f} MiB held after a write"
        assert_dropped_once_for_bytes(caplog, stuck.sid, user_id)
        await session_ends(live, stuck.eio_sid)
    finally:
        stuck.abort()


@byte_bound
async def test_a_polling_client_that_never_polls_has_its_backlog_bounded_in_bytes(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="livebase.realtime")
    token, user_id, reader, got = await writer_and_reader(live)
    unpolled = await Unpolled.connect(live, token)
    assert live.realtime.connections.by_sid[unpolled.sid].user_id == user_id

    held = await write_big_items(live, token)

    await live.sentinel(reader)
    assert got == list(range(ITEMS))
    assert held < HELD_LIMIT, f"{held / 2**20:.1f} MiB held after a write"
    assert_dropped_once_for_bytes(caplog, unpolled.sid, user_id)
    await session_ends(live, unpolled.eio_sid)


@byte_bound
async def test_a_client_that_never_reads_its_acks_is_held_to_the_byte_bound(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """Acks are sent by python-socketio itself, not by the delivery stage: a client
    that asks and never reads the answers must meet the same bound as for events.
    """
    caplog.set_level(logging.WARNING, logger="livebase.realtime")
    token, user = await live.api.user("asker@example.com")
    unpolled = await Unpolled.connect(live, token)
    room = "r" * 190
    # Each join's ack echoes the 190-character room; a POST carries 1000 of them.
    batch = "\x1e".join(f'42{n}["join","{room}"]' for n in range(1000))
    url = f"{live.base_url}/realtime/"
    session = {"EIO": "4", "transport": "polling", "sid": unpolled.eio_sid}
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        for _ in range(2 * MAX_QUEUE_BYTES // (1000 * len(room))):  # twice the bound in acks
            if unpolled.eio_sid not in live.realtime.sio.eio.sockets:
                break
            await http.post(url, params=session, content=batch)
    await session_ends(live, unpolled.eio_sid)
    assert_dropped_once_for_bytes(caplog, unpolled.sid, user["id"])
