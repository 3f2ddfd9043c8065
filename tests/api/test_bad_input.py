"""Hostile requests: each gets a 4xx with {error: {message, code}}, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from livebase.services.events import ChangeEvent
from tests.helpers import Api

ID = "00000000-0000-4000-8000-000000000000"
BIG = b'{"title": "' + b"x" * (10 * 1024 * 1024) + b'"}'

# (method, path, keyword arguments for httpx, expected status; None = any 4xx)
CASES: list[tuple[str, str, dict[str, Any], int | None]] = [
    ("POST", "/items/posts", {"content": b"{not json"}, 400),
    ("POST", "/items/posts", {"content": b""}, 400),
    ("POST", "/items/posts", {"json": [1, 2]}, 400),
    ("POST", "/items/posts", {"json": "string"}, 400),
    ("POST", "/items/posts", {"json": {"title": 5}}, 422),
    ("POST", "/items/posts", {"json": {"title": {"nested": True}}}, 422),
    ("POST", "/items/posts", {"content": b'{"title": "x", "views": Infinity}'}, 422),
    ("POST", "/items/posts", {"content": b'{"title": "x", "views": NaN}'}, 422),
    ("POST", "/items/posts", {"json": {"title": "x", "views": 2**70}}, 422),
    ("POST", "/items/posts", {"json": {"title": "x", "views": True}}, 422),
    ("POST", "/items/posts", {"json": {"title": "a\u0000b"}}, 422),
    ("POST", "/items/posts", {"json": {"title'; DROP TABLE posts;--": "x"}}, 400),
    ("POST", "/items/posts", {"json": {"tïtle": "x"}}, 400),
    ("POST", "/items/posts", {"json": {"id": "not-a-uuid", "title": "x"}}, 422),
    ("POST", "/items/posts", {"content": BIG}, 413),
    ("POST", "/items/posts/bulk", {"json": []}, 400),
    ("POST", "/items/posts/bulk", {"json": {"title": "x"}}, 400),
    ("POST", "/items/posts/bulk", {"json": [{"title": "x"}] * 1001}, 400),
    ("PATCH", "/items/posts/bulk", {"json": [ID]}, 400),
    ("DELETE", "/items/posts/bulk", {"json": [[ID]]}, 400),
    ("DELETE", "/items/posts/bulk", {"json": [ID, ID]}, 400),
    ("PATCH", f"/items/posts/{ID}", {"json": {"title": "x"}}, 404),
    ("PATCH", "/items/posts/not-a-uuid", {"json": {"title": "x"}}, 400),
    ("DELETE", "/items/posts/'; DROP TABLE posts;--", {}, 400),
    ("GET", "/items/posts/%00", {}, 400),
    ("GET", "/items/posts", {"params": {"filter": "{bad json"}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"title": {"regex": "x"}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"nope": {"eq": 1}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"views": {"gt": "many"}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"views": {"in": 5}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"views": {"between": [1]}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"OR": {"a": 1}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": "[1, 2]"}}, 400),
    (
        "GET",
        "/items/posts",
        {"params": {"filter": '{"title": {"eq": "x"; DROP TABLE posts}}'}},
        400,
    ),
    ("GET", "/items/posts", {"params": {"filter": '{"AND": [' * 50 + "]" * 50 + "}"}}, 400),
    ("GET", "/items/posts", {"params": {"fields": '["title", 5]'}}, 400),
    ("GET", "/items/posts", {"params": {"fields": 'title,"quoted"'}}, 400),
    ("GET", "/items/posts", {"params": {"sort": '{"title": "sideways"}'}}, 400),
    ("GET", "/items/posts", {"params": {"sort": "nope"}}, 400),
    ("GET", "/items/posts", {"params": {"limit": "-5"}}, 400),
    ("GET", "/items/posts", {"params": {"limit": "ten"}}, 400),
    ("GET", "/items/posts", {"params": {"page": "0"}}, 400),
    ("GET", "/items/posts", {"params": {"offset": "-1"}}, 400),
    ("GET", "/items/posts", {"params": {"search": "x" * 500}}, 400),
    ("GET", "/items/posts", {"params": {"search": "a\u0000b"}}, 400),
    *[
        ("GET", path, {"params": params}, 400)
        for path in ("/items/posts", "/files", "/notifications")
        for params in (
            {"limit": str(2**63)},
            {"limit": str(2**31)},
            {"offset": "99999999999999999999"},
            {"offset": str(2**63 - 1)},
            {"offset": "9" * 5000},
            {"page": str(2**62), "limit": "100"},
            {"page": str(2**31), "limit": "2"},
            {"page": str(2**63 - 1), "limit": str(2**31 - 1)},
        )
    ],
    # Relation paths (SPEC §14; with relations: tests/api/test_relation_reads.py).
    *[
        ("GET", path, {"params": params}, 400)
        for path in ("/items/posts", f"/items/posts/{ID}")
        for params in (
            {"fields": "nope.title"},
            {"fields": "title.x"},
            {"fields": "nope..title"},
            {"fields": "*.title"},
            {"fields": ".title"},
            {"fields": "a.b.c.d.e"},
            {"fields": "a." + "b" * 5000},
        )
    ],
    ("GET", "/items/posts", {"params": {"filter": '{"title.x": {"eq": 1}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"nope.title": {"eq": 1}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{"a.b.c.d.e": {"eq": 1}}'}}, 400),
    ("GET", "/items/posts", {"params": {"filter": '{".": {"eq": 1}}'}}, 400),
    ("GET", "/items/posts", {"params": {"sort": "title.x"}}, 400),
    ("GET", "/items/posts", {"params": {"sort": "-nope.title"}}, 400),
    ("GET", "/files", {"params": {"fields": "uploadedBy.email"}}, 400),
    ("GET", "/notifications", {"params": {"filter": '{"user.email": {"eq": "x"}}'}}, 400),
    ("GET", "/items/n'ope", {}, 404),
    ("GET", "/items/" + "a" * 5000, {}, 404),
    ("POST", "/schemas", {"json": {"collectionName": "a;b", "schema": {}}}, 400),
    ("POST", "/schemas", {"json": {"collectionName": "x" * 100, "schema": {}}}, 400),
    (
        "POST",
        "/schemas",
        {
            "json": {
                "collectionName": "ok",
                "schema": {"fields": {"f": {"type": "String", "length": -1}}},
            }
        },
        400,
    ),
    ("POST", "/roles", {"json": {"name": "bad role!"}}, 400),
    ("POST", "/roles", {"json": {"name": "editor\n"}}, 400),
    ("POST", "/roles", {"json": ["editor"]}, 400),
    ("POST", "/permissions", {"json": {"role": "user"}}, 400),
    ("GET", "/permissions/not-a-uuid", {}, 404),
    ("POST", "/auth/login", {"json": {"email": 5, "password": None}}, 400),
    ("POST", "/auth/login", {"json": {"email": "a@b.co"}}, 400),
    ("POST", "/auth/login", {"content": b"email=a&password=b"}, 400),
    ("POST", "/auth/register", {"json": {"email": "a@b.co", "password": "x" * 2000}}, 400),
    (
        "POST",
        "/auth/register",
        {"json": {"email": "a@b.co", "password": "password-1", "role": "administrator"}},
        400,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    CASES,
    ids=[f"{c[0]} {c[1][:40]} {i}" for i, c in enumerate(CASES)],
)
async def test_hostile_requests_get_a_clear_4xx_and_change_nothing(
    api: Api, method: str, path: str, kwargs: dict[str, Any], status: int | None
) -> None:
    await api.collection(
        "posts", {"title": {"type": "String", "allowNull": False}, "views": {"type": "Integer"}}
    )
    seed = await api.ok(
        "POST", "/items/posts", 201, headers=api.admin, json={"title": "seed", "views": 1}
    )
    api.events.clear()
    headers = {**api.admin, "Content-Type": "application/json"}
    response = await api.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert (
        set(error) == {"message", "code"} and error["message"] and "Traceback" not in response.text
    )
    after = await api.ok("GET", "/items/posts", headers=api.admin)
    assert after["data"] == [seed["data"]]
    assert not [e for e in api.events if isinstance(e, ChangeEvent)]
    assert (await api.ok("GET", "/schemas", headers=api.admin))["data"][0][
        "collectionName"
    ] == "posts"
