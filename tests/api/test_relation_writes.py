"""Writing through relations (SPEC §14): foreign keys by id, M2M links, onDelete."""

from __future__ import annotations

from typing import Any

import pytest

from livebase.app import services_of
from livebase.services.links import MAX_LINKS
from tests.api.test_relationships import MISSING, relate
from tests.helpers import Api, bearer


async def setup_blog(api: Api) -> dict[str, Any]:
    """posts (author → users, CASCADE; editor → users, SET NULL; tags ↔ tags),
    reviews (post → posts, RESTRICT); a user "ann" who may read only her own user row
    and the tags whose label is not "secret"."""
    await api.collection("posts", {"title": {"type": "String"}})
    await api.collection("tags", {"label": {"type": "String"}})
    await api.collection("reviews", {"stars": {"type": "Integer"}})
    await relate(
        api, "posts", name="author", type="M2O", target="users", alias="posts", onDelete="CASCADE"
    )
    await relate(api, "posts", name="editor", type="M2O", target="users", alias="edited")
    await relate(api, "posts", name="tags", type="M2M", target="tags", alias="posts")
    await relate(api, "reviews", name="post", type="M2O", target="posts", onDelete="RESTRICT")
    token, ann = await api.user("ann@example.com")
    _, bob = await api.user("bob@example.com")
    for action in ("create", "update", "read"):
        await api.allow("user", "posts", action, fields=["*"])
    await api.allow("user", "users", "read", conditions={"id": {"eq": "$CURRENT_USER"}})
    await api.allow("user", "tags", "read", conditions={"label": {"ne": "secret"}})
    tags = {}
    for label in ("red", "blue", "secret"):
        created = await api.ok("POST", "/items/tags", 201, headers=api.admin, json={"label": label})
        tags[label] = created["data"]["id"]
    return {"ann": ann, "bob": bob, "ann_headers": bearer(token), "tags": tags}


async def links(api: Api, post: str) -> list[str]:
    rows = await api.ok(
        "GET",
        "/items/posts_tags_junction",
        headers=api.admin,
        params={"filter": f'{{"posts_id": {{"eq": "{post}"}}}}', "limit": -1},
    )
    return sorted(row["tags_id"] for row in rows["data"])


async def count(api: Api, collection: str) -> int:
    body = await api.ok("GET", f"/items/{collection}", headers=api.admin)
    return len(body["data"])


async def test_a_foreign_key_must_name_an_item_the_writer_may_read(api: Api) -> None:
    blog = await setup_blog(api)
    ann, bob, headers = blog["ann"], blog["bob"], blog["ann_headers"]
    post = await api.ok(
        "POST", "/items/posts", 201, headers=headers, json={"title": "mine", "author_Id": ann["id"]}
    )
    assert post["data"]["author_Id"] == ann["id"]
    # bob exists but ann may not read him: the same 422 as for a missing user.
    answers = []
    for author in (bob["id"], MISSING):
        refused = await api.client.post(
            "/items/posts", headers=headers, json={"title": "x", "author_Id": author}
        )
        answers.append((refused.status_code, refused.json()["error"]))
        updated = await api.client.patch(
            f"/items/posts/{post['data']['id']}", headers=headers, json={"author_Id": author}
        )
        answers.append((updated.status_code, updated.json()["error"]))
    assert answers[0][0] == 422 and answers[0][1]["code"] == "RELATED_ITEM_NOT_FOUND"
    assert all(answer == answers[0] for answer in answers)
    # Bulk writes likewise, naming the element; nothing of the request is written.
    bulk = await api.client.post(
        "/items/posts/bulk",
        headers=headers,
        json=[{"title": "ok", "author_Id": ann["id"]}, {"title": "no", "author_Id": MISSING}],
    )
    assert bulk.status_code == 422, bulk.text
    assert bulk.json()["error"]["message"].startswith("item 1:")
    assert await count(api, "posts") == 1
    # The administrator reads everything; null is no reference at all.
    await api.ok(
        "POST",
        "/items/posts",
        201,
        headers=api.admin,
        json={"title": "bob's", "author_Id": bob["id"], "editor_Id": None},
    )
    bulk_ok = await api.ok(
        "PATCH",
        "/items/posts/bulk",
        headers=headers,
        json=[{"id": post["data"]["id"], "editor_Id": ann["id"]}],
    )
    assert bulk_ok["data"][0]["editor_Id"] == ann["id"]


async def test_m2m_names_replace_the_links(api: Api) -> None:
    blog = await setup_blog(api)
    headers, tags = blog["ann_headers"], blog["tags"]
    red, blue, secret = tags["red"], tags["blue"], tags["secret"]
    post = await api.ok(
        "POST", "/items/posts", 201, headers=headers, json={"title": "p", "tags": [red, blue, red]}
    )
    key = post["data"]["id"]
    assert "tags" not in post["data"]  # the answer is the item's own fields
    assert await links(api, key) == sorted([red, blue])
    await api.ok("PATCH", f"/items/posts/{key}", headers=headers, json={"tags": [blue]})
    assert await links(api, key) == [blue]
    for bad, status in (
        ([secret], 422),  # unreadable, answered as missing
        ([MISSING], 422),
        ([blue, "not-a-uuid"], 422),
        ([None], 422),
        ("red", 400),
        ([MISSING] * (MAX_LINKS + 1), 400),
    ):
        refused = await api.client.patch(
            f"/items/posts/{key}", headers=headers, json={"title": "changed", "tags": bad}
        )
        assert refused.status_code == status, (bad, refused.text)
    assert await links(api, key) == [blue]
    assert (await api.ok("GET", f"/items/posts/{key}", headers=headers))["data"]["title"] == "p"
    # The other side writes the same links; an O2M alias is not written.
    await api.ok("PATCH", f"/items/tags/{red}", headers=api.admin, json={"posts": [key]})
    assert await links(api, key) == sorted([red, blue])
    refused = await api.client.patch(
        f"/items/users/{blog['ann']['id']}", headers=api.admin, json={"posts": [key]}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "RELATION_NOT_WRITABLE")
    await api.ok("PATCH", f"/items/posts/{key}", headers=headers, json={"tags": []})
    assert await links(api, key) == []
    # Bulk creates link each item.
    created = await api.ok(
        "POST",
        "/items/posts/bulk",
        201,
        headers=headers,
        json=[{"title": "a", "tags": [red]}, {"title": "b", "tags": [blue]}],
    )
    assert [await links(api, p["id"]) for p in created["data"]] == [[red], [blue]]


async def test_a_relation_name_is_a_field_of_the_permission_lists(api: Api) -> None:
    blog = await setup_blog(api)
    token, carol = await api.user("carol@example.com")
    await api.ok("POST", "/roles", 201, headers=api.admin, json={"name": "writer"})
    await api.allow("writer", "posts", "create", fields=["title", "tags"])
    await api.allow("writer", "tags", "read")
    await api.ok("PATCH", f"/items/users/{carol['id']}", headers=api.admin, json={"role": "writer"})
    headers = bearer(token)
    red = blog["tags"]["red"]
    await api.ok("POST", "/items/posts", 201, headers=headers, json={"title": "c", "tags": [red]})
    refused = await api.client.post(
        "/items/posts", headers=headers, json={"title": "c", "author_Id": carol["id"]}
    )
    assert refused.status_code == 403
    await api.allow("writer", "posts", "update", fields=["title"])
    post = (await api.ok("GET", "/items/posts", headers=api.admin))["data"][0]
    refused = await api.client.patch(
        f"/items/posts/{post['id']}", headers=headers, json={"tags": []}
    )
    assert refused.status_code in (403, 404)
    unknown = await api.client.post(
        "/permissions",
        headers=api.admin,
        json={"role": "writer", "collection": "posts", "action": "read", "fields": ["nope"]},
    )
    assert unknown.status_code == 400


async def test_on_delete_restrict_cascade_and_set_null(api: Api) -> None:
    blog = await setup_blog(api)
    ann = blog["ann"]
    post = await api.ok(
        "POST",
        "/items/posts",
        201,
        headers=api.admin,
        json={"title": "p", "author_Id": ann["id"], "tags": [blog["tags"]["red"]]},
    )
    edited = await api.ok(
        "POST", "/items/posts", 201, headers=api.admin, json={"title": "e", "editor_Id": ann["id"]}
    )
    review = await api.ok(
        "POST",
        "/items/reviews",
        201,
        headers=api.admin,
        json={"stars": 5, "post_Id": post["data"]["id"]},
    )
    events = len(api.events)
    restricted = await api.client.delete(f"/items/posts/{post['data']['id']}", headers=api.admin)
    assert (restricted.status_code, restricted.json()["error"]["code"]) == (
        409,
        "RELATION_RESTRICTED",
    )
    assert await count(api, "posts") == 2 and await links(api, post["data"]["id"]) != []
    assert [e for e in api.events[events:] if getattr(e, "collection", "") != "schemas"] == []
    await api.ok("DELETE", f"/items/reviews/{review['data']['id']}", headers=api.admin)
    junction = await api.ok("GET", "/items/posts_tags_junction", headers=api.admin)
    (link,) = [row["id"] for row in junction["data"]]
    # Deleting ann: her post goes (CASCADE, and its links with it), the edited one keeps
    # going with editor_Id null (SET NULL); every changed row is one event.
    events = len(api.events)
    await api.ok("DELETE", f"/items/users/{ann['id']}", headers=api.admin)
    await api.ok("GET", "/items/posts", headers=api.admin)
    changes = sorted(
        (e.collection, e.action, str(e.key))
        for e in api.events[events:]
        if getattr(e, "collection", "") in ("users", "posts", "posts_tags_junction")
    )
    assert changes == sorted(
        [
            ("users", "delete", ann["id"]),
            ("posts", "delete", post["data"]["id"]),
            ("posts", "update", edited["data"]["id"]),
            ("posts_tags_junction", "delete", link),
        ]
    )
    after = await api.ok("GET", f"/items/posts/{edited['data']['id']}", headers=api.admin)
    assert after["data"]["editor_Id"] is None


@pytest.mark.parametrize("settings_overrides", [{"SQLITE_LOOP_WRITES": True}], ids=["loop"])
async def test_the_lone_create_path_checks_keys_too(api: Api) -> None:
    await api.collection("posts", {"title": {"type": "String"}})
    await relate(api, "posts", name="author", type="M2O", target="users")
    refused = await api.client.post(
        "/items/posts", headers=api.admin, json={"title": "x", "author_Id": MISSING}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        422,
        "RELATED_ITEM_NOT_FOUND",
    )
    assert services_of(api.app).db is not None


async def test_links_alone_and_schema_changes_around_relations(api: Api) -> None:
    """A body with only links (no timestamps: nothing else to update); PATCH /schemas
    adding and dropping plain fields of a collection with relations keeps them working."""
    await api.collection(
        "posts", {"title": {"type": "String"}, "old": {"type": "String"}}, timestamps=False
    )
    await api.collection("tags", {"label": {"type": "String"}})
    await relate(api, "posts", name="tags", type="M2M", target="tags")
    await relate(api, "posts", name="author", type="M2O", target="users", onDelete="CASCADE")
    tag = await api.ok("POST", "/items/tags", 201, headers=api.admin, json={"label": "x"})
    post = await api.ok("POST", "/items/posts", 201, headers=api.admin, json={"title": "p"})
    key = post["data"]["id"]
    again = await api.ok(
        "PATCH", f"/items/posts/{key}", headers=api.admin, json={"tags": [tag["data"]["id"]]}
    )
    assert again["data"]["title"] == "p"
    assert await links(api, key) == [tag["data"]["id"]]
    await api.ok(
        "PATCH",
        "/schemas/posts",
        headers=api.admin,
        json={"fields": {"old": None, "body": {"type": "Text"}}},
    )
    _, user = await api.user("ann@example.com")
    await api.ok(
        "PATCH",
        f"/items/posts/{key}",
        headers=api.admin,
        json={"body": "b", "author_Id": user["id"]},
    )
    refused = await api.client.patch(
        f"/items/posts/{key}", headers=api.admin, json={"author_Id": MISSING}
    )
    assert refused.status_code == 422
    await api.ok("DELETE", f"/items/users/{user['id']}", headers=api.admin)
    assert (await api.ok("GET", "/items/posts", headers=api.admin))["data"] == []
    assert await links(api, key) == []
