"""Deeply nested JSON, in any body or query parameter, is a clear 400 and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from livebase.services.events import ChangeEvent
from livebase.services.nesting import MAX_JSON_DEPTH
from tests.helpers import Api

ID = "00000000-0000-4000-8000-000000000000"


def _nested(depth: int) -> str:
    """Valid JSON ``depth`` levels deep: ``{"a": [{"a": [...]}]}``."""
    levels = ["object" if level % 2 == 0 else "array" for level in range(depth)]
    opening = "".join('{"a": ' if kind == "object" else "[" for kind in levels)
    closing = "".join("}" if kind == "object" else "]" for kind in reversed(levels))
    return opening + "1" + closing


BODIES = {
    "arrays": "[" * 100_000,
    "objects": '{"a":' * 100_000,
    "valid, 1000 deep": _nested(1000),
    "valid, one too deep": _nested(MAX_JSON_DEPTH + 1),
}
ROUTES = [
    ("POST", "/items/posts"),
    ("POST", "/items/anything"),
    ("PATCH", f"/items/posts/{ID}"),
    ("POST", "/items/posts/bulk"),
    ("PATCH", "/items/posts/bulk"),
    ("DELETE", "/items/posts/bulk"),
    ("POST", "/schemas"),
    ("PATCH", "/schemas/posts"),
    ("POST", "/permissions"),
    ("POST", "/roles"),
    ("POST", "/notifications/send"),
    ("POST", "/notifications/mark-seen"),
    ("PATCH", f"/files/{ID}"),
    ("POST", "/auth/login"),
]


async def _posts(api: Api) -> dict[str, Any]:
    await api.collection("posts", {"title": {"type": "String"}, "extra": {"type": "JSON"}})
    seed = await api.ok("POST", "/items/posts", 201, headers=api.admin, json={"title": "seed"})
    api.events.clear()
    return dict(seed["data"])


async def _unchanged(api: Api, seed: dict[str, Any]) -> None:
    after = await api.ok("GET", "/items/posts", headers=api.admin)
    assert after["data"] == [seed]
    assert not [e for e in api.events if isinstance(e, ChangeEvent)]


def _refused(response: Any, what: str) -> None:
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error == {
        "message": f"{what} is nested more than {MAX_JSON_DEPTH} levels deep",
        "code": "JSON_TOO_DEEP",
    }


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize("token", [True, False], ids=["administrator", "no token"])
async def test_a_deep_body_is_400_on_every_json_route(api: Api, body: str, token: bool) -> None:
    seed = await _posts(api)
    headers = {**(api.admin if token else {}), "Content-Type": "application/json"}
    for method, path in ROUTES:
        response = await api.client.request(method, path, headers=headers, content=body)
        _refused(response, "request body")
    await _unchanged(api, seed)


async def test_a_body_at_the_depth_limit_still_passes(api: Api) -> None:
    await _posts(api)
    # The item itself is one level, so its JSON field may hold one level less.
    extra = json.loads(_nested(MAX_JSON_DEPTH - 1))
    created = await api.ok(
        "POST", "/items/posts", 201, headers=api.admin, json={"title": "deep", "extra": extra}
    )
    assert created["data"]["extra"] == extra


@pytest.mark.parametrize("name", ["filter", "sort", "fields"])
@pytest.mark.parametrize("path", ["/items/posts", "/files", "/notifications"])
async def test_a_deep_query_parameter_is_400(api: Api, name: str, path: str) -> None:
    await _posts(api)
    for value in ("[" * 10_000, _nested(MAX_JSON_DEPTH + 1)):
        response = await api.client.get(path, headers=api.admin, params={name: value})
        _refused(response, name)
