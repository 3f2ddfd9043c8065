"""An app per test, started through its lifespan, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from livebase.app import create_app, services_of
from livebase.services.events import Event
from livebase.settings import Settings, load_settings
from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, Api


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ENV": "test",
        "DATABASE_URL": database_url,
        "DATA_DIR": tmp_path / "data",
        "STORAGE_PATH": tmp_path / "uploads",
        "EXTENSIONS_PATH": tmp_path / "extensions",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RATE_LIMIT_AUTH": 1000,
        "LOG_LEVEL": "warning",
        **overrides,
    }
    return load_settings(**values)


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    """Start an app through its lifespan; an HTTP client and the administrator's token."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        events: list[Event] = []

        async def record(event: Event) -> None:
            events.append(event)

        services_of(app).events.subscribe(record)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://livebase.test"
        ) as client:
            login = await client.post(
                "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            assert login.status_code == 200, login.text
            yield Api(client=client, admin_token=login.json()["token"], events=events, app=app)


@pytest.fixture
async def api(
    database_url: str, tmp_path: Path, settings_overrides: dict[str, Any]
) -> AsyncIterator[Api]:
    async with running_api(make_settings(database_url, tmp_path, **settings_overrides)) as api:
        yield api
