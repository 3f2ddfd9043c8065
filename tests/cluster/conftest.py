"""Two or three real ``livebase serve`` processes sharing PostgreSQL and Redis.

Each test gets a fresh database schema and its own Redis key prefix; the
processes run on free 127.0.0.1 ports and are stopped by PID. Clients are
python-socketio ``AsyncClient`` objects connected to whichever node a test
names; REST calls go to whichever node a test names.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_TEST_URL, reset_pg_schema
from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.realtime.conftest import TIMEOUT, Client
from tests.servers import Server, running_server

PROBE = Path(__file__).with_name("probe_extension.py")
SECRET = "cluster-test-secret-key-long-enough-for-hs256"


def server_env(database_url: str, workdir: Path, extension: Path) -> dict[str, str]:
    """The environment of a spawned ``livebase serve`` with one test extension."""
    extensions = workdir / "extensions"
    extensions.mkdir(parents=True, exist_ok=True)
    shutil.copy(extension, extensions / extension.name)
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "EXTENSIONS_PATH": str(extensions),
        "DATA_DIR": str(workdir / "data"),
        "STORAGE_PATH": str(workdir / "uploads"),
        "SOCKET_PING_INTERVAL": "1",
        "SOCKET_PING_TIMEOUT": "2",
        "RATE_LIMIT_AUTH": "1000",
        "DEMO_ENABLED": "false",
    }


def node_env(database_url: str, redis_url: str, key: str, workdir: Path) -> dict[str, str]:
    return {
        **server_env(database_url, workdir, PROBE),
        "CACHE_REDIS_URL": redis_url,
        "SOCKET_REDIS_KEY": key,
        "SOCKET_PRESENCE_GRACE": "1",
    }


@dataclass
class Node:
    server: Server
    api: Api

    @property
    def url(self) -> str:
        return self.server.base_url


@dataclass
class Cluster:
    nodes: list[Node]
    clients: list[Client] = field(default_factory=list)
    _marks: int = 0

    async def connect(self, node: Node, token: str | None, name: str = "client") -> Client:
        client = Client(name)
        self.clients.append(client)
        await client.sio.connect(
            node.url,
            socketio_path="/realtime",
            transports=["websocket"],
            auth={"token": token} if token else None,
            wait_timeout=TIMEOUT,
        )
        await client.wait_for("connected")
        return client

    async def watch_presence(self, node: Node) -> tuple[Client, str, dict[str, Any]]:
        """A watcher socket on ``node`` in the presence room, and a user to watch.

        Returns the watcher, the user's token and the user (ann@example.com).
        """
        await node.api.allow("user", "users", "read", fields=["id"])
        watcher_token, _ = await node.api.user("watcher@example.com")
        token, user = await node.api.user("ann@example.com")
        watcher = await self.connect(node, watcher_token, "watcher")
        assert (await watcher.call("join", "presence"))["success"] is True
        return watcher, token, user

    async def emit(self, node: Node, to: str, target: str | None, event: str, payload: Any) -> None:
        body = {"to": to, "id": target, "event": event, "payload": payload}
        await node.api.ok("POST", "/probe/emit", json=body)

    async def sentinel(self, node: Node, *clients: Client) -> None:
        """Broadcast from ``node``: what it sent before, each client now has or never gets."""
        self._marks += 1
        mark = self._marks
        await self.emit(node, "everyone", None, "sentinel", {"n": mark})
        for client in clients:
            await client.wait_for("sentinel", lambda p, m=mark: p["n"] == m)


@contextlib.contextmanager
def started(tmp_path: Path, count: int, env: dict[str, str]) -> Iterator[list[Server]]:
    with contextlib.ExitStack() as stack:
        servers = []
        for index in range(count):
            workdir = tmp_path / f"node-{index}"
            workdir.mkdir()
            servers.append(stack.enter_context(running_server(workdir, env)))
        yield servers


@pytest.fixture
def cluster_env(
    pg_database_url: str, redis_key: str, tmp_path: Path
) -> Callable[..., dict[str, str]]:
    def env(redis_url: str = REDIS_TEST_URL, **extra: str) -> dict[str, str]:
        return {**node_env(pg_database_url, redis_url, redis_key, tmp_path), **extra}

    return env


@pytest.fixture
async def fresh_database(pg_database_url: str) -> str:
    await reset_pg_schema(pg_database_url)
    return pg_database_url


@contextlib.asynccontextmanager
async def api_of(server: Server) -> AsyncIterator[Api]:
    """The REST API of ``server``, logged in as the administrator."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        login = await http.post(
            "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        yield Api(client=http, admin_token=login.json()["token"])


@contextlib.asynccontextmanager
async def cluster_of(servers: list[Server]) -> AsyncIterator[Cluster]:
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for server in servers:
            nodes.append(Node(server, await stack.enter_async_context(api_of(server))))
        cluster = Cluster(nodes)
        try:
            yield cluster
        finally:
            for client in cluster.clients:
                if client.sio.connected:
                    await client.sio.disconnect()


@pytest.fixture
async def two(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> AsyncIterator[Cluster]:
    with started(tmp_path, 2, cluster_env()) as servers:
        async with cluster_of(servers) as cluster:
            yield cluster


@pytest.fixture
async def three(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> AsyncIterator[Cluster]:
    with started(tmp_path, 3, cluster_env()) as servers:
        async with cluster_of(servers) as cluster:
            yield cluster
