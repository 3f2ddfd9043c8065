"""A recovering client for tests: livebase.client.LivebaseClient, recording what it gets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from livebase.client import LivebaseClient
from tests.realtime.conftest import TIMEOUT


class Recovering:
    """A LivebaseClient that records every event (payload alone) and each ``connected``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = LivebaseClient(
            reconnection_delay=0.05, reconnection_delay_max=0.2, randomization_factor=0
        )
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self.sio.on("*", self._record)
        self.sio.on("connect_error", self._refused)
        self.gate = asyncio.Event()  # cleared: reconnects wait
        self.gate.set()

    async def _record(self, event: str, payload: Any = None) -> None:
        self.events.append((event, payload))
        self._changed.set()

    async def _refused(self, data: Any) -> None:
        await self._record("connect_error", data)

    async def connect(self, token: str | None, **auth: Any) -> dict[str, Any]:
        given = {"token": token, **auth} if token else auth

        async def gated_auth() -> dict[str, Any]:
            await self.gate.wait()
            return given

        await self.sio.connect(
            self.url,
            socketio_path="/realtime",
            transports=["websocket"],
            auth=gated_auth,
            wait_timeout=TIMEOUT,
        )
        return await self.next_connected()

    async def next_connected(self) -> dict[str, Any]:
        """The newest ``connected`` not yet taken, waiting for it if needed."""
        seen = sum(1 for name, _ in self.events if name == "connected")
        taken = getattr(self, "_connected_taken", 0)
        if seen <= taken:
            await self.wait(lambda: sum(1 for n, _ in self.events if n == "connected") > taken)
        self._connected_taken = taken + 1
        return [p for n, p in self.events if n == "connected"][taken]  # type: ignore[no-any-return]

    async def wait(self, check: Callable[[], bool], within: float = TIMEOUT) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not check():
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"gave up waiting; events: {self.events!r}"
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def drop(self, *, stay_away: bool = False) -> None:
        """Lose the connection: close the WebSocket, no Socket.IO goodbye. With
        ``stay_away`` the client reconnects only once :attr:`gate` is set."""
        if stay_away:
            self.gate.clear()
        await self.sio.eio.ws.close()
        await self.wait_disconnected()

    async def wait_disconnected(self) -> None:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while self.sio.connected:
            assert asyncio.get_running_loop().time() < deadline, "never noticed the drop"
            await asyncio.sleep(0.01)

    def texts(self, event: str = "item.created") -> list[str]:
        return [p["item"]["text"] for n, p in self.events if n == event]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()
