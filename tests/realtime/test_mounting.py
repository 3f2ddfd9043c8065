"""The Socket.IO server at SOCKET_PATH, CORS, and SOCKET_ENABLED=false."""

from __future__ import annotations

import httpx
import pytest

from tests.realtime.conftest import Live


async def _handshake(live: Live, origin: str | None = None) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    return await live.api.client.get("/realtime/?EIO=4&transport=polling", headers=headers)


@pytest.mark.parametrize("transport", ["polling"])
@pytest.mark.parametrize(
    "settings_overrides", [{"SOCKET_CORS_ENABLED_ORIGINS": "https://app.example.com"}]
)
async def test_cors_allows_only_the_configured_origins(live: Live) -> None:
    allowed = await _handshake(live, "https://app.example.com")
    assert allowed.status_code == 200 and allowed.text.startswith("0{")
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = await _handshake(live, "https://evil.example.com")
    assert refused.status_code == 400


@pytest.mark.parametrize("transport", ["polling"])
async def test_any_origin_when_unset(live: Live) -> None:
    response = await _handshake(live, "https://anywhere.example.com")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://anywhere.example.com"


@pytest.mark.parametrize("transport", ["polling"])
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_PATH": "/live"}])
async def test_socket_path_is_configurable(live: Live) -> None:
    response = await live.api.client.get("/live/?EIO=4&transport=polling")
    assert response.status_code == 200 and response.text.startswith("0{")
    assert (await _handshake(live)).status_code == 404


@pytest.mark.parametrize("transport", ["polling"])
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_ENABLED": False}])
async def test_not_mounted_when_disabled(live: Live) -> None:
    assert live.realtime is None
    response = await _handshake(live)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    stats = await live.api.ok("GET", "/stats/realtime", headers=live.api.admin)
    # No sockets, but the change log is still kept (and published to nobody).
    assert set(stats["data"]) == {"enabled", "changeLog"} and stats["data"]["enabled"] is False
    assert stats["data"]["changeLog"]["behind"] == 0
