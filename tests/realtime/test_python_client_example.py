"""The README's python-socketio client, run as printed there, against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.realtime.conftest import TIMEOUT, Live

README = Path(__file__).resolve().parents[2] / "README.md"

# The snippet chooses its transports itself (websocket, then polling).
pytestmark = pytest.mark.parametrize("transport", ["websocket"])


def _readme_example(base_url: str) -> dict[str, Any]:
    """The first ```python block under "### Python client", executed as a module."""
    text = README.read_text()
    section = text.split("\n### Python client\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README: no python block under '### Python client'"
    module: dict[str, Any] = {"__name__": "readme_python_client"}
    exec(compile(match.group(1), f"{README}:python-client", "exec"), module)
    module["BASE"] = base_url  # the one line a reader edits
    return module


async def _until(check: Callable[[], bool], what: str, lines: list[str]) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"no {what}; shown: {lines}"
        await asyncio.sleep(0.02)


async def _messages(live: Live) -> None:
    await live.api.collection("messages", {"text": {"type": "String", "allowNull": False}})


async def test_the_feed_shows_messages_created_by_others(live: Live) -> None:
    example = _readme_example(live.base_url)
    await _messages(live)
    lines: list[str] = []
    feed = asyncio.create_task(example["main"](ADMIN_EMAIL, ADMIN_PASSWORD, lines.append))
    try:
        await _until(lambda: "connected" in lines, "connect", lines)
        await live.api.ok(
            "POST", "/items/messages", 201, headers=live.api.admin, json={"text": "hello"}
        )
        await _until(lambda: "new message: hello" in lines, "message", lines)
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(feed, TIMEOUT)
    assert lines[0] == "connected"
    assert lines[1] == "new message: hello"
    assert lines[2].startswith("disconnected: ")


async def test_only_the_messages_collection_is_shown(live: Live) -> None:
    example = _readme_example(live.base_url)
    await _messages(live)
    await live.api.collection("notes", {"text": {"type": "String"}})
    lines: list[str] = []
    feed = asyncio.create_task(example["main"](ADMIN_EMAIL, ADMIN_PASSWORD, lines.append))
    try:
        await _until(lambda: "connected" in lines, "connect", lines)
        for collection, text in (("notes", "a note"), ("messages", "a message")):
            await live.api.ok(
                "POST", f"/items/{collection}", 201, headers=live.api.admin, json={"text": text}
            )
        await _until(lambda: "new message: a message" in lines, "message", lines)
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(feed, TIMEOUT)
    assert [line for line in lines if line.startswith("new message")] == ["new message: a message"]


async def test_a_refused_token_says_why(live: Live) -> None:
    example = _readme_example(live.base_url)
    lines: list[str] = []
    sio = example["live_feed"](lines.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            live.base_url,
            socketio_path="/realtime",
            transports=["websocket", "polling"],
            auth={"token": "not-a-jwt"},
            wait_timeout=TIMEOUT,
        )
    assert lines == ["connection refused: malformed token"]
