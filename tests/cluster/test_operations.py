"""Operations on real ``livebase serve`` processes (docs/operations.md): ``/metrics``
covering every worker of ``serve --workers 2``, and ``LOG_FORMAT=json`` logging the
relay's takeover and a Redis outage, with the Redis publish failures it causes counted.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cluster.conftest import cluster_of, started
from tests.cluster.test_outage import redis_server
from tests.helpers import bearer
from tests.prometheus import Scrape, scrape
from tests.realtime.conftest import TIMEOUT, Client
from tests.servers import Server, free_port, running_server

METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
CLOSE = {"Connection": "close"}  # a new connection per scrape: any worker may answer


def _metrics_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("livebase-metrics-*"))


async def test_the_metrics_of_two_workers_cover_both(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    env = cluster_env(METRICS_TOKEN=METRICS_TOKEN)
    del env["SECRET_KEY"]  # the parent resolves one key for all its workers
    dirs_before = _metrics_dirs()
    with running_server(tmp_path, env, args=("--workers", "2")) as server:
        assert len(_metrics_dirs() - dirs_before) == 1  # made by the parent, for its workers
        async with cluster_of([server]) as cluster:
            (node,) = cluster.nodes
            clients = await _sockets_on_both_workers(cluster, node)
            headers = {**bearer(METRICS_TOKEN), **CLOSE}

            # Every worker writes its figures at most 2 s apart: then every answer,
            # whichever worker gives it, has every socket.
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while True:
                scraped = await scrape(node.api.client, headers)
                if scraped.value("livebase_sockets_open") == len(clients):
                    break
                assert asyncio.get_running_loop().time() < deadline, scraped.value(
                    "livebase_sockets_open"
                )
                await asyncio.sleep(0.2)
            for _ in range(8):
                scraped = await scrape(node.api.client, headers)
                assert scraped.value("livebase_sockets_open", transport="websocket") == len(clients)
                assert scraped.value("livebase_sockets_by_role", role="administrator") == len(
                    clients
                )
                # Counters too: every socket's "connected", whichever worker wrote it.
                assert scraped.value("livebase_frames_delivered_total", type="connected") >= len(
                    clients
                )

            # A worker's sockets go: the figures follow.
            for client in clients:
                await client.sio.disconnect()
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while (await scrape(node.api.client, headers)).value("livebase_sockets_open") != 0:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.2)
    assert _metrics_dirs() == dirs_before  # removed when serve exits


async def _sockets_on_both_workers(cluster: Any, node: Any) -> list[Client]:
    """Administrators' sockets until each of the two workers holds at least one."""
    clients: list[Client] = []
    deadline = asyncio.get_running_loop().time() + TIMEOUT * 3
    while True:
        for _ in range(4):
            clients.append(await cluster.connect(node, node.api.admin_token, f"c{len(clients)}"))
        await asyncio.sleep(1.2)  # a heartbeat: every worker's stats are published
        stats = await node.api.ok("GET", "/stats/realtime", headers={**node.api.admin, **CLOSE})
        workers = stats["data"].get("cluster", {}).get("nodes", [])
        if len(workers) == 2 and all(w["connections"] >= 1 for w in workers):
            return clients
        assert asyncio.get_running_loop().time() < deadline, stats


async def test_json_logs_say_who_took_the_relay_and_when_redis_went_and_came_back(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = cluster_env(
        redis_url=url, LOG_FORMAT="json", LOG_LEVEL="info", METRICS_TOKEN=METRICS_TOKEN
    )
    first_redis = redis_server(port, tmp_path)
    first_redis.__enter__()
    try:
        with started(tmp_path, 1, env) as (server,):
            async with cluster_of([server]) as cluster:
                (node,) = cluster.nodes
                (takeover,) = _events(server, "relay_takeover")
                assert takeover["logger"] == "livebase.relay" and takeover["level"] == "warning"
                assert isinstance(takeover["pid"], int) and takeover["host"]
                assert isinstance(takeover["published"], int)

                await node.api.collection("ticks", {"n": {"type": "Integer"}})
                watcher = await cluster.connect(node, node.api.admin_token, "watcher")
                before = await scrape(node.api.client, bearer(METRICS_TOKEN))

                first_redis.__exit__(None, None, None)  # Redis stops
                after = await _write_until(
                    node,
                    watcher,
                    lambda s: (
                        s.value("livebase_redis_publish_failures_total")
                        > before.value("livebase_redis_publish_failures_total")
                    ),
                )
                assert after.family("livebase_redis_publish_failures").type == "counter"
                (began,) = _events(server, "redis_outage_begin")
                assert began["logger"] == "livebase.redis"
                assert began["redis"] == url and began["error"]

                with redis_server(port, tmp_path):  # Redis returns
                    deadline = asyncio.get_running_loop().time() + TIMEOUT
                    while not _events(server, "redis_outage_end"):
                        assert asyncio.get_running_loop().time() < deadline, server.output()
                        await asyncio.sleep(0.1)
                    (ended,) = _events(server, "redis_outage_end")
                    assert ended["redis"] == url and ended["down_seconds"] > 0
                    _every_line_is_json(server)
    finally:
        first_redis.__exit__(None, None, None)


_WRITES = iter(range(1_000_000))


async def _write_until(node: Any, watcher: Client, done: Callable[[Scrape], bool]) -> Scrape:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        n = next(_WRITES)
        await node.api.ok("POST", "/items/ticks", 201, headers=node.api.admin, json={"n": n})
        await watcher.wait_for("item.created", lambda p, n=n: p["item"]["n"] == n)
        scraped = await scrape(node.api.client, bearer(METRICS_TOKEN))
        if done(scraped):
            return scraped
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


def _lines(server: Server) -> list[str]:
    # The administrator's creation is printed for a person to read, not logged.
    return [
        line
        for line in server.output().splitlines()
        if line.strip() and not line.startswith(("created the administrator", "  "))
    ]


def _every_line_is_json(server: Server) -> None:
    loggers = set()
    for line in _lines(server):
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        loggers.add(entry["logger"])
    assert {"uvicorn.error", "livebase.relay", "livebase.redis"} <= loggers, loggers


def _events(server: Server, event: str) -> list[dict[str, Any]]:
    found = []
    for line in _lines(server):
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == event:
                found.append(entry)
    return found
