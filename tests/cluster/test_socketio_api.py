"""python-socketio's own API on ``sio`` in a cluster: it works across processes, or says why not.

Two nodes in the test's event loop share PostgreSQL and Redis; sockets are
on node B, the calls are made on node A's ``sio`` (as an extension holding
the server would make them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from livebase.realtime.server import Realtime
from tests.api.conftest import make_settings
from tests.conftest import REDIS_TEST_URL
from tests.realtime.conftest import TIMEOUT, Client, serving

pytestmark = pytest.mark.timeout(60)


@dataclass
class Pair:
    a: Realtime
    b: Realtime
    b_url: str


@pytest.fixture
async def pair(fresh_database: str, redis_key: str, tmp_path: Path) -> AsyncIterator[Pair]:
    settings = make_settings(
        fresh_database,
        tmp_path,
        CACHE_REDIS_URL=REDIS_TEST_URL,
        SOCKET_REDIS_KEY=redis_key,
        SOCKET_ALLOW_ANONYMOUS=True,
    )
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(serving(settings))
        b = await stack.enter_async_context(serving(settings))
        yield Pair(a.realtime, b.realtime, b.base_url)


@contextlib.asynccontextmanager
async def on_b(pair: Pair, name: str) -> AsyncIterator[tuple[Client, str]]:
    """An anonymous client connected to node B, and its sid there."""
    client = Client(name)
    await client.sio.connect(
        pair.b_url, socketio_path="/realtime", transports=["websocket"], wait_timeout=TIMEOUT
    )
    try:
        await client.wait_for("connected")
        sid = client.sio.get_sid("/")
        assert sid is not None and sid in pair.b.connections.by_sid
        yield client, sid
    finally:
        if client.sio.connected:
            await client.sio.disconnect()


async def mark(pair: Pair, *clients: Client, n: int) -> None:
    """A broadcast through A's sio: what A did before, each client now has or never gets."""
    await pair.a.sio.emit("mark", {"n": n})
    for client in clients:
        await client.wait_for("mark", lambda p: p["n"] == n)


async def until(condition: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def test_emit_on_a_reaches_sockets_on_b_by_room_sid_and_broadcast(pair: Pair) -> None:
    async with on_b(pair, "in the room") as (inside, sid), on_b(pair, "outside") as (outside, _):
        pair.b.sio.manager.join(sid, "team:red")
        await pair.a.sio.emit("news", {"to": "room"}, to="team:red")
        await pair.a.sio.emit("news", {"to": "sid"}, to=sid)
        await pair.a.sio.emit("news", ({"to": "two"}, "args"), to=["team:red"])
        await mark(pair, inside, outside, n=1)
        assert inside.received("news") == [{"to": "room"}, {"to": "sid"}, {"to": "two"}]
        assert outside.received("news") == []
        assert outside.received("mark") == [{"n": 1}]  # the broadcast reached B too


async def test_enter_and_leave_room_of_a_socket_on_b_from_a(pair: Pair) -> None:
    async with on_b(pair, "ann") as (ann, sid):
        await pair.a.sio.enter_room(sid, "team:blue")
        await until(lambda: "team:blue" in pair.b.sio.manager.get_rooms(sid, "/"), "entered")
        await pair.a.sio.emit("news", {"n": 1}, to="team:blue")
        await pair.a.sio.leave_room(sid, "team:blue")
        await until(lambda: "team:blue" not in pair.b.sio.manager.get_rooms(sid, "/"), "left")
        await pair.a.sio.emit("news", {"n": 2}, to="team:blue")
        await mark(pair, ann, n=1)
        assert ann.received("news") == [{"n": 1}]


async def test_close_room_on_a_empties_it_on_b(pair: Pair) -> None:
    async with on_b(pair, "ann") as (ann, sid):
        pair.b.sio.manager.join(sid, "team:green")
        await pair.a.sio.close_room("team:green")
        await until(lambda: "team:green" not in pair.b.sio.manager.get_rooms(sid, "/"), "closed")
        await pair.a.sio.emit("news", {"n": 1}, to="team:green")
        await mark(pair, ann, n=1)
        assert ann.received("news") == []


async def test_disconnect_on_a_of_a_socket_on_b(pair: Pair) -> None:
    async with on_b(pair, "ann") as (ann, sid), on_b(pair, "bob") as (bob, _):
        await pair.a.sio.disconnect(sid)
        await asyncio.wait_for(ann.disconnected.wait(), TIMEOUT)
        await until(lambda: sid not in pair.b.connections.by_sid, "forgotten on B")
        await mark(pair, bob, n=1)
        assert bob.sio.connected


async def test_what_cannot_cross_processes_is_refused_clearly(pair: Pair) -> None:
    async with on_b(pair, "ann") as (ann, sid):
        with pytest.raises(ValueError, match="callback"):
            await pair.a.sio.emit("ask", {"n": 1}, to=sid, callback=lambda *args: None)
        with pytest.raises(ValueError, match="callback"):
            await pair.a.sio.call("ask", {"n": 1}, to=sid, timeout=1)
        with pytest.raises(ValueError, match="binary"):
            await pair.a.sio.emit("blob", b"\x00\x01", to=sid)
        await mark(pair, ann, n=1)
        assert ann.received("ask") == [] and ann.received("blob") == []
