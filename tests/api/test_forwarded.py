"""X-Forwarded-For names the client only when the peer is in FORWARDED_ALLOW_IPS.

Through a real ``livebase serve``: the ASGI server is where the header used to
be believed (uvicorn trusts 127.0.0.1 unless told otherwise), and the hostile
client of these tests is on 127.0.0.1 too.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from livebase.settings import ConfigError, load_settings
from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.servers import running_server

LIMIT = 3
WRONG = {"email": ADMIN_EMAIL, "password": "not-the-password"}


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {"ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "DATABASE_URL": database_url, "RATE_LIMIT_AUTH": str(LIMIT),
            "LOG_LEVEL": "warning", **extra}  # fmt: skip


async def _login_from(client: httpx.AsyncClient, forwarded_for: str) -> int:
    response = await client.post(
        "/auth/login", json=WRONG, headers={"X-Forwarded-For": forwarded_for}
    )
    return response.status_code


async def test_an_untrusted_peer_cannot_reset_the_login_limit(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(tmp_path, _env(database_url)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            statuses = [await _login_from(client, f"10.0.0.{n}") for n in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429, 429]


async def test_a_trusted_proxy_has_each_forwarded_client_counted_apart(
    database_url: str, tmp_path: Path
) -> None:
    env = _env(database_url, FORWARDED_ALLOW_IPS="127.0.0.1, ::1")
    with running_server(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            first = [await _login_from(client, "203.0.113.7") for _ in range(LIMIT + 1)]
            # A proxy appends the peer it saw: the client is the right-most untrusted address.
            other = await _login_from(client, "203.0.113.7, 198.51.100.9")
    assert first == [401] * LIMIT + [429]
    assert other == 401


def test_a_malformed_proxy_address_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS: not an IP address"):
        load_settings(FORWARDED_ALLOW_IPS="127.0.0.1, proxy.example.com")
    assert load_settings(FORWARDED_ALLOW_IPS="10.0.0.0/8, ::1").FORWARDED_ALLOW_IPS == [
        "10.0.0.0/8",
        "::1",
    ]
