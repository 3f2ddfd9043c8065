"""Several ``livebase serve`` processes on PostgreSQL + Redis act as one (docs/deploy.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.conftest import Cluster, started
from tests.helpers import bearer
from tests.realtime.conftest import TIMEOUT


async def _posts(cluster: Cluster) -> None:
    a = cluster.nodes[0].api
    await a.collection(
        "posts",
        {
            "title": {"type": "String"},
            "secret": {"type": "String"},
            "published": {"type": "Boolean"},
        },
    )
    await a.allow(
        "user", "posts", "read", fields=["id", "title"], conditions={"published": {"eq": True}}
    )


async def test_item_events_cross_processes_with_conditions_and_projection(two: Cluster) -> None:
    a, b = two.nodes
    await _posts(two)
    token, _ = await a.api.user("ann@example.com")
    ann = await two.connect(b, token, "ann on B")
    admin = await two.connect(b, a.api.admin_token, "admin on B")
    draft = {"title": "draft", "secret": "s", "published": False}
    await a.api.ok("POST", "/items/posts", 201, headers=a.api.admin, json=draft)
    public = {"title": "public", "secret": "s", "published": True}
    created = (await a.api.ok("POST", "/items/posts", 201, headers=a.api.admin, json=public))[
        "data"
    ]

    seen = await ann.wait_for("item.created")
    assert seen["collection"] == "posts"
    assert seen["item"] == {"id": created["id"], "title": "public"}  # projected to the read fields
    everything = await admin.wait_for("item.created", lambda p: p["item"]["title"] == "draft")
    assert everything["item"]["secret"] == "s"
    await two.sentinel(a, ann, admin)
    assert [p["item"]["title"] for p in ann.received("item.created")] == ["public"]
    assert len(admin.received("item.created")) == 2


async def test_a_hook_on_a_reaches_the_users_socket_on_b(two: Cluster) -> None:
    a, b = two.nodes
    await a.api.collection("messages", {"text": {"type": "String"}, "to_user": {"type": "UUID"}})
    ann_token, ann_user = await a.api.user("ann@example.com")
    bob_token, _ = await a.api.user("bob@example.com")
    ann = await two.connect(b, ann_token, "ann on B")
    bob = await two.connect(b, bob_token, "bob on B")
    body = {"text": "hi ann", "to_user": ann_user["id"]}
    await a.api.ok("POST", "/items/messages", 201, headers=a.api.admin, json=body)
    assert (await ann.wait_for("message.for.you"))["text"] == "hi ann"
    await two.sentinel(a, ann, bob)
    assert bob.received("message.for.you") == []
    assert len(ann.received("message.for.you")) == 1


async def test_join_and_leave_on_b_with_emits_from_a(two: Cluster) -> None:
    a, b = two.nodes
    token, _ = await a.api.user("ann@example.com")
    ann = await two.connect(b, token, "ann on B")
    anonymous = await two.connect(b, None, "anonymous on B")
    assert (await anonymous.call("join", "team:red"))["success"] is False  # validator on B
    assert (await ann.call("join", "team:red")) == {"success": True, "room": "team:red"}
    await two.emit(a, "room", "team:red", "team.news", {"n": 1})
    assert (await ann.wait_for("team.news"))["n"] == 1
    assert (await ann.call("leave", "team:red"))["success"] is True
    await two.emit(a, "room", "team:red", "team.news", {"n": 2})
    await two.sentinel(a, ann, anonymous)
    assert [p["n"] for p in ann.received("team.news")] == [1]
    assert anonymous.received("team.news") == []


async def test_logout_on_a_disconnects_the_socket_on_b(two: Cluster) -> None:
    a, b = two.nodes
    token, _ = await a.api.user("ann@example.com")
    other_token, _ = await a.api.user("bob@example.com")
    ann = await two.connect(b, token, "ann on B")
    bob = await two.connect(b, other_token, "bob on B")
    await a.api.ok("POST", "/auth/logout", headers=bearer(token))
    await asyncio.wait_for(ann.disconnected.wait(), TIMEOUT)
    await two.sentinel(a, bob)
    assert bob.sio.connected


async def test_a_logout_or_suspension_on_a_is_refused_on_b_at_once(two: Cluster) -> None:
    # B has just accepted both tokens: nothing it remembers may outlive the change on A.
    a, b = two.nodes
    token, _ = await a.api.user("cy@example.com")
    other_token, other = await a.api.user("di@example.com")
    for t in (token, other_token):
        await b.api.ok("GET", "/auth/me", headers=bearer(t))
    await a.api.ok("POST", "/auth/logout", headers=bearer(token))
    await a.api.ok(
        "PATCH", f"/items/users/{other['id']}", headers=a.api.admin, json={"status": "suspended"}
    )
    for t, message in ((token, "session revoked (logged out)"), (other_token, "suspended")):
        response = await b.api.client.get("/auth/me", headers=bearer(t))
        assert response.status_code == 401
        assert message in response.json()["error"]["message"]


async def test_one_copy_per_socket_when_a_user_is_on_both_nodes(two: Cluster) -> None:
    a, b = two.nodes
    await _posts(two)
    token, user = await a.api.user("ann@example.com")
    on_a = await two.connect(a, token, "ann on A")
    on_b = await two.connect(b, token, "ann on B")
    await two.emit(b, "user", user["id"], "for.ann", {"n": 1})
    item = {"title": "t", "published": True}
    await a.api.ok("POST", "/items/posts", 201, headers=a.api.admin, json=item)
    await two.sentinel(a, on_a, on_b)
    await two.sentinel(b, on_a, on_b)
    for client in (on_a, on_b):
        assert len(client.received("for.ann")) == 1
        assert len(client.received("item.created")) == 1


async def test_two_hundred_rapid_writes_through_a_arrive_in_order_on_b(two: Cluster) -> None:
    a, b = two.nodes
    await a.api.collection("ticks", {"n": {"type": "Integer"}})
    watcher = await two.connect(b, a.api.admin_token, "admin on B")
    for n in range(200):
        await a.api.ok("POST", "/items/ticks", 201, headers=a.api.admin, json={"n": n})
    await two.sentinel(a, watcher)
    assert [p["item"]["n"] for p in watcher.received("item.created")] == list(range(200))


async def test_presence_is_cluster_wide(two: Cluster) -> None:
    a, b = two.nodes
    watcher, token, user = await two.watch_presence(a)

    def about_ann(event: str) -> list[Any]:
        return [p for p in watcher.received(event) if p["userId"] == user["id"]]

    on_a = await two.connect(a, token, "ann on A")
    await watcher.wait_for("user.connected", lambda p: p["userId"] == user["id"])
    on_b = await two.connect(b, token, "ann on B")
    await on_a.sio.disconnect()
    await asyncio.sleep(1.5)  # past the 1 s grace: ann is still online on B
    await two.sentinel(b, watcher)
    assert len(about_ann("user.connected")) == 1 and about_ann("user.disconnected") == []
    await on_b.sio.disconnect()
    await watcher.wait_for("user.disconnected", lambda p: p["userId"] == user["id"])
    await two.sentinel(a, watcher)
    assert len(about_ann("user.disconnected")) == 1


async def test_schema_and_permission_changes_apply_on_every_node_at_once(three: Cluster) -> None:
    a, b, c = three.nodes
    token, _ = await a.api.user("ann@example.com")
    await a.api.collection("notes", {"text": {"type": "String"}})
    created = await b.api.ok(
        "POST", "/items/notes", 201, headers=b.api.admin, json={"text": "via B"}
    )
    assert created["data"]["text"] == "via B"
    assert (await c.api.client.get("/items/notes", headers=bearer(token))).status_code == 403
    await a.api.allow("user", "notes", "read", fields=["id", "text"])
    listed = await c.api.ok("GET", "/items/notes", headers=bearer(token))
    assert [n["text"] for n in listed["data"]] == ["via B"]
    client = await three.connect(b, token, "ann on B")
    assert (await client.call("join", "collection:notes"))["success"] is True
    await c.api.ok("POST", "/items/notes", 201, headers=c.api.admin, json={"text": "via C"})
    assert (await client.wait_for("item.created"))["item"]["text"] == "via C"


async def test_a_role_change_on_a_reaches_sockets_on_b(two: Cluster) -> None:
    # A role change reaches open sockets at once, on every process: the socket on B
    # gains, then loses, the collection's events as A changes the user's role back and forth.
    a, b = two.nodes
    await a.api.collection("notes", {"title": {"type": "String"}})
    await a.api.ok("POST", "/roles", 201, headers=a.api.admin, json={"name": "reader"})
    await a.api.allow("reader", "notes", "read", fields=["id", "title"])
    token, user = await a.api.user("ann@example.com")
    ann = await two.connect(b, token, "ann on B")
    url = f"/items/users/{user['id']}"

    async def note(title: str) -> str:
        body = {"title": title}
        created = await a.api.ok("POST", "/items/notes", 201, headers=a.api.admin, json=body)
        return str(created["data"]["id"])

    await note("as user")
    await two.sentinel(a, ann)
    assert ann.received("item.created") == []

    await a.api.ok("PATCH", url, headers=a.api.admin, json={"role": "reader"})
    key = await note("as reader")
    seen = await ann.wait_for("item.created", lambda p: p["item"]["id"] == key)
    assert seen == {**seen, "collection": "notes", "item": {"id": key, "title": "as reader"}}

    await a.api.ok("PATCH", url, headers=a.api.admin, json={"role": "user"})
    await note("as user again")
    await two.sentinel(a, ann)
    assert [p["item"]["title"] for p in ann.received("item.created")] == ["as reader"]
    assert ann.sio.connected  # recomputed, not dropped

    await a.api.ok("PATCH", url, headers=a.api.admin, json={"status": "suspended"})
    await asyncio.wait_for(ann.disconnected.wait(), TIMEOUT)


async def test_rate_limits_are_shared(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    # Three attempts a minute, wherever they land: the fourth is refused on either node.
    with started(tmp_path, 2, cluster_env(RATE_LIMIT_AUTH="3")) as (a, b):
        body = {"email": "nobody@example.com", "password": "wrong-password"}
        codes = []
        async with httpx.AsyncClient() as http:
            for server in (a, b, a, b):
                response = await http.post(f"{server.base_url}/auth/login", json=body)
                codes.append(response.status_code)
        assert codes == [401, 401, 401, 429]


async def test_stats_show_every_node_and_the_totals(two: Cluster) -> None:
    a, b = two.nodes
    await two.connect(a, None, "anonymous on A")
    await two.connect(b, None, "anonymous on B")
    await two.connect(b, a.api.admin_token, "admin on B")
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:  # each node reports every 2 s
        stats = (await a.api.ok("GET", "/stats/realtime", headers=a.api.admin))["data"]
        cluster = stats["cluster"]
        if cluster["total"]["connections"] == 3:
            break
        assert asyncio.get_running_loop().time() < deadline, stats
        await asyncio.sleep(0.2)
    assert stats["connections"] == 1 and stats["redis"] == "up"
    assert cluster["total"]["nodes"] == 2
    assert sorted(n["connections"] for n in cluster["nodes"]) == [1, 2]
    health = (await b.api.ok("GET", "/health"))["data"]
    assert health["status"] == "ok" and health["redis"] == {"status": "up"}


async def test_a_node_without_listeners_receives_no_item_messages(two: Cluster) -> None:
    # One message per event, on the collection's own channel: B has nobody
    # listening to posts, so Redis does not even send it those payloads.
    a, b = two.nodes
    await _posts(two)
    bystander = await two.connect(b, None, "anonymous on B (reads no posts)")

    async def received_on_b() -> int:
        url = f"{b.url}/stats/realtime"
        stats = (await b.api.ok("GET", url, headers=b.api.admin))["data"]
        return int(stats["pubsub"]["received"])

    before = await received_on_b()
    for n in range(5):
        item = {"title": f"t{n}", "published": True}
        await a.api.ok("POST", "/items/posts", 201, headers=a.api.admin, json=item)
    await two.sentinel(a, bystander)
    assert await received_on_b() - before == 1  # the sentinel broadcast only
