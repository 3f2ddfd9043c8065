"""A lone UTF-16 surrogate escape in any JSON body is a clear 400 and changes nothing.

Python's ``json`` decodes ``"\\ud800"`` into a string UTF-8 cannot encode;
before the guard it reached the database driver and answered 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from livebase.services.events import ChangeEvent
from tests.api.test_nesting import ROUTES
from tests.helpers import Api

LONE = {
    "high": rb'{"title": "\ud800"}',
    "low": rb'{"title": "\udc00x"}',
    "high then text": rb'{"title": "\ud83dx"}',
    "high then high": rb'{"title": "\ud83d\ud83d"}',
    "in a JSON field": rb'{"extra": {"k": ["\uDBFF"]}}',
    "in a key": rb'{"\ud800": 1}',
    "in an array": rb'[{"title": "a\ud800"}]',
}


async def _posts(api: Api) -> dict[str, Any]:
    await api.collection("posts", {"title": {"type": "String"}, "extra": {"type": "JSON"}})
    seed = await api.ok("POST", "/items/posts", 201, headers=api.admin, json={"title": "seed"})
    api.events.clear()
    return dict(seed["data"])


@pytest.mark.parametrize("body", LONE.values(), ids=LONE.keys())
async def test_a_lone_surrogate_is_400_on_every_json_route(api: Api, body: bytes) -> None:
    seed = await _posts(api)
    headers = {**api.admin, "Content-Type": "application/json"}
    for method, path in ROUTES:
        response = await api.client.request(method, path, headers=headers, content=body)
        assert response.status_code == 400, (method, path, response.text[:300])
        assert response.json()["error"]["code"] == "INVALID_UNICODE"
    after = await api.ok("GET", "/items/posts", headers=api.admin)
    assert after["data"] == [seed]
    assert not [e for e in api.events if isinstance(e, ChangeEvent)]


async def test_paired_surrogates_and_escaped_backslashes_are_ordinary_text(api: Api) -> None:
    await _posts(api)
    headers = {**api.admin, "Content-Type": "application/json"}
    for body, title in (
        (rb'{"title": "\ud83d\ude00"}', "\U0001f600"),
        (rb'{"title": "\\ud800"}', "\\ud800"),  # a backslash, then the text "ud800"
        (rb'{"title": "\\\ud83d\ude00"}', "\\\U0001f600"),
    ):
        response = await api.client.post("/items/posts", headers=headers, content=body)
        assert response.status_code == 201, response.text[:300]
        assert response.json()["data"]["title"] == title
