"""Connecting: handshake auth, `connected`, refusals as connect_error, anonymous sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio

from livebase.services.tokens import TokenCodec
from tests.realtime.conftest import Live

SECRET = "test-secret-key-that-is-long-enough-for-hs256"


async def test_token_in_auth_query_or_header(live: Live) -> None:
    token, user = await live.api.user("ann@example.com")
    expected = [{"userId": user["id"], "role": "user", "recovered": False}]
    by_auth = await live.connect(token, name="auth")
    assert by_auth.received("connected") == expected
    by_query = await live.connect(name="query", url_query=f"token={token}")
    assert by_query.received("connected") == expected
    by_header = await live.connect(name="header", headers={"Authorization": f"Bearer {token}"})
    assert by_header.received("connected") == expected


async def test_anonymous_socket_is_public(live: Live) -> None:
    client = await live.connect()
    assert client.received("connected") == [{"userId": None, "role": "public", "recovered": False}]


async def _refused(live: Live, **options: Any) -> str:
    """Connect, expecting a refusal; returns the message the client's connect_error got."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            live.base_url,
            socketio_path="/realtime",
            transports=[live.transport],
            wait_timeout=10,
            **options,
        )
    assert len(errors) == 1 and isinstance(errors[0], dict), errors
    return str(errors[0]["message"])


def _token(**overrides: Any) -> str:
    values = {
        "secret": SECRET,
        "user_id": "00000000-0000-4000-8000-000000000001",
        "session_id": "00000000-0000-4000-8000-000000000002",
        "expires_at": datetime.now(UTC) + timedelta(hours=1),
        **overrides,
    }
    codec = TokenCodec(values["secret"], 3600)
    return codec.issue(values["user_id"], "user", values["session_id"], values["expires_at"])


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not-a-jwt", "malformed token"),
        ("", "malformed token"),
        (_token(secret="some-other-secret-key-of-enough-length"), "invalid token signature"),
        (_token(expires_at=datetime.now(UTC) - timedelta(minutes=1)), "token expired"),
        (_token(), "session not found"),
    ],
    ids=["malformed", "empty", "foreign-key", "expired", "unknown-session"],
)
async def test_bad_tokens_reach_the_client_as_connect_error(
    live: Live, token: str, message: str
) -> None:
    assert message in await _refused(live, auth={"token": token})


async def test_revoked_token_is_refused(live: Live) -> None:
    token, _ = await live.api.user("rev@example.com")
    await live.api.ok("POST", "/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert "session revoked" in await _refused(live, auth={"token": token})


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_ALLOW_ANONYMOUS": False}])
async def test_anonymous_refused_when_not_allowed(live: Live) -> None:
    assert "authentication required" in await _refused(live)
