"""A real livebase server on a free 127.0.0.1 port, with real Socket.IO clients.

The server runs in the test's event loop (uvicorn, websockets and long
polling on a real socket), so tests can also reach its services directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import uvicorn

from livebase.app import create_app, services_of
from livebase.cli import SERVER_OPTIONS
from livebase.realtime.server import Realtime
from livebase.services.container import Services
from tests.api.conftest import make_settings
from tests.conftest import REDIS_TEST_URL
from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.servers import free_port

TIMEOUT = 10.0
STARTUP_TIMEOUT = 60.0


class Client:
    """A python-socketio AsyncClient that records every event it receives."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._record)
        self.sio.on("disconnect", self._on_disconnect)

    async def _record(self, event: str, *args: Any) -> None:
        self.events.append((event, args[0] if args else None))
        self._changed.set()

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def wait_for(
        self, event: str, where: Callable[[Any], bool] = lambda _: True, within: float = TIMEOUT
    ) -> Any:
        """The first ``event`` whose payload satisfies ``where`` (waiting if needed)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            for name, payload in self.events:
                if name == event and where(payload):
                    return payload
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{self.name} got no {event!r}; it got {self.events!r}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def received(self, event: str) -> list[Any]:
        return [payload for name, payload in self.events if name == event]

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data, timeout=TIMEOUT)


@dataclass
class Live:
    """A running livebase, as tests see it.

    In the "cluster" topology two nodes share PostgreSQL and Redis: clients
    connect to node B (``realtime``, ``base_url``), while REST calls and
    ``services`` go to node A (``writer``), so every change, notification
    and sentinel crosses Redis. Alone, both are the same node.
    """

    base_url: str
    api: Api
    services: Services
    realtime: Realtime
    transport: str
    writer: Realtime
    clients: list[Client] = field(default_factory=list)
    _sentinels: int = 0

    async def connect(
        self, token: str | None = None, name: str = "client", **options: Any
    ) -> Client:
        """Connect a client (``auth.token`` unless told otherwise) and wait for ``connected``."""
        client = Client(name)
        self.clients.append(client)
        auth = options.pop("auth", {"token": token} if token else None)
        query = options.pop("url_query", None)
        await client.sio.connect(
            f"{self.base_url}?{query}" if query else self.base_url,
            socketio_path="/realtime",
            transports=[self.transport],
            auth=auth,
            wait_timeout=TIMEOUT,
            **options,
        )
        await client.wait_for("connected")
        return client

    async def in_room(self, room: str, *names: str) -> list[Client]:
        """Administrators' clients, one per name, each joined to ``room``."""
        clients = []
        for name in names:
            client = await self.connect(self.api.admin_token, name)
            assert (await client.call("join", room))["success"] is True
            clients.append(client)
        return clients

    async def connect_to_writer(self, name: str) -> Client:
        """An administrator's client of node A (the writer): in the cluster topology,
        the other node than :meth:`connect`'s; alone, the same one."""
        client = Client(name)
        self.clients.append(client)
        await client.sio.connect(
            str(self.api.client.base_url),
            socketio_path="/realtime",
            transports=["websocket"],
            auth={"token": self.api.admin_token},
            wait_timeout=TIMEOUT,
        )
        await client.wait_for("connected")
        return client

    async def sentinel(self, *clients: Client) -> None:
        """Broadcast a marker and wait until each client has it.

        Events reach a socket in the order they were sent, so anything sent
        before the marker that a client did not get, it will never get.
        """
        self._sentinels += 1
        mark = self._sentinels
        await self.writer.socket.broadcast("sentinel", {"n": mark})
        for client in clients:
            await client.wait_for("sentinel", lambda p: p["n"] == mark)


TRANSPORTS = ["websocket", "polling"]
TOPOLOGIES = ["alone", "cluster"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster topology runs every realtime test once: PostgreSQL, websocket.

    (The transports and SQLite are covered alone; a cluster needs PostgreSQL.)
    """
    for item in list(items):
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("topology") == "cluster" and (
            params.get("database_url") != "postgresql" or params.get("transport") == "polling"
        ):
            items.remove(item)


@dataclass
class Node:
    app: Any
    realtime: Realtime
    base_url: str


@contextlib.asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[Node]:
    """One livebase node on a free port, in the test's event loop."""
    app = create_app(settings)
    realtime: Realtime | None = app.state.realtime
    port = free_port()
    config = uvicorn.Config(
        app if realtime is None else realtime.asgi(app),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=2,
        **{**SERVER_OPTIONS, "loop": "none"},  # the test's own event loop
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(STARTUP_TIMEOUT):  # start-up: migrations, the administrator
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield Node(app, realtime, f"http://127.0.0.1:{port}")  # type: ignore[arg-type]
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live(
    database_url: str,
    tmp_path: Path,
    transport: str,
    topology: str,
    settings_overrides: dict[str, Any],
    request: pytest.FixtureRequest,
) -> AsyncIterator[Live]:
    # A short heartbeat: python-engineio's polling client only notices a
    # refused or closed session when its pending long-poll returns.
    quick = {"SOCKET_PING_INTERVAL": 1, "SOCKET_PING_TIMEOUT": 2, **settings_overrides}
    if topology == "cluster":
        quick |= {
            "CACHE_REDIS_URL": REDIS_TEST_URL,
            "SOCKET_REDIS_KEY": request.getfixturevalue("redis_key"),
        }
    live = None
    async with contextlib.AsyncExitStack() as stack:
        writer = await stack.enter_async_context(
            serving(make_settings(database_url, tmp_path, **quick))
        )
        home = writer
        if topology == "cluster":
            home = await stack.enter_async_context(
                serving(make_settings(database_url, tmp_path, **quick))
            )
        try:
            async with httpx.AsyncClient(base_url=writer.base_url, timeout=TIMEOUT) as http:
                login = await http.post(
                    "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
                )
                api = Api(client=http, admin_token=login.json()["token"])
                live = Live(
                    home.base_url,
                    api,
                    services_of(writer.app),
                    home.realtime,
                    transport,
                    writer.realtime,
                )
                yield live
        finally:
            clients = live.clients if live else []
            await asyncio.gather(*(c.sio.disconnect() for c in clients if c.sio.connected))


@pytest.fixture
async def recovering() -> AsyncIterator[Callable[[Live], Any]]:
    """Makes clients that can drop their connection and recover it; closes them after."""
    # Imported here: recovering.py takes its TIMEOUT from this module.
    from tests.realtime.recovering import Recovering

    made: list[Recovering] = []

    def make(live: Live) -> Recovering:
        client = Recovering(live.base_url)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
