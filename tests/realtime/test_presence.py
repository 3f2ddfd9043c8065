"""Presence: opt-in room, online on the first socket, offline after the grace."""

from __future__ import annotations

import asyncio

import pytest

from tests.realtime.conftest import TIMEOUT, Live

GRACE = 0.5


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_PRESENCE_GRACE": GRACE}])
async def test_online_once_offline_after_last_socket_and_grace(live: Live) -> None:
    watcher = await live.connect(live.api.admin_token, "watcher")
    assert await watcher.call("join", "presence") == {"success": True, "room": "presence"}
    bystander = await live.connect(live.api.admin_token, "bystander")  # not in presence
    token, user = await live.api.user("ann@example.com")

    first = await live.connect(token, "first")
    online = await watcher.wait_for("user.connected", lambda p: p["userId"] == user["id"])
    assert online["socketId"] == first.sio.get_sid() and online["timestamp"].endswith("Z")
    second = await live.connect(token, "second")
    await first.sio.disconnect()
    await live.sentinel(watcher)
    # The administrator was already online (the watcher), so only ann came online.
    assert [p["userId"] for p in watcher.received("user.connected")] == [user["id"]]
    assert watcher.received("user.disconnected") == []

    last_sid = second.sio.get_sid()
    await second.sio.disconnect()
    offline = await watcher.wait_for("user.disconnected", lambda p: p["userId"] == user["id"])
    assert offline["socketId"] == last_sid
    await live.sentinel(bystander)
    assert (
        bystander.received("user.connected") == [] and bystander.received("user.disconnected") == []
    )


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_PRESENCE_GRACE": 2}])
async def test_a_reconnect_within_the_grace_emits_nothing(live: Live) -> None:
    token, user = await live.api.user("bo@example.com")
    watcher = await live.connect(live.api.admin_token, "watcher")
    await watcher.call("join", "presence")
    client = await live.connect(token, "bo")
    await watcher.wait_for("user.connected", lambda p: p["userId"] == user["id"])
    # python-engineio's polling client returns from disconnect() only when its
    # long-poll ends; the server has seen the disconnect long before that.
    leaving = asyncio.create_task(client.sio.disconnect())
    await live.connect(token, "bo again")
    await asyncio.wait_for(leaving, TIMEOUT)
    await asyncio.sleep(3)  # the rule is about time: let the 2 s grace run out
    await live.sentinel(watcher)
    assert [p["userId"] for p in watcher.received("user.connected")] == [user["id"]]
    assert watcher.received("user.disconnected") == []


async def test_presence_needs_read_permission_on_users(live: Live) -> None:
    token, _ = await live.api.user("cy@example.com")
    client = await live.connect(token)
    refused = await client.call("join", "presence")
    assert refused["success"] is False and "users" in refused["message"]
    await live.api.allow("user", "users", "read", fields=["id"])
    assert (await client.call("join", "presence"))["success"] is True


async def test_presence_stops_when_the_role_loses_read_on_users(live: Live) -> None:
    """Presence carries only ``{userId, socketId, timestamp}``, and only to readers of ``users``."""
    token, _ = await live.api.user("watcher@example.com")
    rule = await live.api.allow("user", "users", "read", fields=["id"])
    watcher = await live.connect(token, "watcher")
    assert await watcher.call("join", "presence") == {"success": True, "room": "presence"}
    ann_token, ann = await live.api.user("ann@example.com")
    await live.connect(ann_token, "ann")
    online = await watcher.wait_for("user.connected", lambda p: p["userId"] == ann["id"])
    assert set(online) == {"userId", "socketId", "timestamp"}

    await live.api.ok("DELETE", f"/permissions/{rule['id']}", headers=live.api.admin)
    bob_token, _ = await live.api.user("bob@example.com")
    await live.connect(bob_token, "bob")
    await live.sentinel(watcher)
    assert [p["userId"] for p in watcher.received("user.connected")] == [ann["id"]]
    assert "users" in (await watcher.call("join", "presence"))["message"]
