"""Live queries (docs/realtime.md, "Live queries"): a query's snapshot at a change-log
position, then every change to its result, with nothing lost or doubled.

Real clients against a real server, alone (SQLite and PostgreSQL) and as a
two-node cluster (clients on node B, writes on node A). Events a client
must not get are checked with a sentinel sent after them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import bearer
from tests.realtime.conftest import Client, Live

MESSAGES = {
    "text": {"type": "String"},
    "channel": {"type": "String"},
    "rank": {"type": "Integer"},
    "owner": {"type": "String"},
    "secret": {"type": "String"},
}


async def _messages(live: Live) -> None:
    await live.api.collection("messages", MESSAGES)


async def _post(live: Live, token: str | None = None, **item: Any) -> dict[str, Any]:
    headers = bearer(token) if token else live.api.admin
    created = await live.api.ok("POST", "/items/messages", 201, headers=headers, json=item)
    return dict(created["data"])


async def _patch(live: Live, key: str, **changes: Any) -> None:
    await live.api.ok("PATCH", f"/items/messages/{key}", headers=live.api.admin, json=changes)


async def _subscribe(client: Client, **request: Any) -> dict[str, Any]:
    answer = await client.call("subscribe", {"collection": "messages", **request})
    assert answer["success"] is True, answer
    return dict(answer)


def _ids(client: Client, event: str, sub: str) -> list[str]:
    return [p["item"]["id"] for p in client.received(event) if p["subscription"] == sub]


async def test_subscribe_answers_the_snapshot_at_an_offset(live: Live) -> None:
    await _messages(live)
    for rank, channel in enumerate(["general", "random", "general", "general"]):
        await _post(live, text=f"m{rank}", channel=channel, rank=rank)
    client = await live.connect(live.api.admin_token)

    answer = await _subscribe(
        client,
        filter={"channel": {"eq": "general"}},
        fields=["text", "rank"],
        sort=["-rank"],
        limit=2,
    )

    assert set(answer) == {"success", "subscription", "items", "offset"}
    assert [item["text"] for item in answer["items"]] == ["m3", "m2"]
    assert all(set(item) == {"id", "text", "rank"} for item in answer["items"])
    assert isinstance(answer["subscription"], str) and answer["subscription"]
    assert answer["offset"].isdigit() and int(answer["offset"]) > 0


async def test_changes_arrive_as_added_changed_and_removed(live: Live) -> None:
    await _messages(live)
    client = await live.connect(live.api.admin_token)
    sub = (await _subscribe(client, filter={"channel": "general"}, fields=["text"]))["subscription"]

    inside = await _post(live, text="hello", channel="general")
    added = await client.wait_for("subscription.added")
    assert added == {
        "subscription": sub,
        "collection": "messages",
        "item": {"id": inside["id"], "text": "hello"},
        "timestamp": added["timestamp"],
    }
    assert added["timestamp"].endswith("Z")

    outside = await _post(live, text="elsewhere", channel="random")
    await _patch(live, inside["id"], text="hello again")
    changed = await client.wait_for("subscription.changed")
    assert changed["item"] == {"id": inside["id"], "text": "hello again"}

    await _patch(live, outside["id"], channel="general")  # into the filter
    await client.wait_for("subscription.added", lambda p: p["item"]["id"] == outside["id"])
    await _patch(live, outside["id"], channel="random")  # out of it
    removed = await client.wait_for("subscription.removed")
    assert removed["item"] == {"id": outside["id"]}

    await _patch(live, inside["id"], rank=5)  # a field the subscription does not show
    await live.api.ok("DELETE", f"/items/messages/{inside['id']}", headers=live.api.admin)
    await client.wait_for("subscription.removed", lambda p: p["item"]["id"] == inside["id"])
    await live.sentinel(client)

    assert _ids(client, "subscription.added", sub) == [inside["id"], outside["id"]]
    assert _ids(client, "subscription.changed", sub) == [inside["id"]]
    assert _ids(client, "subscription.removed", sub) == [outside["id"], inside["id"]]


async def test_a_subscriber_never_sees_rows_or_fields_its_role_may_not_read(live: Live) -> None:
    await _messages(live)
    await live.api.allow(
        "user",
        "messages",
        "read",
        fields=["text", "owner"],
        conditions={"owner": {"eq": "$CURRENT_USER"}},
    )
    await live.api.allow("user", "messages", "create", fields=["*"])
    token, ann = await live.api.user("ann@example.com")
    _, bob = await live.api.user("bob@example.com")
    await _post(live, text="ann's old", owner=ann["id"], secret="s")
    await _post(live, text="bob's old", owner=bob["id"], secret="s")
    client = await live.connect(token)

    answer = await _subscribe(client)
    assert [(m["text"], set(m)) for m in answer["items"]] == [
        ("ann's old", {"id", "text", "owner"})
    ]
    denied = await client.call("subscribe", {"collection": "messages", "fields": ["secret"]})
    assert denied["success"] is False and "secret" in denied["message"]
    by_secret = {"collection": "messages", "filter": {"secret": {"startsWith": "s"}}}
    oracle = await client.call("subscribe", by_secret)
    assert oracle["success"] is False and "secret" in oracle["message"]

    await _post(live, text="bob's new", owner=bob["id"], secret="s")
    mine = await _post(live, token, text="ann's new", owner=ann["id"], secret="s")
    added = await client.wait_for("subscription.added")
    assert added["item"] == {"id": mine["id"], "text": "ann's new", "owner": ann["id"]}
    await live.sentinel(client)
    assert len(client.received("subscription.added")) == 1


async def test_items_created_while_subscribing_appear_exactly_once(live: Live) -> None:
    """The snapshot and the first events meet at one log position: whatever was
    written while the snapshot was read is in it or comes after it, never both,
    and nothing of the subscription comes before its answer."""
    await _messages(live)
    clients = [await live.connect(live.api.admin_token, f"c{n}") for n in range(3)]
    writing = True
    written: list[str] = []

    async def write() -> None:
        n = 0
        while writing:
            n += 1
            written.append((await _post(live, text=f"w{n}", channel="general"))["id"])

    writers = [asyncio.create_task(write()) for _ in range(3)]
    answers = []
    for client in clients:
        await asyncio.sleep(0.15)
        answered = asyncio.get_running_loop().create_future()

        def record(answer: Any, client: Client = client, answered: Any = answered) -> None:
            client.events.append(("(the answer)", answer))  # in the order packets came
            answered.set_result(answer)

        request = {"collection": "messages", "filter": {"channel": "general"}, "limit": 1000}
        await client.sio.emit("subscribe", request, callback=record)
        answers.append(await asyncio.wait_for(answered, 10))
    await asyncio.sleep(0.15)
    writing = False
    await asyncio.gather(*writers)
    await live.sentinel(*clients)

    assert len(written) > 10
    for client, answer in zip(clients, answers, strict=True):
        names = [name for name, _ in client.events]
        first = min(n for n, name in enumerate(names) if name.startswith("subscription."))
        assert names.index("(the answer)") < first, "an event came before the snapshot"
        snapshot = [item["id"] for item in answer["items"]]
        added = _ids(client, "subscription.added", answer["subscription"])
        seen = snapshot + added
        assert len(seen) == len(set(seen)), "an item came twice"
        assert sorted(seen) == sorted(written), "an item is missing"
    # Some subscribed while writes went on.
    assert any(0 < len(a["items"]) < len(written) for a in answers)


@pytest.mark.parametrize("transport", ["websocket"])
async def test_rights_changing_while_items_change_leave_the_client_equal_to_rest(
    live: Live,
) -> None:
    """Permissions flip while items move in and out of them; a client applying the
    events (added/changed: put, removed: delete) ends with exactly what REST returns."""
    await _messages(live)
    token, _ = await live.api.user("flip@example.com")
    rule = await live.api.allow(
        "user", "messages", "read", fields=["text", "rank"], conditions={"rank": {"lte": 5}}
    )
    keys = [(await _post(live, text=f"i{n}", rank=n % 10))["id"] for n in range(20)]
    client = await live.connect(token)
    answer = await _subscribe(client, fields=["text", "rank"], limit=1000)
    sub = answer["subscription"]
    writing = True

    async def move_items() -> None:
        n = 0
        while writing:
            n += 1
            await _patch(live, keys[n % len(keys)], rank=(n * 7) % 10)

    mover = asyncio.create_task(move_items())
    for bound in (2, 8, 4, 9, 1):
        await asyncio.sleep(0.1)
        await live.api.ok(
            "PATCH",
            f"/permissions/{rule['id']}",
            headers=live.api.admin,
            json={"conditions": {"rank": {"lte": bound}}},
        )
    await asyncio.sleep(0.1)
    writing = False
    await mover
    await live.sentinel(client)

    held = {item["id"]: item for item in answer["items"]}
    for name, payload in client.events:
        if not name.startswith("subscription.") or payload["subscription"] != sub:
            continue
        assert name != "subscription.ended", payload
        if name == "subscription.removed":
            held.pop(payload["item"]["id"], None)
        else:
            held[payload["item"]["id"]] = payload["item"]
    listed = await live.api.ok(
        "GET", "/items/messages", headers=bearer(token), params={"limit": "-1"}
    )
    assert held == {item["id"]: item for item in listed["data"]}
    assert live.realtime.stats()["liveQueries"]["moved"] >= 4


async def test_unsubscribe_stops_the_events(live: Live) -> None:
    await _messages(live)
    client = await live.connect(live.api.admin_token)
    sub = (await _subscribe(client))["subscription"]
    assert await client.call("unsubscribe", {"subscription": sub}) == {
        "success": True,
        "subscription": sub,
    }
    await _post(live, text="unheard")
    await live.sentinel(client)
    assert client.received("subscription.added") == []
    again = await client.call("unsubscribe", {"subscription": sub})
    assert again["success"] is False and "no subscription" in again["message"]


async def test_identical_subscriptions_share_their_work(live: Live) -> None:
    await _messages(live)
    first = await live.connect(live.api.admin_token, "first")
    second = await live.connect(live.api.admin_token, "second")
    a = await _subscribe(first, filter={"channel": "general"})
    b = await _subscribe(second, filter={"channel": "general"})
    await _subscribe(second, filter={"channel": "random"})
    assert a["subscription"] == b["subscription"]
    stats = live.realtime.stats()["liveQueries"]
    assert (stats["subscriptions"], stats["groups"]) == (3, 2)
    await _post(live, text="to both", channel="general")
    for client in (first, second):
        await client.wait_for("subscription.added")


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_MAX_SUBSCRIPTIONS": 2}])
async def test_a_socket_holds_at_most_socket_max_subscriptions(live: Live) -> None:
    await _messages(live)
    client = await live.connect(live.api.admin_token)
    await _subscribe(client, filter={"rank": 1})
    await _subscribe(client, filter={"rank": 2})
    refused = await client.call("subscribe", {"collection": "messages", "filter": {"rank": 3}})
    assert refused == {"success": False, "message": "a socket may hold at most 2 subscriptions"}
    await _subscribe(client, filter={"rank": 2})  # the same one again: no new subscription
    assert live.realtime.stats()["liveQueries"]["subscriptions"] == 2
    # Sent all at once (handled side by side), they still count.
    other = await live.connect(live.api.admin_token, "other")
    answers = await asyncio.gather(
        *(
            other.call("subscribe", {"collection": "messages", "filter": {"rank": n}})
            for n in range(20)
        )
    )
    assert sum(1 for a in answers if a["success"]) == 2
    assert live.realtime.stats()["liveQueries"]["subscriptions"] == 4


BAD_REQUESTS: list[tuple[Any, str]] = [
    (None, "subscribe takes an object"),
    ("messages", "subscribe takes an object"),
    ([], "subscribe takes an object"),
    ({}, "collection must be"),
    ({"collection": 5}, "collection must be"),
    ({"collection": ""}, "collection must be"),
    ({"collection": "nope"}, "does not exist"),
    ({"collection": "x" * 5000}, "does not exist"),
    ({"collection": "messages", "page": 2}, "not 'page'"),
    ({"collection": "messages", "filter": "text"}, "filter must be an object"),
    ({"collection": "messages", "filter": [1]}, "filter must be an object"),
    ({"collection": "messages", "filter": {"nope": 1}}, "unknown field"),
    ({"collection": "messages", "filter": {"rank": {"gt": "x"}}}, "expected"),
    ({"collection": "messages", "filter": {"rank": {"zz": 1}}}, "unknown operator"),
    ({"collection": "messages", "filter": {"OR": {"rank": 1}}}, "must be a list"),
    ({"collection": "messages", "fields": "nope"}, "no field 'nope'"),
    ({"collection": "messages", "fields": [1]}, "list of field names"),
    ({"collection": "messages", "fields": {"a": 1}}, "list of field names"),
    ({"collection": "messages", "sort": ["nope"]}, "no field 'nope'"),
    ({"collection": "messages", "sort": {"rank": "up"}}, "'asc' or 'desc'"),
    ({"collection": "messages", "sort": 5}, "list of field names"),
    ({"collection": "messages", "limit": 0}, "limit must be"),
    ({"collection": "messages", "limit": 1001}, "limit must be"),
    ({"collection": "messages", "limit": -1}, "limit must be"),
    ({"collection": "messages", "limit": "10"}, "limit must be"),
    ({"collection": "messages", "limit": True}, "limit must be"),
    ({"collection": "messages", "limit": 2.5}, "limit must be"),
    ({"collection": "messages", "filter": {"text": {"in": ["x" * 100] * 200}}}, "16384 bytes"),
    ({"collection": "schemas"}, "no realtime events"),
    ({"collection": "notifications"}, "no realtime events"),
    ({"collection": "quiet"}, "no realtime events"),
]


@pytest.mark.parametrize("transport", ["websocket"])
async def test_bad_subscribe_requests_get_a_clear_refusal_and_change_nothing(
    live: Live,
) -> None:
    await _messages(live)
    await live.api.collection("quiet", {"text": {"type": "String"}}, realtime=False)
    client = await live.connect(live.api.admin_token)
    for request, message in BAD_REQUESTS:
        answer = await client.call("subscribe", request)
        assert answer["success"] is False, request
        assert message in answer["message"], (request, answer)
    for request in [None, 5, "x", {}, {"subscription": 5}, {"subscription": "nope"}]:
        answer = await client.call("unsubscribe", request)
        assert answer["success"] is False, request
    assert live.realtime.stats()["liveQueries"]["subscriptions"] == 0
    await client.sio.emit("subscribe", {"collection": "messages"})  # no ack asked
    await _subscribe(client)  # the socket still works
    await live.sentinel(client)


@pytest.mark.parametrize("transport", ["websocket"])
async def test_gaining_and_losing_read_rights_adds_and_removes_items(live: Live) -> None:
    await _messages(live)
    token, ann = await live.api.user("ann@example.com")
    rule = await live.api.allow(
        "user", "messages", "read", fields=["*"], conditions={"channel": {"eq": "public"}}
    )
    public = await _post(live, text="public", channel="public")
    private = await _post(live, text="private", channel="private")
    client = await live.connect(token)
    sub = (await _subscribe(client, fields=["text"]))["subscription"]

    await live.api.ok(
        "PATCH",
        f"/permissions/{rule['id']}",
        headers=live.api.admin,
        json={"conditions": {"channel": {"eq": "private"}}},
    )
    added = await client.wait_for("subscription.added")
    removed = await client.wait_for("subscription.removed")
    assert added["item"] == {"id": private["id"], "text": "private"}
    assert removed["item"] == {"id": public["id"]}
    assert added["subscription"] == removed["subscription"] == sub

    # Later changes follow the new rights.
    await _patch(live, public["id"], text="still hidden")
    await _patch(live, private["id"], text="seen")
    changed = await client.wait_for("subscription.changed")
    assert changed["item"] == {"id": private["id"], "text": "seen"}

    # No read at all: the subscription ends, as subscribing now would be refused.
    await live.api.ok("DELETE", f"/permissions/{rule['id']}", headers=live.api.admin)
    ended = await client.wait_for("subscription.ended")
    assert ended["subscription"] == sub and "may not read" in ended["reason"]
    await _post(live, text="after", channel="private")
    await live.sentinel(client)
    assert len(client.received("subscription.changed")) == 1
    assert len(client.received("subscription.added")) == 1
    assert ann["id"]


@pytest.mark.parametrize("transport", ["websocket"])
async def test_a_role_change_moves_a_users_subscriptions(live: Live) -> None:
    await _messages(live)
    await live.api.ok("POST", "/roles", 201, headers=live.api.admin, json={"name": "staff"})
    await live.api.allow("user", "messages", "read", fields=["*"], conditions={"rank": 1})
    await live.api.allow("staff", "messages", "read", fields=["*"])
    token, user = await live.api.user("role@example.com")
    one = await _post(live, text="one", rank=1)
    two = await _post(live, text="two", rank=2)
    client = await live.connect(token)
    answer = await _subscribe(client)
    assert [m["id"] for m in answer["items"]] == [one["id"]]

    await live.api.ok(
        "PATCH", f"/items/users/{user['id']}", headers=live.api.admin, json={"role": "staff"}
    )
    added = await client.wait_for("subscription.added")
    assert added["item"]["id"] == two["id"]


async def test_a_schema_change_ends_the_collections_subscriptions(live: Live) -> None:
    await _messages(live)
    client = await live.connect(live.api.admin_token)
    sub = (await _subscribe(client))["subscription"]
    await live.api.ok("DELETE", "/schemas/messages", headers=live.api.admin)
    ended = await client.wait_for("subscription.ended")
    assert ended["subscription"] == sub and ended["collection"] == "messages"
    assert live.realtime.stats()["liveQueries"]["subscriptions"] == 0


@pytest.mark.parametrize("transport", ["websocket"])
async def test_pinned_filters_are_found_through_the_index(live: Live) -> None:
    """A change is tested against the subscriptions filed under its values (and
    those that pin nothing), not every one."""
    await _messages(live)
    client = await live.connect(live.api.admin_token)
    subs = {}
    for channel in ("a", "b", "c"):
        subs[channel] = (await _subscribe(client, filter={"channel": channel}))["subscription"]
    in_c_d = {"channel": {"in": ["c", "d"]}, "rank": {"gt": 1}}
    subs["c or d"] = (await _subscribe(client, filter=in_c_d))["subscription"]
    either = {"OR": [{"channel": "e"}, {"rank": 9}]}
    subs["e or 9"] = (await _subscribe(client, filter=either))["subscription"]
    groups = live.realtime.live._groups.values()
    assert sorted(str(g.pin) for g in groups) == sorted(
        [
            "('channel', ('a',))",
            "('channel', ('b',))",
            "('channel', ('c',))",
            "('channel', ('c', 'd'))",
            "None",
        ]
    )
    candidates = live.realtime.live._index.candidates("messages", [{"channel": "b", "rank": 0}])
    assert {g.id for g in candidates} == {subs["b"], subs["e or 9"]}

    moved = await _post(live, text="x", channel="a", rank=9)
    await _patch(live, moved["id"], channel="c")
    await live.sentinel(client)
    names = {sub: name for name, sub in subs.items()}
    events = [(names[p["subscription"]], name) for name, p in client.events if "subscr" in name]
    assert sorted(events) == sorted(
        [
            ("a", "subscription.added"),
            ("e or 9", "subscription.added"),
            ("a", "subscription.removed"),
            ("c", "subscription.added"),
            ("c or d", "subscription.added"),
            ("e or 9", "subscription.changed"),
        ]
    )


# -- recovery, and the Python client ---------------------------------------------------


async def _rest_general(live: Live) -> dict[str, str]:
    listed = await live.api.ok(
        "GET",
        "/items/messages",
        headers=live.api.admin,
        params={"filter": '{"channel": {"eq": "general"}}', "limit": "-1"},
    )
    return {item["id"]: item["text"] for item in listed["data"]}


@pytest.mark.parametrize("transport", ["websocket"])
async def test_a_recovered_socket_gets_its_missed_changes_as_subscription_events(
    live: Live, recovering: Any
) -> None:
    await _messages(live)
    stays = await _post(live, text="stays", channel="general")
    leaves = await _post(live, text="leaves", channel="general")
    client = recovering(live)
    await client.connect(live.api.admin_token)
    query = await client.sio.live_query(
        {"collection": "messages", "filter": {"channel": "general"}, "fields": ["text"]}
    )
    assert {k: v["text"] for k, v in query.items.items()} == await _rest_general(live)

    await client.drop(stay_away=True)
    await _patch(live, stays["id"], text="changed while away")
    await _patch(live, leaves["id"], channel="random")
    new = await _post(live, text="new while away", channel="general")
    await _post(live, text="elsewhere", channel="random")
    client.gate.set()
    hello = await client.next_connected()

    # 4 item events (an administrator is in the collection's room) and 3 subscription events.
    assert hello["recovered"] is True and hello["missed"] == 7
    assert client.sio.recovered
    await client.wait(lambda: new["id"] in query.items)
    assert {k: v["text"] for k, v in query.items.items()} == await _rest_general(live)
    names = [name for name, _ in client.events if name.startswith("subscription.")]
    assert names == ["subscription.changed", "subscription.removed", "subscription.added"]
    # The subscription goes on after the recovery, once.
    after = await _post(live, text="after", channel="general")
    await client.wait(lambda: after["id"] in query.items)
    await live.sentinel()
    assert sum(1 for name, _ in client.events if name == "subscription.added") == 2


@pytest.mark.parametrize("transport", ["websocket"])
async def test_a_subscription_whose_rights_changed_while_away_ends_on_recovery(
    live: Live, recovering: Any
) -> None:
    await _messages(live)
    token, _ = await live.api.user("away@example.com")
    rule = await live.api.allow("user", "messages", "read", fields=["*"])
    client = recovering(live)
    await client.connect(token)
    query = await client.sio.live_query({"collection": "messages"})
    await client.drop(stay_away=True)
    await live.api.ok(
        "PATCH",
        f"/permissions/{rule['id']}",
        headers=live.api.admin,
        json={"conditions": {"channel": {"eq": "x"}}},
    )
    client.gate.set()
    hello = await client.next_connected()
    assert hello["recovered"] is True
    await client.wait(lambda: query.ended is not None)
    assert "changed while the socket was away" in str(query.ended)


@pytest.mark.parametrize("transport", ["websocket"])
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_RECOVERY_WINDOW": 0}])
async def test_the_python_client_subscribes_again_after_a_new_session(
    live: Live, recovering: Any
) -> None:
    await _messages(live)
    await _post(live, text="first", channel="general")
    client = recovering(live)
    await client.connect(live.api.admin_token)
    query = await client.sio.live_query(
        {"collection": "messages", "filter": {"channel": "general"}}
    )
    first_id = query.id
    await client.drop(stay_away=True)
    while_away = await _post(live, text="while away", channel="general")
    client.gate.set()
    hello = await client.next_connected()
    assert "recovered" not in hello and not client.sio.recovered
    await client.wait(lambda: while_away["id"] in query.items)
    assert query.id == first_id
    assert {k: v["text"] for k, v in query.items.items()} == await _rest_general(live)
