"""``livebase serve --workers N``: N processes sharing one port, acting as one server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.cluster.conftest import cluster_of
from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.realtime.conftest import TIMEOUT
from tests.servers import free_port, running_server


def _serve(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    port = str(free_port())
    full_env = {"PATH": "/usr/bin:/bin", "HOST": "127.0.0.1", "PORT": port, **env}
    return subprocess.run(
        [sys.executable, "-m", "livebase", "serve", *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "several processes need Redis"),
        ({"CACHE_REDIS_URL": "redis://127.0.0.1:6379/3"}, "need a PostgreSQL DATABASE_URL"),
    ],
)
def test_several_workers_without_redis_or_postgresql_are_refused(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = _serve(tmp_path, env, "--workers", "2")
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_zero_workers_are_refused(tmp_path: Path) -> None:
    result = _serve(tmp_path, {}, "--workers", "0")
    assert result.returncode == 2 and "--workers" in result.stderr


async def test_two_workers_share_the_port_and_report_as_one_cluster(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    env = cluster_env()
    del env["SECRET_KEY"]  # the parent resolves one key for all its workers
    with running_server(tmp_path, env, args=("--workers", "2")) as server:
        async with cluster_of([server]) as cluster:
            (node,) = cluster.nodes
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while True:
                stats = await node.api.ok("GET", "/stats/realtime", headers=node.api.admin)
                if stats["data"]["cluster"]["total"]["nodes"] == 2:
                    break
                assert asyncio.get_running_loop().time() < deadline, stats
                await asyncio.sleep(0.2)
            # A token from whichever worker answered the login works on every worker.
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                for _ in range(6):
                    login = await http.post(
                        "/auth/login",
                        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                        headers={"Connection": "close"},
                    )
                    token = login.json()["token"]
                    me = await http.get(
                        "/auth/me",
                        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                    )
                    assert me.status_code == 200
