"""The items routes: list with filter/fields/sort/limit/page/offset/search, CRUD, bulk."""

from __future__ import annotations

import json

import pytest

from livebase.services.events import ChangeEvent
from tests.helpers import Api

POSTS = {
    "title": {"type": "String", "allowNull": False},
    "views": {"type": "Integer"},
    "tag": {"type": "String"},
}


@pytest.fixture
async def posts(api: Api) -> Api:
    await api.collection("posts", POSTS)
    rows = [
        {"title": "Hello world", "views": 10, "tag": "news"},
        {"title": "Second post", "views": 5, "tag": "news"},
        {"title": "Cooking tips", "views": 50, "tag": "food"},
        {"title": "hello again", "views": None, "tag": None},
    ]
    await api.ok("POST", "/items/posts/bulk", 201, headers=api.admin, json=rows)
    return api


def q(**params: object) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


async def titles(api: Api, **params: object) -> list[str]:
    body = await api.ok("GET", "/items/posts", headers=api.admin, params=q(**params))
    return [item["title"] for item in body["data"]]


async def test_filter_sort_limit_page_offset(posts: Api) -> None:
    api = posts
    assert await titles(api, filter={"tag": {"eq": "news"}}, sort=["title"]) == [
        "Hello world",
        "Second post",
    ]
    assert await titles(api, filter={"views": {"gte": 10}}, sort={"views": "desc"}) == [
        "Cooking tips",
        "Hello world",
    ]
    assert await titles(
        api, filter={"OR": [{"views": {"lt": 6}}, {"tag": {"isNull": True}}]}, sort="-title"
    ) == [
        "hello again",
        "Second post",
    ]
    assert await titles(api, filter={"title": {"startsWith": "HELLO"}}, sort=["title"]) == [
        "Hello world",
        "hello again",
    ]
    # NULLs sort as the largest value on both databases (PostgreSQL's default).
    assert await titles(api, sort=["views"]) == [
        "Second post",
        "Hello world",
        "Cooking tips",
        "hello again",
    ]
    assert await titles(api, sort=["-views"], limit="2") == ["hello again", "Cooking tips"]
    ordered = await titles(api, sort=["title"])
    assert await titles(api, sort=["title"], limit="2", page="2") == ordered[2:4]
    assert await titles(api, sort=["title"], limit="1", offset="1") == ordered[1:2]
    assert len(await titles(api, limit="-1")) == 4


async def test_total_count_counts_all_matches(posts: Api) -> None:
    body = await posts.ok(
        "GET", "/items/posts", headers=posts.admin, params=q(limit="1", filter={"tag": "news"})
    )
    assert len(body["data"]) == 1 and body["totalCount"] == 2


async def test_fields_selection(posts: Api) -> None:
    body = await posts.ok(
        "GET", "/items/posts", headers=posts.admin, params={"fields": "title,views", "limit": "1"}
    )
    assert set(body["data"][0]) == {"id", "title", "views"}
    body = await posts.ok(
        "GET", "/items/posts", headers=posts.admin, params=q(fields=["tag"], limit="1")
    )
    assert set(body["data"][0]) == {"id", "tag"}


async def test_search_is_case_insensitive_over_text_fields(posts: Api) -> None:
    assert sorted(await titles(posts, search="hello")) == ["Hello world", "hello again"]
    assert await titles(posts, search="FOOD") == ["Cooking tips"]
    assert await titles(posts, search="%") == []


async def test_crud_round_trip_and_events(posts: Api) -> None:
    api = posts
    api.events.clear()
    created = (await api.ok("POST", "/items/posts", 201, headers=api.admin, json={"title": "New"}))[
        "data"
    ]
    updated = await api.ok(
        "PATCH", f"/items/posts/{created['id']}", headers=api.admin, json={"views": 3}
    )
    assert updated["data"]["views"] == 3 and updated["data"]["title"] == "New"
    assert updated["data"]["updatedAt"] >= created["updatedAt"]
    deleted = await api.ok("DELETE", f"/items/posts/{created['id']}", headers=api.admin)
    assert deleted == {"data": {"id": created["id"]}}
    missing = await api.client.get(f"/items/posts/{created['id']}", headers=api.admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ITEM_NOT_FOUND"
    changes = [e for e in api.events if isinstance(e, ChangeEvent) and e.collection == "posts"]
    assert [(e.action, e.key) for e in changes] == [
        ("create", created["id"]),
        ("update", created["id"]),
        ("delete", created["id"]),
    ]
    assert changes[1].previous is not None and changes[1].previous["views"] is None
    assert changes[1].item["views"] == 3
    assert changes[2].item["views"] == 3  # the last state
    assert all(e.user_id is not None for e in changes)


async def test_bulk_update_and_delete(posts: Api) -> None:
    api = posts
    listed = (await api.ok("GET", "/items/posts", headers=api.admin, params={"sort": "title"}))[
        "data"
    ]
    ids = [item["id"] for item in listed]
    patched = await api.ok(
        "PATCH",
        "/items/posts/bulk",
        headers=api.admin,
        json=[{"id": ids[0], "views": 1}, {"id": ids[1], "views": 2}],
    )
    assert [item["views"] for item in patched["data"]] == [1, 2]
    removed = await api.ok("DELETE", "/items/posts/bulk", headers=api.admin, json=ids[:2])
    assert removed["data"] == ids[:2]
    assert (await api.ok("GET", "/items/posts", headers=api.admin))["totalCount"] == 2


@pytest.mark.parametrize(
    ("method", "body", "status", "index"),
    [
        ("POST", [{"title": "ok"}, {"title": "ok2"}, {"views": 1}], 422, 2),
        ("POST", [{"title": "ok"}, "not an object"], 400, 1),
        (
            "PATCH",
            [
                {"id": "$first", "views": 9},
                {"id": "00000000-0000-4000-8000-000000000000", "views": 1},
            ],
            404,
            1,
        ),
        ("PATCH", [{"id": "$first", "views": 9}, {"views": 1}], 400, 1),
        ("DELETE", ["$first", "not-a-uuid"], 400, 1),
        ("DELETE", ["$first", "00000000-0000-4000-8000-000000000000"], 404, 1),
    ],
)
async def test_bulk_is_all_or_nothing(
    posts: Api, method: str, body: list, status: int, index: int
) -> None:
    api = posts
    before = (await api.ok("GET", "/items/posts", headers=api.admin, params={"sort": "title"}))[
        "data"
    ]
    first = before[0]["id"]
    body = [
        {**e, "id": first}
        if isinstance(e, dict) and e.get("id") == "$first"
        else first
        if e == "$first"
        else e
        for e in body
    ]
    api.events.clear()
    response = await api.client.request(method, "/items/posts/bulk", headers=api.admin, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"].startswith(f"item {index}:")
    after = (await api.ok("GET", "/items/posts", headers=api.admin, params={"sort": "title"}))[
        "data"
    ]
    assert after == before
    assert not [e for e in api.events if isinstance(e, ChangeEvent)]


async def test_bulk_create_emits_one_event_per_item_after_commit(posts: Api) -> None:
    api = posts
    api.events.clear()
    created = await api.ok(
        "POST", "/items/posts/bulk", 201, headers=api.admin, json=[{"title": "a"}, {"title": "b"}]
    )
    changes = [e for e in api.events if isinstance(e, ChangeEvent)]
    assert [e.key for e in changes] == [item["id"] for item in created["data"]]
    assert all(e.action == "create" for e in changes)


async def test_unknown_collection_is_404(api: Api) -> None:
    response = await api.client.get("/items/nothing", headers=api.admin)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "COLLECTION_NOT_FOUND"


async def test_system_collections_are_read_only_through_items(api: Api) -> None:
    assert (await api.client.get("/items/roles", headers=api.admin)).status_code == 200
    response = await api.client.post("/items/roles", headers=api.admin, json={"name": "x"})
    assert response.status_code == 403
    assert (await api.client.get("/items/sessions", headers=api.admin)).status_code == 404


async def test_admin_manages_users_through_items(api: Api) -> None:
    _, user = await api.user("mia@example.com")
    await api.ok("POST", "/roles", 201, headers=api.admin, json={"name": "editor"})
    changed = await api.ok(
        "PATCH", f"/items/users/{user['id']}", headers=api.admin, json={"role": "editor"}
    )
    assert changed["data"]["role"] == "editor"
    unknown_role = await api.client.patch(
        f"/items/users/{user['id']}", headers=api.admin, json={"role": "ghost"}
    )
    assert unknown_role.status_code == 400
    bad_status = await api.client.patch(
        f"/items/users/{user['id']}", headers=api.admin, json={"status": "gone"}
    )
    assert bad_status.status_code == 400


async def test_the_last_administrator_cannot_be_removed(api: Api) -> None:
    admins = await api.ok(
        "GET", "/items/users", headers=api.admin, params=q(filter={"role": "administrator"})
    )
    admin_id = admins["data"][0]["id"]
    for method, body in (
        ("PATCH", {"role": "user"}),
        ("PATCH", {"status": "suspended"}),
        ("DELETE", None),
    ):
        response = await api.client.request(
            method, f"/items/users/{admin_id}", headers=api.admin, json=body
        )
        assert response.status_code == 409, response.text
