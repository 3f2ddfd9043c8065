"""Notifications: send, list own, unread count, mark seen, delete own."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from livebase.services.notifications import MAX_MARK_SEEN
from tests.helpers import Api, bearer

NIL = "00000000-0000-4000-8000-000000000000"


async def _send(api: Api, user_ids: list[str], title: str = "Hello", **extra: Any) -> list[dict]:
    body = {"type": "info", "title": title, "message": "m", "userIds": user_ids, **extra}
    sent = await api.ok("POST", "/notifications/send", 201, headers=api.admin, json=body)
    return list(sent["data"])


async def test_send_list_count_mark_seen_delete(api: Api) -> None:
    ann_token, ann = await api.user("ann@example.com")
    _, bob = await api.user("bob@example.com")
    await _send(api, [ann["id"], bob["id"]], "first", data={"link": "/posts/1"})
    await _send(api, [ann["id"]], "second")
    headers = bearer(ann_token)

    listed = await api.ok("GET", "/notifications", headers=headers)
    assert [n["title"] for n in listed["data"]] == ["second", "first"]
    assert listed["totalCount"] == 2 and listed["data"][1]["data"] == {"link": "/posts/1"}
    assert {n["userId"] for n in listed["data"]} == {ann["id"]}
    page = await api.ok(
        "GET", "/notifications", headers=headers, params={"limit": "1", "page": "2"}
    )
    assert [n["title"] for n in page["data"]] == ["first"]
    filtered = await api.ok(
        "GET", "/notifications", headers=headers, params={"filter": json.dumps({"title": "first"})}
    )
    assert [n["title"] for n in filtered["data"]] == ["first"]
    assert (await api.ok("GET", "/notifications/unread/count", headers=headers))["data"] == {
        "count": 2
    }

    first = filtered["data"][0]["id"]
    marked = await api.ok(
        "POST", "/notifications/mark-seen", headers=headers, json={"notificationIds": [first]}
    )
    assert marked["data"] == {"count": 1, "ids": [first]}
    assert (await api.ok("GET", "/notifications/unread/count", headers=headers))["data"] == {
        "count": 1
    }
    rest = await api.ok("POST", "/notifications/mark-seen", headers=headers)
    assert rest["data"]["count"] == 1
    assert (await api.ok("GET", "/notifications/unread/count", headers=headers))["data"] == {
        "count": 0
    }

    await api.ok("DELETE", f"/notifications/{first}", headers=headers)
    assert (await api.ok("GET", "/notifications", headers=headers))["totalCount"] == 1


async def test_another_users_notification_is_404_and_untouched(api: Api) -> None:
    ann_token, _ = await api.user("ann@example.com")
    bob_token, bob = await api.user("bob@example.com")
    (bobs,) = await _send(api, [bob["id"]])
    headers = bearer(ann_token)
    for method, url, body in (
        ("POST", "/notifications/mark-seen", {"notificationIds": [bobs["id"]]}),
        ("DELETE", f"/notifications/{bobs['id']}", None),
        ("DELETE", "/notifications/not-a-uuid", None),
    ):
        response = await api.client.request(method, url, headers=headers, json=body)
        assert response.status_code == 404, (method, url, response.text)
    mine = await api.ok("GET", "/notifications", headers=bearer(bob_token))
    assert mine["data"][0]["seen"] is False and mine["totalCount"] == 1


async def test_unknown_users_are_named_and_nothing_is_sent(api: Api) -> None:
    token, user = await api.user("ann@example.com")
    response = await api.client.post(
        "/notifications/send",
        headers=api.admin,
        json={"type": "x", "title": "t", "message": "m", "userIds": [user["id"], NIL]},
    )
    assert response.status_code == 400
    assert NIL in response.json()["error"]["message"]
    assert (await api.ok("GET", "/notifications", headers=bearer(token)))["totalCount"] == 0


async def test_sending_needs_administrator_or_create_permission(api: Api) -> None:
    token, user = await api.user("ann@example.com")
    body = {"type": "x", "title": "t", "message": "m", "userIds": [user["id"]]}
    assert (
        await api.client.post("/notifications/send", headers=bearer(token), json=body)
    ).status_code == 403
    assert (await api.client.post("/notifications/send", json=body)).status_code == 403
    await api.allow("user", "notifications", "create")
    await api.ok("POST", "/notifications/send", 201, headers=bearer(token), json=body)


@pytest.mark.parametrize(
    "body",
    [
        {"title": "t", "userIds": []},
        {"title": "t", "userIds": "everyone"},
        {"title": "t", "userIds": [5]},
        {"title": "t", "userIds": ["not-a-uuid"]},
        {"title": 5, "userIds": [NIL]},
        {"userIds": [NIL]},
        {"title": "t", "message": "x" * 20_000, "userIds": [NIL]},
        {"title": "t", "userIds": [NIL], "priority": "high"},
    ],
)
async def test_bad_send_bodies_are_4xx(api: Api, body: dict) -> None:
    response = await api.client.post("/notifications/send", headers=api.admin, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()["error"]) == {"message", "code"}


async def test_anonymous_has_no_notifications(api: Api) -> None:
    assert (await api.client.get("/notifications")).status_code == 401
    assert (await api.client.post("/notifications/mark-seen")).status_code == 401


async def test_mark_seen_caps_its_ids_and_its_error(api: Api) -> None:
    token, user = await api.user("ann@example.com")
    (sent,) = await _send(api, [user["id"]])
    unknown = [str(uuid.uuid4()) for _ in range(MAX_MARK_SEEN)]
    headers = bearer(token)

    too_many = await api.client.post(
        "/notifications/mark-seen",
        headers=headers,
        json={"notificationIds": [sent["id"], *unknown]},
    )
    assert too_many.status_code == 400, too_many.text[:300]
    assert f"at most {MAX_MARK_SEEN}" in too_many.json()["error"]["message"]

    missing = await api.client.post(
        "/notifications/mark-seen", headers=headers, json={"notificationIds": unknown}
    )
    assert missing.status_code == 404
    message = missing.json()["error"]["message"]
    assert sum(key in message for key in unknown) == 10
    assert message.endswith(f"and {MAX_MARK_SEEN - 10} more") and len(missing.content) < 1000
    assert (await api.ok("GET", "/notifications/unread/count", headers=headers))["data"] == {
        "count": 1
    }


async def test_notification_lists_check_their_query_like_items(api: Api) -> None:
    token, user = await api.user("ann@example.com")
    await _send(api, [user["id"]], "b")
    await _send(api, [user["id"]], "a")
    headers = bearer(token)
    by_title = await api.ok(
        "GET", "/notifications", headers=headers, params={"sort": "title", "fields": "title"}
    )
    assert [n["title"] for n in by_title["data"]] == ["a", "b"]
    assert set(by_title["data"][0]) == {"id", "title"}
    for params in (
        {"filter": json.dumps({"password": {"eq": "x"}})},
        {"sort": "nope"},
        {"sort": "data"},
        {"fields": "storageKey"},
    ):
        response = await api.client.get("/notifications", headers=headers, params=params)
        assert response.status_code == 400, (params, response.text)
