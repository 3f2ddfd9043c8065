"""Live queries with relation paths in ``fields`` (SPEC §12, §14): the snapshot and
every event carry the related items under each subscriber's own permissions;
a change to a related item alone does not re-emit its parents."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import bearer
from tests.realtime.conftest import Client, Live

FIELDS = ["text", "author.firstName"]


async def _setup(live: Live) -> dict[str, Any]:
    api = live.api
    await api.collection("messages", {"text": {"type": "String"}})
    await api.ok(
        "POST",
        "/schemas/messages/relationships",
        201,
        headers=api.admin,
        json={"name": "author", "type": "M2O", "target": "users", "alias": "messages"},
    )
    await api.allow("user", "messages", "read", fields=["*"])
    # Users read their own record only, and only its first name.
    await api.allow(
        "user", "users", "read", fields=["firstName"], conditions={"id": {"eq": "$CURRENT_USER"}}
    )
    ann_token, ann = await api.user("ann@example.com")
    bob_token, bob = await api.user("bob@example.com")
    for user, name in ((ann, "Ann"), (bob, "Bob")):
        await api.ok(
            "PATCH", f"/items/users/{user['id']}", headers=api.admin, json={"firstName": name}
        )
    return {"ann": ann, "bob": bob, "ann_token": ann_token, "bob_token": bob_token}


async def _post(live: Live, **item: Any) -> dict[str, Any]:
    created = await live.api.ok("POST", "/items/messages", 201, headers=live.api.admin, json=item)
    return dict(created["data"])


async def _subscribe(client: Client, **request: Any) -> dict[str, Any]:
    answer = await client.call("subscribe", {"collection": "messages", **request})
    assert answer["success"] is True, answer
    return dict(answer)


async def test_snapshot_and_events_expand_under_each_subscribers_rights(live: Live) -> None:
    world = await _setup(live)
    ann, bob = world["ann"], world["bob"]
    first = await _post(live, text="before", author_Id=ann["id"])
    ann_client = await live.connect(world["ann_token"], "ann")
    bob_client = await live.connect(world["bob_token"], "bob")

    ann_sub = await _subscribe(ann_client, fields=FIELDS)
    bob_sub = await _subscribe(bob_client, fields=FIELDS)
    assert ann_sub["subscription"] == bob_sub["subscription"]  # the same query...
    assert ann_sub["items"] == [
        {"id": first["id"], "text": "before", "author": {"id": ann["id"], "firstName": "Ann"}}
    ]
    assert bob_sub["items"] == [{"id": first["id"], "text": "before", "author": None}]

    second = await _post(live, text="after", author_Id=ann["id"])
    seen_by_ann = await ann_client.wait_for("subscription.added")
    seen_by_bob = await bob_client.wait_for("subscription.added")
    assert seen_by_ann["item"] == {
        "id": second["id"],
        "text": "after",
        "author": {"id": ann["id"], "firstName": "Ann"},
    }
    assert seen_by_bob["item"] == {"id": second["id"], "text": "after", "author": None}

    # Pointing the message at Bob changes what each of them sees of its author.
    await live.api.ok(
        "PATCH",
        f"/items/messages/{second['id']}",
        headers=live.api.admin,
        json={"author_Id": bob["id"]},
    )
    changed_for_bob = await bob_client.wait_for("subscription.changed")
    assert changed_for_bob["item"]["author"] == {"id": bob["id"], "firstName": "Bob"}
    changed_for_ann = await ann_client.wait_for("subscription.changed")
    assert changed_for_ann["item"]["author"] is None


async def test_a_change_to_the_related_item_alone_does_not_re_emit_the_parent(
    live: Live,
) -> None:
    world = await _setup(live)
    ann = world["ann"]
    await _post(live, text="hello", author_Id=ann["id"])
    client = await live.connect(live.api.admin_token, "admin")
    snapshot = await _subscribe(client, fields=FIELDS)
    assert snapshot["items"][0]["author"]["firstName"] == "Ann"

    await live.api.ok(
        "PATCH", f"/items/users/{ann['id']}", headers=live.api.admin, json={"firstName": "Annie"}
    )
    await live.sentinel(client)
    assert client.received("subscription.changed") == []
    assert client.received("subscription.added") == []


async def test_paths_in_a_live_filter_or_sort_are_refused(live: Live) -> None:
    world = await _setup(live)
    client = await live.connect(world["ann_token"])
    for request in (
        {"filter": {"author.firstName": {"eq": "Ann"}}},
        {"filter": {"OR": [{"author.firstName": {"eq": "Ann"}}]}},
        {"sort": ["author.firstName"]},
        {"fields": ["author.nothing"]},
        {"fields": ["author.messages.author.messages.text"]},
    ):
        answer = await client.call("subscribe", {"collection": "messages", **request})
        assert answer["success"] is False, (request, answer)
        assert answer["message"]
    headers = bearer(world["ann_token"])
    assert (await live.api.client.get("/items/messages", headers=headers)).status_code == 200


@pytest.mark.parametrize("transport", ["websocket"])
async def test_missed_changes_replayed_on_recovery_carry_their_related_items(
    live: Live, recovering: Any
) -> None:
    world = await _setup(live)
    ann = world["ann"]
    client = recovering(live)
    await client.connect(world["ann_token"])
    query = await client.sio.live_query({"collection": "messages", "fields": FIELDS})
    await client.drop(stay_away=True)
    new = await _post(live, text="while away", author_Id=ann["id"])
    client.gate.set()
    hello = await client.next_connected()
    assert hello["recovered"] is True
    await client.wait(lambda: new["id"] in query.items)
    assert query.items[new["id"]]["author"] == {"id": ann["id"], "firstName": "Ann"}


async def test_when_rights_on_the_related_collection_change_later_events_follow(
    live: Live,
) -> None:
    world = await _setup(live)
    bob = world["bob"]
    client = await live.connect(world["ann_token"], "ann")
    await _subscribe(client, fields=FIELDS)
    first = await _post(live, text="bob's", author_Id=bob["id"])
    seen = await client.wait_for("subscription.added")
    assert seen["item"]["author"] is None  # Bob's record is not hers to read
    # Every user may now read every user's first name.
    rules = await live.api.ok(
        "GET", "/permissions", headers=live.api.admin, params={"role": "user"}
    )
    rule = next(r for r in rules["data"] if r["collection"] == "users")
    await live.api.ok(
        "PATCH", f"/permissions/{rule['id']}", headers=live.api.admin, json={"conditions": None}
    )
    await live.api.ok(
        "PATCH", f"/items/messages/{first['id']}", headers=live.api.admin, json={"text": "again"}
    )
    changed = await client.wait_for("subscription.changed")
    assert changed["item"] == {
        "id": first["id"],
        "text": "again",
        "author": {"id": bob["id"], "firstName": "Bob"},
    }
