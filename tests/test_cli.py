"""The ``livebase`` command as a newcomer runs it: serve on a real port, create-admin, --help."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import reset_pg_schema
from tests.servers import environment, running_server


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "livebase", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "serve" in result.stdout and "create-admin" in result.stdout


def test_first_start_creates_the_admin_and_prints_how_to_log_in(tmp_path: Path) -> None:
    with running_server(tmp_path, {}) as server:
        output = server.output()
        match = re.search(r"password \(shown once\): (\S+)", output)
        assert match, output
        assert "/auth/login" in output
        login = httpx.post(
            f"{server.base_url}/auth/login",
            json={"email": "admin@example.com", "password": match.group(1)},
        )
        assert login.status_code == 200
        health = httpx.get(f"{server.base_url}/health").json()["data"]
        assert health["database"] == {"status": "up", "dialect": "sqlite"}
        assert httpx.get(f"{server.base_url}/openapi.json").status_code == 200
        assert httpx.get(f"{server.base_url}/docs").status_code == 200
    assert (tmp_path / "data" / "livebase.db").exists()
    assert (tmp_path / "data" / "secret_key").exists()
    # A second start keeps the administrator and prints no new password.
    with running_server(tmp_path, {}) as server:
        assert "shown once" not in server.output()


def test_create_admin_command(tmp_path: Path) -> None:
    env = environment(DATA_DIR=str(tmp_path / "data"))
    command = [sys.executable, "-m", "livebase", "create-admin", "--email", "boss@example.com"]
    created = subprocess.run(
        [*command, "--password", "boss-password-1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert "created administrator boss@example.com" in created.stdout
    again = subprocess.run(
        [*command, "--password", "boss-password-1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "already exists" in again.stderr


def test_serve_on_postgresql(tmp_path: Path, pg_database_url: str) -> None:
    asyncio.run(reset_pg_schema(pg_database_url))
    with running_server(
        tmp_path, {"DATABASE_URL": pg_database_url, "ADMIN_PASSWORD": "admin-password-1"}
    ) as server:
        health = httpx.get(f"{server.base_url}/health").json()["data"]
        assert health["database"]["dialect"] == "postgresql"
