"""``GET /stats/realtime``: this node's connections, distinct users and rooms (administrator)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import bearer
from tests.realtime.conftest import TIMEOUT, Live


async def _stats(live: Live) -> dict[str, Any]:
    """The stats of the node the clients are connected to (in a cluster, not the writer)."""
    url = f"{live.base_url}/stats/realtime"
    body = await live.api.ok("GET", url, headers=live.api.admin)
    return dict(body["data"])


async def _stats_until(live: Live, check: Any, what: str) -> dict[str, Any]:
    """Server-side bookkeeping after a client leaves has no event to wait on: poll, bounded."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        stats = await _stats(live)
        if check(stats):
            return stats
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}; last {stats}"
        await asyncio.sleep(0.02)


# SOCKET_AUTO_JOIN_COLLECTIONS off: the rooms are exactly the ones asked for.
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_AUTO_JOIN_COLLECTIONS": False}])
async def test_connections_distinct_users_and_rooms_with_member_counts(live: Live) -> None:
    await live.api.collection("posts", {"title": {"type": "String"}})
    await live.api.allow("user", "posts", "read", fields=["title"])
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, bob = await live.api.user("bob@example.com")
    admin_id = (await live.api.ok("GET", "/auth/me", headers=live.api.admin))["data"]["id"]

    empty = await _stats(live)
    assert empty["enabled"] is True and empty["connections"] == 0 and empty["users"] == 0
    assert empty["rooms"] == {}
    assert isinstance(empty["nodeId"], str) and empty["nodeId"] == live.realtime.node_id

    admin = await live.connect(live.api.admin_token, "admin")
    ann_1 = await live.connect(ann_token, "ann-1")
    ann_2 = await live.connect(ann_token, "ann-2")
    bob_socket = await live.connect(bob_token, "bob")
    anonymous = await live.connect(None, "anonymous")
    for client in (ann_1, ann_2, anonymous):
        assert (await client.call("join", "lobby"))["success"] is True
    for client in (ann_1, bob_socket, admin):
        assert (await client.call("join", "collection:posts"))["success"] is True
    assert (await admin.call("join", "presence"))["success"] is True
    refused = await anonymous.call("join", "collection:posts")
    assert refused["success"] is False

    stats = await _stats(live)
    assert stats["connections"] == 5
    assert stats["users"] == 3  # admin, ann (two sockets), bob; the anonymous socket is no user
    assert stats["rooms"] == {
        f"user:{admin_id}": 1,
        f"user:{ann['id']}": 2,
        f"user:{bob['id']}": 1,
        "lobby": 3,
        "collection:posts": 3,
        "presence": 1,
    }
    assert stats["nodeId"] == empty["nodeId"]
    # Socket ids are rooms inside python-socketio; they are not reported.
    sids = {c.sio.get_sid() for c in (admin, ann_1, ann_2, bob_socket, anonymous)}
    assert not sids & set(stats["rooms"])

    await ann_2.sio.disconnect()
    await anonymous.sio.disconnect()
    stats = await _stats_until(live, lambda s: s["connections"] == 3, "two sockets gone")
    assert stats["users"] == 3
    assert stats["rooms"][f"user:{ann['id']}"] == 1 and stats["rooms"]["lobby"] == 1

    await bob_socket.sio.disconnect()
    stats = await _stats_until(live, lambda s: s["connections"] == 2, "bob gone")
    assert stats["users"] == 2
    # Empty rooms are not listed.
    assert f"user:{bob['id']}" not in stats["rooms"]
    assert stats["rooms"]["collection:posts"] == 2


async def test_auto_joined_collection_rooms_are_counted(live: Live) -> None:
    await live.api.collection("posts", {"title": {"type": "String"}})
    await live.api.allow("user", "posts", "read", fields=["title"])
    ann_token, _ = await live.api.user("ann@example.com")
    await live.connect(ann_token, "ann")
    await live.connect(live.api.admin_token, "admin")
    await live.connect(None, "anonymous")
    stats = await _stats(live)
    assert stats["connections"] == 3 and stats["users"] == 2
    assert stats["rooms"]["collection:posts"] == 2  # the user and the administrator


async def test_only_administrators(live: Live) -> None:
    token, _ = await live.api.user("ann@example.com")
    await live.connect(token, "ann")
    as_user = await live.api.client.get("/stats/realtime", headers=bearer(token))
    assert as_user.status_code == 403, as_user.text
    anonymous = await live.api.client.get("/stats/realtime")
    assert anonymous.status_code == 401, anonymous.text
    bad_token = await live.api.client.get("/stats/realtime", headers=bearer("not-a-jwt"))
    assert bad_token.status_code == 401, bad_token.text
    for response in (as_user, anonymous, bad_token):
        assert "connections" not in response.text and "rooms" not in response.text
