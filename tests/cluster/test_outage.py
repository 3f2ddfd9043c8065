"""Redis goes away while two processes serve clients, then comes back (docs/deploy.md).

The test owns its ``redis-server``: on a free port, killed and restarted by PID.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.cluster.conftest import cluster_of, started
from tests.servers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@contextmanager
def redis_server(port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


async def test_processes_keep_serving_through_a_redis_outage_and_resume_by_themselves(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    first_redis = redis_server(port, tmp_path)
    first_redis.__enter__()
    try:
        with started(tmp_path, 2, cluster_env(redis_url=url)) as servers:
            async with cluster_of(servers) as cluster:
                a, b = cluster.nodes
                await a.api.collection("ticks", {"n": {"type": "Integer"}})
                on_a = await cluster.connect(a, a.api.admin_token, "admin on A")
                on_b = await cluster.connect(b, a.api.admin_token, "admin on B")

                async def write(n: int) -> None:
                    await a.api.ok("POST", "/items/ticks", 201, headers=a.api.admin, json={"n": n})

                await write(1)
                for client in (on_a, on_b):
                    await client.wait_for("item.created", lambda p: p["item"]["n"] == 1)

                # Redis stops.
                first_redis.__exit__(None, None, None)
                for n in range(2, 12):  # REST keeps working, local sockets keep their events
                    await write(n)
                    await on_a.wait_for("item.created", lambda p, n=n: p["item"]["n"] == n)
                listed = await b.api.ok("GET", "/items/ticks?limit=100", headers=b.api.admin)
                assert len(listed["data"]) == 11
                for node in (a, b):
                    health = await node.api.client.get("/health")
                    assert health.status_code == 200
                    body = health.json()["data"]
                    assert body["redis"] == {"status": "down"} and body["status"] == "degraded"
                assert on_a.sio.connected and on_b.sio.connected

                # Redis returns on the same address: delivery across processes resumes.
                with redis_server(port, tmp_path):
                    started_at = time.monotonic()
                    n = 100
                    while True:
                        n += 1
                        await write(n)
                        try:
                            await on_b.wait_for(
                                "item.created", lambda p, n=n: p["item"]["n"] == n, within=0.5
                            )
                            break
                        except AssertionError:
                            assert time.monotonic() - started_at < 5, "no delivery to B within 5 s"
                    health = (await b.api.ok("GET", "/health"))["data"]
                    assert health["redis"] == {"status": "up"}

                    # Nobody exited; each said once that Redis went and once that it came back.
                    for server in servers:
                        assert server.process.poll() is None, server.output()
                        log = server.output()
                        assert log.count("is unreachable") == 1, log
                        assert log.count("is reachable again") == 1, log
    finally:
        first_redis.__exit__(None, None, None)


async def test_while_redis_is_away_each_process_decides_presence_and_rate_limits_alone(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    port = free_port()
    limit = 6  # sign-ins and registrations of the set-up count too, in Redis
    env = cluster_env(redis_url=f"redis://127.0.0.1:{port}/0", RATE_LIMIT_AUTH=str(limit))
    redis = redis_server(port, tmp_path)
    redis.__enter__()
    try:
        with started(tmp_path, 2, env) as servers:
            async with cluster_of(servers) as cluster:
                a, b = cluster.nodes
                watcher, token, ann = await cluster.watch_presence(a)

                redis.__exit__(None, None, None)

                # Presence: A alone decides that ann arrived, and that she left.
                on_a = await cluster.connect(a, token, "ann on A")
                await watcher.wait_for("user.connected", lambda p: p["userId"] == ann["id"])
                await on_a.sio.disconnect()
                await watcher.wait_for("user.disconnected", lambda p: p["userId"] == ann["id"])

                # Rate limits: a window per process, started when Redis went away.
                body = {"email": "nobody@example.com", "password": "wrong-password"}
                async with httpx.AsyncClient() as http:
                    for node in (a, b):
                        url = f"{node.url}/auth/login"
                        codes = [
                            (await http.post(url, json=body)).status_code for _ in range(limit + 1)
                        ]
                        assert codes == [401] * limit + [429], (node.url, codes)
                for server in servers:
                    assert server.process.poll() is None, server.output()
    finally:
        redis.__exit__(None, None, None)
