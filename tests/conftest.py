"""Shared fixtures: every database-backed test runs on SQLite and on PostgreSQL.

PostgreSQL is required, never skipped: a fresh database is created for the
test session on the server named by ``LIVEBASE_TEST_PG`` (default: the local
trust-auth server) and dropped at the end. Each test starts from an empty
``public`` schema.

Every test also starts from a clean environment (no livebase setting, no
``.env``: see ``clean_environment``) and hashes passwords with cheap Argon2
parameters (see ``cheap_password_hashing``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from argon2 import PasswordHasher

from livebase.services import passwords
from livebase.settings import Settings
from tests.sqlite_paths import loop_writes, sqlite_paths  # noqa: F401 (fixtures, used by name)

PG_ADMIN_DSN = os.environ.get("LIVEBASE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# Pub/sub channels are not per database number: each test has its own key prefix.
REDIS_TEST_URL = os.environ.get("LIVEBASE_TEST_REDIS", "redis://127.0.0.1:6379/3")


# Argon2id at its cheapest (~1 ms instead of ~100 ms a hash): creating the
# administrator, logging in and registering users is most of an API test's
# set-up otherwise. Hashes carry their own parameters, so either kind verifies.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Hash passwords cheaply in this process (servers started as subprocesses do not)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", CHEAP_HASHER)
        patch.setattr(passwords, "_DUMMY_HASH", CHEAP_HASHER.hash("livebase-timing-equaliser"))
        yield


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings come from the test alone, never from the developer's shell or a ``.env``.

    Every variable ``Settings`` reads is removed for the test, and the test runs
    in its own empty directory (no ``.env``; relative defaults such as
    ``./data`` land there). Subprocesses inherit this environment; see also
    ``tests.servers.environment``.
    """
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


async def _pg_execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_admin(sql: str) -> None:
    # In a thread of its own: this may be called while a test's event loop runs.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _pg_execute(PG_ADMIN_DSN, sql)).result()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    name = f"livebase_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required for the test suite ({PG_ADMIN_DSN}): {exc}")
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_pg_schema(url: str) -> None:
    await _pg_execute(url, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'livebase.db'}"
    else:
        url: str = request.getfixturevalue("pg_database_url")
        await reset_pg_schema(url)
        yield url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings for the app under test; parametrize it to change them."""
    return {}


@pytest.fixture
def redis_key() -> Iterator[str]:
    """A Redis key and channel prefix of this test's own on the test Redis (required)."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (OSError, redis.RedisError) as exc:
        client.close()
        pytest.fail(f"Redis is required for the test suite ({REDIS_TEST_URL}): {exc}")
    key = f"lbtest-{uuid.uuid4().hex[:10]}"
    try:
        yield key
    finally:
        stale = list(client.scan_iter(match=f"{key}:*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()
