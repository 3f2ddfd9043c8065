"""Engine.IO by hand: what python-engineio does not handle on its own (realtime/session.py).

A packet that is not Engine.IO v4 closes that one session quietly (an info
line, no traceback), over WebSocket and long-polling alike, as the reference
server does on a parse error. A second long-polling GET while one is pending
is answered 400 at once and closes the session, as the reference server does
(its protocol test suite: "closes the session upon duplicate poll requests").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.realtime.conftest import TIMEOUT, Client, Live
from tests.realtime.test_robustness import Raw

# The raw clients choose their own transport; the fixture's clients (bystanders) use WebSocket.
BYSTANDER_ON_WEBSOCKET = pytest.mark.parametrize("transport", ["websocket"])
# No PING may end a pending long-poll in the middle of a test about pending long-polls.
SLOW_HEARTBEAT = {"SOCKET_PING_INTERVAL": 25, "SOCKET_PING_TIMEOUT": 20}

NOT_ENGINEIO = ["9", "7", "8", '8{"a":1}', "9probe", "a", "", "-1"]


class Poll:
    """A long-polling Engine.IO v4 / Socket.IO v5 client, spoken by hand over httpx."""

    def __init__(self, http: httpx.AsyncClient, sid: str) -> None:
        self.http = http
        self.sid = sid

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, live: Live) -> AsyncIterator[Poll]:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=TIMEOUT) as http:
            opened = await http.get("/realtime/", params={"EIO": "4", "transport": "polling"})
            assert opened.status_code == 200 and opened.text.startswith("0{"), opened.text
            poll = cls(http, json.loads(opened.text[1:])["sid"])
            assert (await poll.post("40")).status_code == 200
            while not any(p.startswith('42["connected"') for p in await poll.packets()):
                pass
            yield poll

    async def get(self) -> httpx.Response:
        return await self.http.get(
            "/realtime/", params={"EIO": "4", "transport": "polling", "sid": self.sid}
        )

    async def post(self, body: str | bytes) -> httpx.Response:
        return await self.http.post(
            "/realtime/",
            params={"EIO": "4", "transport": "polling", "sid": self.sid},
            content=body,
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )

    async def packets(self) -> list[str]:
        response = await self.get()
        assert response.status_code == 200, response.text
        return response.text.split("\x1e")


def _logged(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    """(info lines about closed sessions, tracebacks) that the server logged.

    (A request for a session that is gone gets python-engineio's one-line
    "Invalid session" error: not a traceback.)
    """
    closing = [r.getMessage() for r in caplog.records if "closing Engine.IO" in r.getMessage()]
    tracebacks = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]
    return closing, tracebacks


async def _connections_become(live: Live, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while live.realtime.stats()["connections"] != count:
        assert asyncio.get_running_loop().time() < deadline, live.realtime.stats()
        await asyncio.sleep(0.01)


async def _bystander_still_served(live: Live, bystander: Client) -> None:
    await live.realtime.socket.emit_to_room("lobby", "lobby.ping", {"n": 1})
    await bystander.wait_for("lobby.ping")


async def _bystander(live: Live) -> Client:
    bystander = await live.connect(None, "bystander")
    assert (await bystander.call("join", "lobby"))["success"] is True
    return bystander


# -- packets that are not Engine.IO ----------------------------------------------------------


@BYSTANDER_ON_WEBSOCKET
@pytest.mark.parametrize("frame", NOT_ENGINEIO)
async def test_unknown_packet_type_over_websocket_closes_that_socket_quietly(
    live: Live, frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livebase.realtime")
    bystander = await _bystander(live)
    raw = await Raw.connect(live)
    await raw.ws.send(frame)
    with pytest.raises(ConnectionClosed):
        await raw.call(1, "join", "probe")
    await _connections_become(live, 1)
    await _bystander_still_served(live, bystander)
    closing, tracebacks = _logged(caplog)
    assert tracebacks == [] and len(closing) == 1, (closing, tracebacks)


@BYSTANDER_ON_WEBSOCKET
@pytest.mark.parametrize(
    "body", [*NOT_ENGINEIO[:-2], "3\x1e9", b"\xff\xfe\x00", b"4\xc3", "b!!not base64!!"]
)
async def test_unknown_packet_type_over_long_polling_closes_that_session_quietly(
    live: Live, body: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livebase.realtime")
    bystander = await _bystander(live)
    async with Poll.open(live) as poll:
        refused = await poll.post(body)
        assert refused.status_code == 400, refused.text
        assert (await poll.get()).status_code == 400  # the session is gone
    await _connections_become(live, 1)
    await _bystander_still_served(live, bystander)
    closing, tracebacks = _logged(caplog)
    assert tracebacks == [] and len(closing) == 1, (closing, tracebacks)


# -- long-polling requests that overlap ------------------------------------------------------


@BYSTANDER_ON_WEBSOCKET
@pytest.mark.parametrize("settings_overrides", [SLOW_HEARTBEAT])
async def test_a_second_pending_long_poll_is_refused_at_once(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livebase.realtime")
    bystander = await _bystander(live)
    async with Poll.open(live) as poll:
        session: Any = live.realtime.sio.eio.sockets[poll.sid]
        first = asyncio.create_task(poll.get())
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not session._polling:  # the first GET is waiting for packets
            assert asyncio.get_running_loop().time() < deadline, "the first GET never arrived"
            await asyncio.sleep(0.01)

        # Far sooner than the heartbeat (25 s) that used to end both.
        second = await asyncio.wait_for(poll.get(), TIMEOUT)
        assert second.status_code == 400
        answered = await asyncio.wait_for(first, TIMEOUT)
        assert answered.status_code == 200
        assert (await poll.get()).status_code == 400  # the session is closed, as in engine.io
    await _connections_become(live, 1)
    await _bystander_still_served(live, bystander)
    closing, tracebacks = _logged(caplog)
    assert tracebacks == [] and len(closing) == 1, (closing, tracebacks)


# -- Socket.IO events: names and nesting -------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("transport", ["websocket"])
async def test_events_nested_too_deeply_or_without_a_name_are_ignored(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """Deep nesting must not reach handlers, recursive code, or a traceback.

    Past orjson's own limit (1024) the message does not parse; below it, the
    arguments may nest at most SOCKET_MAX_PAYLOAD_DEPTH levels (default 64).
    """
    caplog.set_level(logging.INFO, logger="livebase.realtime")
    limit = live.realtime.settings.SOCKET_MAX_PAYLOAD_DEPTH
    assert limit == 64

    async def echo(info: Any, payload: Any) -> Any:
        return payload

    live.realtime.socket.register_event_handler("echo", echo)
    bystander = await _bystander(live)
    raw = await Raw.connect(live)
    deepest_allowed = json.loads(_nested(limit))
    assert await raw.call(1, "echo", deepest_allowed) == deepest_allowed

    refused = [
        '["echo",' + _nested(limit + 1) + "]",
        '["echo",{"a":' + _nested(900) + "}]",  # parses: orjson allows 1024
        '["join",' + _nested(10_000) + "]",
        '["join",' + "[" * 100_000 + "]",
        '["echo","fine",' + _nested(200) + "]",  # any argument
        "[" + _nested(500) + ',"echo"]',  # a name that is not a string
        '[["echo"],"x"]',
        "[1]",
        '[{"echo":1}]',
        "[]",
    ]
    for n, event in enumerate(refused, start=10):
        await raw.ws.send(f"42{n}{event}")
        # Answered in order: the refused event had no answer and broke nothing.
        answer = await raw.call(n + 100, "join", f"after-{n}")
        assert answer == {"success": True, "room": f"after-{n}"}, (event[:40], answer)
    assert [m for m in raw.inbox if isinstance(m, str) and m.startswith("43")] == []
    await raw.ws.close()
    await _bystander_still_served(live, bystander)
    ignored = [r for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == len(refused)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
