"""What a connected socket keeps on the server (performance issue: memory per socket).

python-engineio would keep four asyncio tasks and the whole handshake
request per WebSocket session; livebase's sessions keep one task (the
connection's own, which reads) and a heartbeat on shared timers. These
tests hold that in place, and check that the heartbeat still works both
ways: a client that answers PINGs stays, one that stops is dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from livebase.realtime.session import Session
from tests.realtime.conftest import TIMEOUT, Live

PING_INTERVAL = 1
PING_TIMEOUT = 2

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.parametrize("transport", ["websocket"]),
    pytest.mark.parametrize(
        "settings_overrides",
        [{"SOCKET_PING_INTERVAL": PING_INTERVAL, "SOCKET_PING_TIMEOUT": PING_TIMEOUT}],
    ),
]


async def raw_client(live: Live) -> tuple[ClientConnection, str]:
    """A WebSocket client doing the Engine.IO / Socket.IO handshake by hand; (ws, eio sid)."""
    port = int(live.base_url.rsplit(":", 1)[1])
    ws = await connect(
        f"ws://127.0.0.1:{port}/realtime/?EIO=4&transport=websocket",
        compression=None,
        ping_interval=None,
    )
    opened = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(opened, str) and opened.startswith("0{"), opened
    await ws.send("40" + json.dumps({"token": live.api.admin_token}))
    while not str(await asyncio.wait_for(ws.recv(), TIMEOUT)).startswith("40{"):
        pass
    return ws, json.loads(opened[1:])["sid"]


def server_tasks_of_sessions() -> list[asyncio.Task[object]]:
    """Running tasks whose coroutine is python-engineio's or a livebase session's."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if "engineio" in filename or filename.endswith("realtime/session.py"):
            found.append(task)
    return found


async def test_an_idle_websocket_session_has_no_task_of_its_own(live: Live) -> None:
    clients = [await raw_client(live)]  # the first also starts python-engineio's service task
    before = len(server_tasks_of_sessions())
    clients += [await raw_client(live) for _ in range(10)]
    sessions = [live.realtime.sio.eio.sockets[eio_sid] for _, eio_sid in clients]
    assert all(isinstance(session, Session) and session.ws is not None for session in sessions)
    # Each session has had its PING timer set; none is sending or closing.
    assert len(server_tasks_of_sessions()) == before
    for ws, _ in clients:
        await ws.close()


async def test_a_connected_socket_forgets_its_handshake_request(live: Live) -> None:
    ws, eio_sid = await raw_client(live)
    environ = live.realtime.sio.environ[eio_sid]
    assert not any(key.startswith("HTTP_") for key in environ)
    assert "QUERY_STRING" not in environ
    assert environ["asgi.scope"]["type"] == "websocket"
    # The socket still works: an event reaches it.
    await live.writer.socket.broadcast("sentinel", {"n": 1})
    while True:
        message = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if message == "2":
            await ws.send("3")
            continue
        if str(message).startswith('42["connected"'):
            continue
        assert str(message).startswith('42["sentinel",{"n":1}'), message
        break
    await ws.close()


async def test_a_client_answering_pings_stays_connected(live: Live) -> None:
    ws, _ = await raw_client(live)
    pings = []
    while len(pings) < 3:
        message = await asyncio.wait_for(ws.recv(), PING_INTERVAL + PING_TIMEOUT + 1)
        if message == "2":
            pings.append(time.monotonic())
            await ws.send("3")
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(gap >= PING_INTERVAL * 0.9 for gap in gaps), gaps  # not flooding
    # Still served after 3 pings: an event with an ack id gets its answer.
    await ws.send("421" + json.dumps(["join", "no-such-room"]))
    while True:
        message = str(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if message == "2":
            await ws.send("3")
            continue
        assert message.startswith("431["), message
        assert json.loads(message[3:]) == [{"success": True, "room": "no-such-room"}]
        break
    await ws.close()


async def test_a_client_that_stops_answering_pings_is_dropped(live: Live) -> None:
    ws, eio_sid = await raw_client(live)
    started = time.monotonic()
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(PING_INTERVAL + PING_TIMEOUT + 5):
            while True:
                await ws.recv()  # never answers "2"
    assert time.monotonic() - started >= PING_INTERVAL
    assert eio_sid not in live.realtime.sio.eio.sockets
