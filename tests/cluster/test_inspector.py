"""The inspector across two ``livebase serve`` processes sharing PostgreSQL and Redis
(docs/operations.md, "Inspector"): the socket list and the room's feed are the
cluster's, and a user on either node gets none of it.
"""

from __future__ import annotations

from typing import Any

from tests.cluster.conftest import Cluster
from tests.helpers import bearer

ROOM = "admin:inspector"


async def test_the_socket_list_and_the_feed_cover_both_nodes(two: Cluster) -> None:
    first, second = two.nodes
    await first.api.collection("posts", {"title": {"type": "String"}})
    await first.api.allow("user", "posts", "read")
    ann_token, ann = await first.api.user("ann@example.com")
    bob_token, bob = await first.api.user("bob@example.com")
    ann_socket = await two.connect(first, ann_token, "ann on the first")
    bob_socket = await two.connect(second, bob_token, "bob on the second")
    assert (await bob_socket.call("join", ROOM))["success"] is False

    listed = await first.api.ok("GET", "/stats/realtime/sockets", headers=first.api.admin)
    body = listed["data"]
    assert body["total"] == 2 and body["nodes"] == {"clustered": True, "answered": 2}
    nodes = {s["email"]: s["node"] for s in body["sockets"]}
    assert set(nodes) == {"ann@example.com", "bob@example.com"}
    assert nodes["ann@example.com"] != nodes["bob@example.com"]
    for user, token in ((ann, ann_token), (bob, bob_token)):
        refused = await second.api.client.get("/stats/realtime/sockets", headers=bearer(token))
        assert refused.status_code == 403 and user["email"] not in refused.text

    # An administrator watching on the first node sees a write made through the
    # second, and the sockets of both.
    watcher = await two.connect(first, first.api.admin_token, "admin on the first")
    assert (await watcher.call("join", ROOM))["success"] is True
    created = await second.api.ok(
        "POST", "/items/posts", 201, headers=second.api.admin, json={"title": "from the second"}
    )
    key = str(created["data"]["id"])
    await watcher.wait_for(
        "inspector.tail", lambda batch: any(e["key"] == key for e in batch["entries"])
    )
    sockets = await watcher.wait_for("inspector.sockets", lambda p: p["total"] == 3)
    assert {s["userId"] for s in sockets["sockets"]} >= {ann["id"], bob["id"]}
    figures = await watcher.wait_for("inspector.figures", lambda f: f["openSockets"] == 3)
    assert figures["nodes"] == {"clustered": True, "answered": 2}

    # Whatever the room carried went out before the sentinel: the users got none of it.
    await two.sentinel(second, ann_socket, bob_socket, watcher)
    for client in (ann_socket, bob_socket):
        got: list[Any] = [name for name, _ in client.events if name.startswith("inspector.")]
        assert got == [], client.name
