"""Logout, expiry, role and permission changes reach open sockets at once."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import bearer
from tests.realtime.conftest import TIMEOUT, Live

NOTES = {"title": {"type": "String"}, "owner": {"type": "UUID"}}


async def _note(live: Live, **body: object) -> str:
    created = await live.api.ok("POST", "/items/notes", 201, headers=live.api.admin, json=body)
    return str(created["data"]["id"])


async def test_logout_disconnects_that_sessions_sockets_only(live: Live) -> None:
    credentials = {"email": "ann@example.com", "password": "password-123"}
    token, _ = await live.api.user(**credentials)
    other = (await live.api.ok("POST", "/auth/login", json=credentials))["token"]
    first = await live.connect(token, "first")
    second = await live.connect(other, "second")
    await live.api.ok("POST", "/auth/logout", headers=bearer(token))
    await asyncio.wait_for(first.disconnected.wait(), TIMEOUT)
    await live.sentinel(second)
    assert second.sio.connected


@pytest.mark.parametrize("settings_overrides", [{"ACCESS_TOKEN_EXPIRES_IN": 2}])
async def test_an_expiring_token_gets_session_expired_then_a_disconnect(live: Live) -> None:
    token, _ = await live.api.user("exp@example.com")
    client = await live.connect(token)
    payload = await client.wait_for("session.expired", within=6)
    assert payload["message"] == "token expired" and payload["timestamp"].endswith("Z")
    await asyncio.wait_for(client.disconnected.wait(), TIMEOUT)


async def test_gaining_and_losing_read_permission_moves_open_sockets(live: Live) -> None:
    await live.api.collection("notes", NOTES)
    token, _ = await live.api.user("p@example.com")
    client = await live.connect(token)
    await _note(live, title="before")
    await live.sentinel(client)
    assert client.received("item.created") == []

    rule = await live.api.allow("user", "notes", "read", fields=["title"])
    key = await _note(live, title="granted")
    payload = await client.wait_for("item.created", lambda p: p["item"]["id"] == key)
    assert payload["item"] == {"id": key, "title": "granted"}

    await live.api.ok(
        "PATCH", f"/permissions/{rule['id']}", headers=live.api.admin, json={"fields": ["*"]}
    )
    key = await _note(live, title="all fields")
    payload = await client.wait_for("item.created", lambda p: p["item"]["id"] == key)
    assert set(payload["item"]) >= {"id", "title", "owner", "createdAt"}

    await live.api.ok("DELETE", f"/permissions/{rule['id']}", headers=live.api.admin)
    key = await _note(live, title="revoked")
    await live.sentinel(client)
    assert all(p["item"]["id"] != key for p in client.received("item.created"))


async def test_changing_a_users_role_recomputes_their_sockets(live: Live) -> None:
    await live.api.collection("notes", NOTES)
    await live.api.ok("POST", "/roles", 201, headers=live.api.admin, json={"name": "reader"})
    await live.api.allow("reader", "notes", "read")
    token, user = await live.api.user("r@example.com")
    client = await live.connect(token)
    await live.api.ok(
        "PATCH", f"/items/users/{user['id']}", headers=live.api.admin, json={"role": "reader"}
    )
    key = await _note(live, title="now visible")
    await client.wait_for("item.created", lambda p: p["item"]["id"] == key)

    await live.api.ok(
        "PATCH", f"/items/users/{user['id']}", headers=live.api.admin, json={"role": "user"}
    )
    key = await _note(live, title="hidden again")
    await live.sentinel(client)
    assert all(p["item"]["id"] != key for p in client.received("item.created"))


@pytest.mark.parametrize("change", ["suspend", "delete"])
async def test_suspending_or_deleting_a_user_disconnects_them(live: Live, change: str) -> None:
    token, user = await live.api.user("gone@example.com")
    bystander_token, _ = await live.api.user("stays@example.com")
    client = await live.connect(token, "gone")
    bystander = await live.connect(bystander_token, "stays")
    url = f"/items/users/{user['id']}"
    if change == "suspend":
        await live.api.ok("PATCH", url, headers=live.api.admin, json={"status": "suspended"})
    else:
        await live.api.ok("DELETE", url, headers=live.api.admin)
    await asyncio.wait_for(client.disconnected.wait(), TIMEOUT)
    await live.sentinel(bystander)


async def test_a_new_collection_reaches_administrators_at_once(live: Live) -> None:
    admin = await live.connect(live.api.admin_token, "admin")
    await live.api.collection("fresh", {"title": {"type": "String"}})
    key = (
        await live.api.ok("POST", "/items/fresh", 201, headers=live.api.admin, json={"title": "x"})
    )["data"]["id"]
    await admin.wait_for("item.created", lambda p: p["item"]["id"] == key)


async def test_a_dropped_collection_stops_its_events(live: Live) -> None:
    await live.api.collection("temp", {"title": {"type": "String"}})
    token, _ = await live.api.user("t@example.com")
    await live.api.allow("user", "temp", "read")
    client = await live.connect(token)
    await live.api.ok("DELETE", "/schemas/temp", headers=live.api.admin)
    await live.api.collection("temp", {"title": {"type": "String"}})
    await live.api.ok("POST", "/items/temp", 201, headers=live.api.admin, json={"title": "x"})
    await live.sentinel(client)
    assert client.received("item.created") == []
