"""The six delivery rules of docs/realtime.md, each with a test that fails if the rule breaks.

Negative cases ("must NOT receive") use a sentinel broadcast sent after the
event: a socket gets its events in order, so once it has the sentinel it
would already have had anything sent before it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from tests.helpers import bearer
from tests.realtime.conftest import Live

POSTS = {
    "title": {"type": "String"},
    "secret": {"type": "String"},
    "owner": {"type": "UUID"},
    "views": {"type": "Integer"},
}


async def _posts(live: Live) -> None:
    await live.api.collection("posts", POSTS)


def _for(key: Any) -> Any:
    return lambda payload: payload["item"]["id"] == key


async def test_guide_example_item_created_reaches_auto_joined_sockets(live: Live) -> None:
    await _posts(live)
    admin = await live.connect(live.api.admin_token, "admin")
    created = await live.api.ok(
        "POST", "/items/posts", 201, headers=live.api.admin, json={"title": "hi"}
    )
    payload = await admin.wait_for("item.created", _for(created["data"]["id"]))
    assert payload["collection"] == "posts"
    assert payload["item"] == created["data"]
    assert payload["userId"] is not None and payload["timestamp"].endswith("Z")


async def test_rule1_one_copy_per_socket_in_several_matching_rooms(live: Live) -> None:
    await _posts(live)
    admin = await live.connect(live.api.admin_token, "admin")
    item = (
        await live.api.ok("POST", "/items/posts", 201, headers=live.api.admin, json={"title": "a"})
    )["data"]
    ack = await admin.call("join", f"item:posts:{item['id']}")
    assert ack == {"success": True, "room": f"item:posts:{item['id']}"}
    assert (await admin.call("join", {"room": "collection:posts"}))["success"] is True
    await live.api.ok(
        "PATCH", f"/items/posts/{item['id']}", headers=live.api.admin, json={"title": "b"}
    )
    await live.sentinel(admin)
    assert len([p for p in admin.received("item.updated") if p["item"]["id"] == item["id"]]) == 1


async def test_rule2_rows_and_fields_per_role_and_current_user(live: Live) -> None:
    await _posts(live)
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, bob = await live.api.user("bob@example.com")
    await live.api.allow(
        "user",
        "posts",
        "read",
        fields=["title", "owner"],
        conditions={"owner": {"eq": "$CURRENT_USER"}},
    )
    ann_socket = await live.connect(ann_token, "ann")
    bob_socket = await live.connect(bob_token, "bob")
    admin = await live.connect(live.api.admin_token, "admin")
    anonymous = await live.connect(None, "anonymous")

    body = {"title": "ann's", "secret": "s3cret", "owner": ann["id"], "views": 1}
    item = (await live.api.ok("POST", "/items/posts", 201, headers=live.api.admin, json=body))[
        "data"
    ]
    seen_by_ann = await ann_socket.wait_for("item.created", _for(item["id"]))
    assert seen_by_ann["item"] == {"id": item["id"], "title": "ann's", "owner": ann["id"]}
    assert (await admin.wait_for("item.created", _for(item["id"])))["item"]["secret"] == "s3cret"
    await live.sentinel(bob_socket, anonymous)
    assert bob_socket.received("item.created") == [] and anonymous.received("item.created") == []

    # Moving the item to bob: bob now sees it (new state), ann no longer does.
    await live.api.ok(
        "PATCH", f"/items/posts/{item['id']}", headers=live.api.admin, json={"owner": bob["id"]}
    )
    assert (await bob_socket.wait_for("item.updated", _for(item["id"])))["item"]["owner"] == bob[
        "id"
    ]
    await live.sentinel(ann_socket)
    assert ann_socket.received("item.updated") == []
    # A delete is checked against the last state.
    await live.api.ok("DELETE", f"/items/posts/{item['id']}", headers=live.api.admin)
    deleted = await bob_socket.wait_for("item.deleted", _for(item["id"]))
    assert set(deleted["item"]) == {"id", "title", "owner"}
    await live.sentinel(ann_socket)
    assert ann_socket.received("item.deleted") == []


async def test_rule3_only_after_commit_and_one_event_per_bulk_item(live: Live) -> None:
    await _posts(live)
    admin = await live.connect(live.api.admin_token, "admin")
    failing = [{"title": "x"}, {"title": "y"}, {"views": "not a number"}]
    response = await live.api.client.post("/items/posts/bulk", headers=live.api.admin, json=failing)
    assert response.status_code == 422
    await live.sentinel(admin)
    assert admin.received("item.created") == []

    created = await live.api.ok(
        "POST",
        "/items/posts/bulk",
        201,
        headers=live.api.admin,
        json=[{"title": "1"}, {"title": "2"}],
    )
    ids = [item["id"] for item in created["data"]]
    for key in ids:
        await admin.wait_for("item.created", _for(key))
        # By the time the event is here, the write is visible to everyone.
        await live.api.ok("GET", f"/items/posts/{key}", headers=live.api.admin)
    assert [p["item"]["id"] for p in admin.received("item.created")] == ids


async def _scalar(live: Live, sql: str) -> Any:
    async with live.services.db.connect() as conn:
        return await conn.scalar(text(sql))


async def test_rule3_a_transaction_rolled_back_after_an_insert_publishes_nothing(
    live: Live,
) -> None:
    await live.api.collection("tags", {"name": {"type": "String", "unique": True}})
    admin = await live.connect(live.api.admin_token, "admin")

    def named(name: str) -> Any:
        return lambda payload: payload["item"]["name"] == name

    await live.api.ok("POST", "/items/tags", 201, headers=live.api.admin, json={"name": "taken"})
    await admin.wait_for("item.created", named("taken"))
    postgres = live.services.db.dialect == "postgresql"
    entry_ids = "SELECT last_value FROM livebase_changes_id_seq"
    ids_before = await _scalar(live, entry_ids) if postgres else None

    # "fresh" is inserted, its trigger logs it; then "taken" violates the unique
    # index and the whole transaction, "fresh" and its log entry, rolls back.
    bulk = [{"name": "fresh"}, {"name": "taken"}]
    response = await live.api.client.post("/items/tags/bulk", headers=live.api.admin, json=bulk)
    assert response.status_code == 409, response.text
    if postgres:  # sequences do not roll back: one log entry was written, for "fresh"
        assert await _scalar(live, entry_ids) == ids_before + 1
    assert await _scalar(live, "SELECT count(*) FROM tags WHERE name = 'fresh'") == 0
    logged = "SELECT count(*) FROM livebase_changes WHERE collection = 'tags'"
    assert await _scalar(live, logged) == 1  # "taken"

    # The sentinel goes through the change log: published after anything before it.
    await live.api.ok("POST", "/items/tags", 201, headers=live.api.admin, json={"name": "after"})
    await admin.wait_for("item.created", named("after"))
    assert [p["item"]["name"] for p in admin.received("item.created")] == ["taken", "after"]
    assert await _scalar(live, logged) == 2


async def test_rule4_events_about_one_item_arrive_in_commit_order(live: Live) -> None:
    await _posts(live)
    admin = await live.connect(live.api.admin_token, "admin")
    item = (
        await live.api.ok("POST", "/items/posts", 201, headers=live.api.admin, json={"views": 0})
    )["data"]
    writes = [
        live.api.client.patch(
            f"/items/posts/{item['id']}", headers=live.api.admin, json={"views": n}
        )
        for n in range(1, 31)
    ]
    assert all(r.status_code == 200 for r in await asyncio.gather(*writes))
    final = (await live.api.ok("GET", f"/items/posts/{item['id']}", headers=live.api.admin))["data"]
    await admin.wait_for("item.updated", lambda p: p["item"]["updatedAt"] == final["updatedAt"])
    updates = [p["item"] for p in admin.received("item.updated")]
    assert len(updates) == 30
    stamps = [u["updatedAt"] for u in updates]
    assert stamps == sorted(stamps) and updates[-1]["views"] == final["views"]


async def test_rule5_the_author_receives_its_own_event(live: Live) -> None:
    await _posts(live)
    token, user = await live.api.user("author@example.com")
    await live.api.allow("user", "posts", "create", fields=["title"])
    await live.api.allow("user", "posts", "read", fields=["title"])
    author = await live.connect(token, "author")
    created = await live.api.ok(
        "POST", "/items/posts", 201, headers=bearer(token), json={"title": "mine"}
    )
    payload = await author.wait_for("item.created", _for(created["data"]["id"]))
    assert payload["userId"] == user["id"]


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_EXCLUDE_COLLECTIONS": "logs"}])
async def test_rule6_excluded_and_non_realtime_collections_are_never_broadcast(live: Live) -> None:
    await live.api.collection("logs", {"line": {"type": "String"}})
    await live.api.collection("quiet", {"line": {"type": "String"}}, realtime=False)
    await _posts(live)
    admin = await live.connect(live.api.admin_token, "admin")
    for name in ("logs", "quiet"):
        await live.api.ok("POST", f"/items/{name}", 201, headers=live.api.admin, json={"line": "x"})
    joined = await admin.call("join", "collection:logs")
    assert joined["success"] is True  # joining is allowed; nothing is ever sent there
    await live.api.ok(
        "POST", "/items/posts", 201, headers=live.api.admin, json={"title": "control"}
    )
    await admin.wait_for("item.created", lambda p: p["collection"] == "posts")
    await live.sentinel(admin)
    assert {p["collection"] for p in admin.received("item.created")} == {"posts"}


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_AUTO_JOIN_COLLECTIONS": False}])
async def test_item_room_members_get_that_item_only_cut_to_their_fields(live: Live) -> None:
    await _posts(live)
    token, _ = await live.api.user("watch@example.com")
    await live.api.allow("user", "posts", "read", fields=["title"])
    watched, other = [
        (await live.api.ok("POST", "/items/posts", 201, headers=live.api.admin, json={"title": t}))[
            "data"
        ]
        for t in ("watched", "other")
    ]
    client = await live.connect(token)
    assert (await client.call("join", f"item:posts:{watched['id']}"))["success"] is True
    for item in (other, watched):
        await live.api.ok(
            "PATCH", f"/items/posts/{item['id']}", headers=live.api.admin, json={"secret": "s"}
        )
    payload = await client.wait_for("item.updated")
    assert payload["item"] == {"id": watched["id"], "title": "watched"}
    await live.sentinel(client)
    assert len(client.received("item.updated")) == 1


async def test_user_room_delivery_after_the_last_socket_left(live: Live) -> None:
    # python-socketio drops its room table when the last room empties and
    # makes a new one later; the router must not keep reading the old one.
    token, user = await live.api.user("ann@example.com")
    first = await live.connect(token, "first")
    await first.sio.disconnect()
    for _ in range(500):  # until the server has seen the disconnect too
        if not live.realtime.connections:
            break
        await asyncio.sleep(0.01)
    assert len(live.realtime.connections) == 0
    second = await live.connect(token, "second")
    body = {"type": "info", "title": "t", "message": "m", "userIds": [user["id"]]}
    await live.api.ok("POST", "/notifications/send", 201, headers=live.api.admin, json=body)
    assert (await second.wait_for("notification.new", within=3))["notification"]["title"] == "t"


async def test_rule2_who_wrote_an_item_only_to_those_rest_would_tell(live: Live) -> None:
    """``userId`` names the writer: REST shows it only as ``userUpdated`` (schema accountability).

    A reader whose role may not read ``userUpdated`` (or whose collection has
    none) gets ``userId: null``, except on the writer's own sockets (rule 5).
    """
    await live.api.collection("votes", {"choice": {"type": "String"}})
    await live.api.collection("notes", {"text": {"type": "String"}}, accountability=True)
    token, user = await live.api.user("voter@example.com")
    reader_token, _ = await live.api.user("reader@example.com")
    for collection in ("votes", "notes"):
        await live.api.allow("user", collection, "create")
        read = await live.api.allow("user", collection, "read")
    await live.api.allow("user", "notes", "update")
    voter = await live.connect(token, "voter")
    reader = await live.connect(reader_token, "reader")
    admin = await live.connect(live.api.admin_token, "admin")

    vote = await live.api.ok("POST", "/items/votes", 201, headers=bearer(token), json={})
    assert "userUpdated" not in vote["data"]
    for client, writer in ((voter, user["id"]), (reader, None), (admin, None)):
        payload = await client.wait_for("item.created", _for(vote["data"]["id"]))
        assert payload["userId"] == writer, client.name

    note = await live.api.ok("POST", "/items/notes", 201, headers=bearer(token), json={})
    seen = await live.api.ok(
        "GET", f"/items/notes/{note['data']['id']}", headers=bearer(reader_token)
    )
    assert seen["data"]["userUpdated"] == user["id"]
    for client in (voter, reader, admin):
        payload = await client.wait_for("item.created", _for(note["data"]["id"]))
        assert payload["userId"] == user["id"], client.name

    # Once the reader's role may no longer read userUpdated, it is no longer told who wrote.
    fields = {"fields": ["id", "text"]}
    await live.api.ok("PATCH", f"/permissions/{read['id']}", headers=live.api.admin, json=fields)
    await live.api.ok(
        "PATCH", f"/items/notes/{note['data']['id']}", headers=bearer(token), json={"text": "x"}
    )
    payload = await reader.wait_for("item.updated", _for(note["data"]["id"]))
    assert payload["userId"] is None and "userUpdated" not in payload["item"]
    assert (await voter.wait_for("item.updated", _for(note["data"]["id"])))["userId"] == user["id"]
