"""``POST /items/{c}``'s fast path answers exactly as the FastAPI route does.

Each request goes once through the app as served (with
``ItemCreateFastPath``) and once through the same app's middleware stack
built without it: same services, same database. Status, content type and
body must match (for a created item, everything but its id and
timestamps), and a refused request must create nothing on either side.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from livebase.api.fast_create import ItemCreateFastPath
from tests.helpers import Api, bearer

VOLATILE = {"id", "createdAt", "updatedAt"}


def without_fast_path(api: Api) -> httpx.AsyncClient:
    app: Any = api.app
    kept = app.user_middleware
    app.user_middleware = [m for m in kept if m.cls is not ItemCreateFastPath]
    try:
        stack = app.build_middleware_stack()
    finally:
        app.user_middleware = kept

    async def reference(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app  # as Starlette.__call__ does
        await stack(scope, receive, send)

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=reference), base_url="http://livebase.test"
    )


def comparable(response: httpx.Response) -> tuple[int, str | None, Any]:
    try:
        body = response.json()
    except ValueError:
        body = response.text

    def steady(item: Any) -> Any:
        return {k: v for k, v in item.items() if k not in VOLATILE}

    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = {"data": steady(body["data"])}
    elif isinstance(body, dict) and isinstance(body.get("data"), list):
        body = {"data": [steady(item) for item in body["data"]]}
    return response.status_code, response.headers.get("content-type"), body


@pytest.fixture
async def both(api: Api) -> Any:
    await api.collection(
        "posts", {"title": {"type": "String", "allowNull": False}, "n": {"type": "Integer"}}
    )
    async with without_fast_path(api) as reference:
        yield api, reference


async def count(api: Api) -> int:
    listed = await api.ok("GET", "/items/posts?limit=-1", headers=api.admin)
    return len(listed["data"])


JSON = {"content-type": "application/json"}

POSTS = "/items/posts"
ADMIN = {"auth": "admin"}


def ct(content_type: str) -> dict[str, str]:
    return {"content-type": content_type}


CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("an object, as the administrator", POSTS, ADMIN, b'{"title": "a", "n": 1}'),
    ("a charset", POSTS, ADMIN | ct("application/json; charset=utf-8"), b'{"title": "b"}'),
    ("a lower-case scheme", POSTS, {"auth": "admin-lower"}, b'{"title": "c"}'),
    ("a repeated key", POSTS, ADMIN, b'{"title": "x", "title": "d"}'),
    ("a query string", POSTS + "?fields=title", ADMIN, b'{"title": "e"}'),
    ("no token", POSTS, {}, b'{"title": "f"}'),
    ("a user without the right", POSTS, {"auth": "user"}, b'{"title": "g"}'),
    ("a forged token", POSTS, {"authorization": "Bearer not.a.token"}, b'{"title": "h"}'),
    ("another scheme", POSTS, {"authorization": "Basic YWRtaW46eA=="}, b'{"title": "i"}'),
    ("an empty bearer", POSTS, {"authorization": "Bearer "}, b'{"title": "j"}'),
    ("a scheme alone", POSTS, {"authorization": "Bearer"}, b'{"title": "k"}'),
    ("an unknown collection", "/items/nope", ADMIN, b'{"title": "l"}'),
    ("a system collection", "/items/users", ADMIN, b'{"email": "x"}'),
    ("an unknown field", POSTS, ADMIN, b'{"title": "m", "colour": 1}'),
    ("a wrong type", POSTS, ADMIN, b'{"title": "n", "n": "many"}'),
    ("a missing required field", POSTS, ADMIN, b'{"n": 2}'),
    ("an id of its own", POSTS, ADMIN, b'{"title": "o", "id": 5}'),
    ("an array", POSTS, ADMIN, b'[{"title": "p"}]'),
    ("a string", POSTS, ADMIN, b'"q"'),
    ("null", POSTS, ADMIN, b"null"),
    ("broken JSON", POSTS, ADMIN, b'{"title": '),
    ("an empty body", POSTS, ADMIN, b""),
    ("NaN", POSTS, ADMIN, b'{"title": "r", "n": NaN}'),
    ("a huge integer", POSTS, ADMIN, b'{"title": "s", "n": 1' + b"0" * 40 + b"}"),
    ("invalid UTF-8", POSTS, ADMIN, b'{"title": "\xff"}'),
    ("plain text", POSTS, ADMIN | ct("text/plain"), b'{"title": "t"}'),
    ("no content type", POSTS, ADMIN | ct(""), b'{"title": "u"}'),
    ("a +json type", POSTS, ADMIN | ct("application/merge-patch+json"), b'{"title": "v"}'),
    ("a trailing slash", POSTS + "/", ADMIN, b'{"title": "w"}'),
    ("the bulk route", POSTS + "/bulk", ADMIN, b'[{"title": "y"}]'),
]  # fmt: skip


@pytest.mark.parametrize(("case", "path", "options", "body"), CASES, ids=[c[0] for c in CASES])
async def test_the_fast_path_answers_as_fastapi_does(
    both: Any, case: str, path: str, options: dict[str, str], body: bytes
) -> None:
    api, reference = both
    token, _ = await api.user("ann@example.com") if options.get("auth") == "user" else (None, None)
    headers = {**JSON}
    if "content-type" in options:
        headers["content-type"] = options["content-type"]
        if not options["content-type"]:
            del headers["content-type"]
    if options.get("auth") == "admin":
        headers |= api.admin
    elif options.get("auth") == "admin-lower":
        headers["authorization"] = "bearer " + api.admin_token
    elif options.get("auth") == "user":
        headers |= bearer(token)
    elif "authorization" in options:
        headers["authorization"] = options["authorization"]

    before = await count(api)
    fast = await api.client.post(path, content=body, headers=headers)
    after_fast = await count(api)
    slow = await reference.post(path, content=body, headers=headers)
    after_slow = await count(api)

    assert comparable(fast) == comparable(slow), case
    assert after_fast - before == after_slow - after_fast, case  # both created, or neither
    assert fast.status_code < 500, fast.text


async def test_a_body_over_the_limit_is_refused_before_the_fast_path(api: Api) -> None:
    limit = api.app.state.services.settings.MAX_REQUEST_BODY_SIZE
    response = await api.client.post(
        "/items/posts",
        content=b'{"title": "' + b"x" * limit + b'"}',
        headers={**JSON, **api.admin},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
