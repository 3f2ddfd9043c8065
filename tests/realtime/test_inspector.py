"""The inspector's server side: the administrators' room ``admin:inspector`` and
``GET /stats/realtime/sockets`` (docs/operations.md, "Inspector").

In the cluster topology the clients are on node B and REST writes go to node A:
the tail and the socket list are the cluster's, not one node's.
"""

from __future__ import annotations

from typing import Any

import pytest

from livebase.realtime.inspector import quantile
from tests.helpers import bearer
from tests.realtime.conftest import Client, Live

ROOM = "admin:inspector"
INSPECTOR_EVENTS = ("inspector.tail", "inspector.sockets", "inspector.figures")


def _has_key(key: str) -> Any:
    return lambda batch: any(entry["key"] == key for entry in batch["entries"])


def _inspector_events(client: Client) -> list[tuple[str, Any]]:
    return [(name, payload) for name, payload in client.events if name in INSPECTOR_EVENTS]


async def _write(live: Live, title: str) -> dict[str, Any]:
    body = await live.api.ok(
        "POST", "/items/posts", 201, headers=live.api.admin, json={"title": title}
    )
    return dict(body["data"])


async def test_the_room_is_for_administrators_only(live: Live) -> None:
    await live.api.collection("posts", {"title": {"type": "String"}})
    await live.api.allow("user", "posts", "read")
    user_token, _ = await live.api.user("ann@example.com")
    user = await live.connect(user_token, "ann")
    anonymous = await live.connect(None, "anonymous")
    for client in (user, anonymous):
        for room in (ROOM, {"room": ROOM}, "admin:other", "admin"):
            answer = await client.call("join", room)
            assert answer["success"] is False, (client.name, room, answer)
            assert "administrators only" in answer["message"]

    admin = await live.connect(live.api.admin_token, "admin")
    unknown = await admin.call("join", "admin:other")
    assert unknown["success"] is False and "no such" in unknown["message"]
    assert (await admin.call("join", ROOM)) == {"success": True, "room": ROOM}
    # The room carries the server's events only: no broadcasts, no room presence.
    said = await admin.call("broadcast", {"room": ROOM, "event": "x", "data": {}})
    assert said["success"] is False and "the server's" in said["message"]
    tracked = await admin.call("presence.track", {"room": ROOM, "state": {}})
    assert tracked["success"] is False and "the server's room" in tracked["message"]
    first = await admin.wait_for("inspector.figures")
    assert first["openSockets"] == 3
    await admin.wait_for("inspector.sockets")
    await admin.wait_for("inspector.tail")

    post = await _write(live, "hello")  # through node A in a cluster
    tail = await admin.wait_for("inspector.tail", _has_key(str(post["id"])))
    entry = next(e for e in tail["entries"] if e["key"] == str(post["id"]))
    assert entry["collection"] == "posts" and entry["action"] == "create"
    assert entry["offset"].isdigit() and entry["time"] and entry["userId"]
    await admin.wait_for("inspector.sockets")  # the periodic push went out since
    # The post was delivered (to Ann's socket): its latency is in the p99 of the minute.
    figures = await admin.wait_for("inspector.figures", lambda f: f["latencyP99"] is not None)
    assert 0 < figures["latencyP99"] <= 30
    # Counted since the process started (other tests' sockets included: one registry).
    assert isinstance(figures["slowConsumerDisconnects"], int)
    assert figures["eventsPerSecond"] is not None and figures["framesPerSecond"] is not None
    assert figures["changeLog"]["lastPosition"] >= int(entry["offset"])
    assert figures["changeLog"]["behind"] >= 0 and figures["openSockets"] == 3

    # Whatever went to the room went after the refusals: the sentinel comes after it all.
    await live.sentinel(user, anonymous, admin)
    assert _inspector_events(user) == [] and _inspector_events(anonymous) == []
    # The user socket still gets the post itself: it is in collection:posts.
    assert user.received("item.created")


async def test_a_demoted_administrator_stops_receiving(live: Live) -> None:
    await live.api.collection("posts", {"title": {"type": "String"}})
    token, ben = await live.api.user("ben@example.com")
    await live.api.ok(
        "PATCH", f"/items/users/{ben['id']}", headers=live.api.admin, json={"role": "administrator"}
    )
    token = (
        await live.api.ok(
            "POST", "/auth/login", json={"email": "ben@example.com", "password": "password-123"}
        )
    )["token"]
    ben_socket = await live.connect(token, "ben")
    admin = await live.connect(live.api.admin_token, "admin")
    for client in (ben_socket, admin):
        assert (await client.call("join", ROOM))["success"] is True
        await client.wait_for("inspector.figures")

    await live.api.ok(
        "PATCH", f"/items/users/{ben['id']}", headers=live.api.admin, json={"role": "user"}
    )
    await live.sentinel(ben_socket, admin)  # the role change was handled before it
    refused = await ben_socket.call("join", ROOM)
    assert refused["success"] is False and "administrators only" in refused["message"]
    ben_socket.events.clear()

    post = await _write(live, "after the demotion")
    await admin.wait_for("inspector.tail", _has_key(str(post["id"])))
    await live.sentinel(ben_socket, admin)
    assert _inspector_events(ben_socket) == []


async def test_the_socket_list(live: Live) -> None:
    await live.api.collection("posts", {"title": {"type": "String"}})
    await live.api.allow("user", "posts", "read")
    token, ann = await live.api.user("ann@example.com")
    ann_socket = await live.connect(token, "ann")
    assert (await ann_socket.call("join", "lobby"))["success"] is True
    on_writer = await live.connect_to_writer("admin-on-node-a")  # node A in a cluster

    url = f"{live.base_url}/stats/realtime/sockets"
    body = (await live.api.ok("GET", url, headers=live.api.admin))["data"]
    assert set(body) == {"enabled", "sockets", "total", "limit", "nodes"}
    assert body["enabled"] is True and body["total"] == 2 and body["limit"] == 500
    by_user = {s["userId"]: s for s in body["sockets"]}
    listed = by_user[ann["id"]]
    assert listed["email"] == "ann@example.com" and listed["role"] == "user"
    assert listed["transport"] == live.transport and listed["queuedBytes"] >= 0
    assert "lobby" in listed["rooms"] and "collection:posts" in listed["rooms"]
    assert listed["roomCount"] == len(listed["rooms"]) and listed["connectedAt"]
    assert listed["node"] == live.realtime.node_id
    admin_listed = [s for s in body["sockets"] if s["role"] == "administrator"]
    assert [s["node"] for s in admin_listed] == [live.writer.node_id]
    assert on_writer.sio.connected
    # The newest connected first.
    assert body["sockets"][0]["connectedAt"] >= body["sockets"][1]["connectedAt"]

    one = (await live.api.ok("GET", url, headers=live.api.admin, params={"limit": "1"}))["data"]
    assert len(one["sockets"]) == 1 and one["total"] == 2 and one["limit"] == 1
    assert one["sockets"][0]["role"] == "administrator"  # the newest


@pytest.mark.parametrize("topology", ["alone"])
async def test_the_socket_list_is_for_administrators_and_checks_its_input(live: Live) -> None:
    token, _ = await live.api.user("ann@example.com")
    await live.connect(token, "ann")
    url = "/stats/realtime/sockets"
    as_user = await live.api.client.get(url, headers=bearer(token))
    assert as_user.status_code == 403, as_user.text
    anonymous = await live.api.client.get(url)
    assert anonymous.status_code == 401, anonymous.text
    for response in (as_user, anonymous):
        assert "ann@example.com" not in response.text and "sockets" not in response.text
    for limit in ("0", "501", "-1", "abc", "1.5", "", "9" * 40, "\u0661"):
        response = await live.api.client.get(url, headers=live.api.admin, params={"limit": limit})
        assert response.status_code == 400, (limit, response.text)
        assert response.json()["error"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([0, 0, 0], None),  # nothing delivered
        ([10, 10, 10], 0.99 * 0.01),  # all in the first bucket: interpolated from 0
        ([0, 100, 100], 0.01 + 0.99 * 0.09),  # all in the second: from its lower bound
        ([50, 99, 100], 0.1),  # the 99th of 100 ends the second bucket
        ([0, 0, 5], 0.1),  # past the last bound: the last bound, as Prometheus says
    ],
)
def test_the_p99_is_prometheus_histogram_quantile(
    counts: list[int], expected: float | None
) -> None:
    result = quantile(0.99, [0.01, 0.1], counts)
    assert result == pytest.approx(expected) if expected is not None else result is None
