"""Conditional requests on items (docs/rest.md, "Conditional writes"): ETag on
reads and writes, If-Match on PATCH and DELETE (412 and nothing written when
the item changed), If-None-Match on GET (304), and the refusals around them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from livebase.app import services_of
from tests.api.test_fast_create import without_fast_path
from tests.helpers import Api, bearer

NOTES = {"title": {"type": "String"}, "owner": {"type": "UUID"}}


@pytest.fixture
async def notes(api: Api) -> Api:
    await api.collection("notes", NOTES)
    return api


async def create(api: Api, title: str = "first", **values: Any) -> tuple[Any, str]:
    """A note made by the administrator: its id and the ETag of the answer."""
    response = await api.client.post(
        "/items/notes", headers=api.admin, json={"title": title, **values}
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"], response.headers["ETag"]


async def read(api: Api, key: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.client.get(f"/items/notes/{key}", headers=headers or api.admin)


async def patch(api: Api, key: Any, if_match: str | None, **values: Any) -> httpx.Response:
    headers = dict(api.admin)
    if if_match is not None:
        headers["If-Match"] = if_match
    return await api.client.patch(f"/items/notes/{key}", headers=headers, json=values)


async def stored_title(api: Api, key: Any) -> Any:
    async with services_of(api.app).db.connect() as conn:
        return await conn.scalar(text("SELECT title FROM notes WHERE id = :id"), {"id": key})


def assert_strong(tag: str) -> None:
    assert tag.startswith('"') and tag.endswith('"') and tag[1:-1].isdigit(), tag


async def test_every_answer_carries_the_version_and_every_change_makes_a_new_one(
    notes: Api,
) -> None:
    api = notes
    key, created = await create(api)  # the fast path's answer
    assert_strong(created)
    got = await read(api, key)
    assert got.headers["ETag"] == created
    assert got.headers["Vary"] == "Authorization"  # no other token gets a cached answer
    seen = {created}
    for title in ("second", "third", "third"):  # an update that changes nothing is one too
        updated = await patch(api, key, None, title=title)
        assert updated.status_code == 200
        assert updated.headers["ETag"] not in seen
        seen.add(updated.headers["ETag"])
        assert (await read(api, key)).headers["ETag"] == updated.headers["ETag"]

    # FastAPI's route (a create the fast path leaves to it) answers one too.
    async with without_fast_path(api) as client:
        response = await client.post("/items/notes", headers=api.admin, json={"title": "slow"})
    assert response.status_code == 201
    slow = response.json()["data"]["id"]
    assert response.headers["ETag"] == (await read(api, slow)).headers["ETag"]

    # A create through the general path (a create permission with a condition).
    token, me = await api.user("writer@example.com")
    own = {"owner": {"eq": "$CURRENT_USER"}}
    await api.allow("user", "notes", "create", conditions=own)
    await api.allow("user", "notes", "read", conditions=own)
    response = await api.client.post(
        "/items/notes", headers=bearer(token), json={"title": "mine", "owner": me["id"]}
    )
    assert response.status_code == 201
    got = await read(api, response.json()["data"]["id"], bearer(token))
    assert response.headers["ETag"] == got.headers["ETag"]


async def test_a_change_written_outside_livebase_changes_the_version(notes: Api) -> None:
    api = notes
    key, before = await create(api)
    # Straight SQL, as psql or sqlite3 would write: only the change log's trigger knows.
    async with services_of(api.app).db.transaction() as conn:
        await conn.execute(text("UPDATE notes SET title = 'outside' WHERE id = :id"), {"id": key})
    got = await read(api, key)
    assert got.json()["data"]["title"] == "outside"
    assert got.headers["ETag"] != before
    refused = await patch(api, key, before, title="lost update")
    assert refused.status_code == 412
    assert await stored_title(api, key) == "outside"


async def test_if_match_writes_only_at_a_named_version(notes: Api) -> None:
    api = notes
    key, first = await create(api)
    updated = await patch(api, key, first, title="second")
    assert updated.status_code == 200, updated.text
    second = updated.headers["ETag"]

    stale = await patch(api, key, first, title="overwrites second")
    assert stale.status_code == 412
    error = stale.json()["error"]
    assert error["code"] == "PRECONDITION_FAILED"
    assert error["etag"] == second == stale.headers["ETag"]
    assert await stored_title(api, key) == "second"
    assert (await read(api, key)).headers["ETag"] == second  # nothing was written

    assert (await patch(api, key, f"{first}, {second}", title="any of a list")).status_code == 200
    third = (await read(api, key)).headers["ETag"]
    assert (await patch(api, key, f"W/{third}", title="weak")).status_code == 412  # strong only
    assert (await patch(api, key, '"not-ours"', title="x")).status_code == 412
    assert (await patch(api, key, "*", title="any version")).status_code == 200
    assert await stored_title(api, key) == "any version"


async def test_delete_with_a_stale_version_deletes_nothing(notes: Api) -> None:
    api = notes
    key, first = await create(api)
    second = (await patch(api, key, None, title="second")).headers["ETag"]
    headers = {**api.admin, "If-Match": first}
    refused = await api.client.delete(f"/items/notes/{key}", headers=headers)
    assert refused.status_code == 412
    assert refused.json()["error"]["etag"] == second
    assert await stored_title(api, key) == "second"
    headers["If-Match"] = second
    assert (await api.client.delete(f"/items/notes/{key}", headers=headers)).status_code == 200
    assert (await read(api, key)).status_code == 404


async def test_if_none_match_answers_304_while_the_item_is_unchanged(notes: Api) -> None:
    api = notes
    key, first = await create(api)
    for tags in (first, f"W/{first}", f'"1", {first}', "*"):
        response = await read(api, key, {**api.admin, "If-None-Match": tags})
        assert response.status_code == 304, tags
        assert response.content == b""
        assert response.headers["ETag"] == first
    await patch(api, key, None, title="changed")
    response = await read(api, key, {**api.admin, "If-None-Match": first})
    assert response.status_code == 200
    assert response.json()["data"]["title"] == "changed"
    assert response.headers["ETag"] != first


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        '"1" "2"',
        '"unterminated',
        "W/garbage",
        ",",
        '*, "1"',
        '"' + "1" * 2000 + '"',  # over 1 KiB
        ", ".join(['"1"'] * 400),  # many tags, over 1 KiB in all
    ],
)
async def test_malformed_conditions_are_400_and_change_nothing(notes: Api, header: str) -> None:
    api = notes
    key, _ = await create(api)
    for method, name in (("PATCH", "If-Match"), ("DELETE", "If-Match"), ("GET", "If-None-Match")):
        response = await api.client.request(
            method,
            f"/items/notes/{key}",
            headers={**api.admin, name: header},
            json={"title": "changed"} if method == "PATCH" else None,
        )
        assert response.status_code == 400, (method, response.text)
        assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert await stored_title(api, key) == "first"


async def test_many_well_formed_tags_simply_do_not_match(notes: Api) -> None:
    api = notes
    key, first = await create(api)
    many = ", ".join(f'"{n}"' for n in range(10_000, 10_100))  # under 1 KiB
    assert (await patch(api, key, many, title="x")).status_code == 412
    assert (await patch(api, key, f"{many}, {first}", title="x")).status_code == 200


async def test_a_condition_reveals_nothing_a_refusal_would_not(notes: Api) -> None:
    api = notes
    token, me = await api.user("limited@example.com")
    _, other = await api.user("other@example.com")
    own = {"owner": {"eq": "$CURRENT_USER"}}
    await api.allow("user", "notes", "read", conditions=own)
    await api.allow("user", "notes", "update")  # any note, read or not
    theirs, _ = await create(api, owner=other["id"])
    mine, mine_tag = await create(api, owner=me["id"])
    headers = bearer(token)

    async def answers(method: str, key: Any, if_match: str | None) -> tuple[int, Any]:
        extra = {} if if_match is None else {"If-Match": if_match}
        response = await api.client.request(
            method,
            f"/items/notes/{key}",
            headers={**headers, **extra},
            json={"title": "x"} if method == "PATCH" else None,
        )
        return response.status_code, response.json()

    missing = "00000000-0000-4000-8000-000000000000"
    for if_match in ('"1"', "*"):
        # Missing: 404, as without the header.
        assert await answers("PATCH", missing, if_match) == await answers("PATCH", missing, None)
        # Not deletable and not readable: the same 404 as a missing item.
        assert await answers("DELETE", theirs, if_match) == await answers("DELETE", theirs, None)
        # Deletable no, readable yes: the same 403.
        assert await answers("DELETE", mine, if_match) == await answers("DELETE", mine, None)
    # Updatable but not readable, at another version: 412 without the version.
    status, body = await answers("PATCH", theirs, '"1"')
    assert status == 412 and "etag" not in body["error"]
    # Updatable and readable: 412 with it.
    await patch(api, mine, None, title="moved on")
    status, body = await answers("PATCH", mine, mine_tag)
    assert status == 412 and body["error"]["etag"] == (await read(api, mine)).headers["ETag"]
    # An update whose result the writer may not read answers no version either.
    response = await api.client.patch(
        f"/items/notes/{mine}", headers=headers, json={"owner": other["id"]}
    )
    assert response.status_code == 200 and "ETag" not in response.headers


async def test_bulk_writes_refuse_conditions(notes: Api) -> None:
    api = notes
    key, first = await create(api)
    for name in ("If-Match", "If-None-Match"):
        headers = {**api.admin, name: first}
        response = await api.client.request(
            "PATCH", "/items/notes/bulk", headers=headers, json=[{"id": key, "title": "bulk"}]
        )
        assert response.status_code == 400, response.text
        assert "bulk" in response.json()["error"]["message"]
        response = await api.client.request(
            "DELETE", "/items/notes/bulk", headers=headers, json=[key]
        )
        assert response.status_code == 400
    assert await stored_title(api, key) == "first"
    # Without a condition, bulk writes are as before.
    await api.ok("PATCH", "/items/notes/bulk", headers=api.admin, json=[{"id": key, "title": "b"}])


async def test_if_none_match_on_a_write_is_refused(notes: Api) -> None:
    api = notes
    key, first = await create(api)
    headers = {**api.admin, "If-None-Match": first}
    response = await api.client.patch(f"/items/notes/{key}", headers=headers, json={"title": "x"})
    assert response.status_code == 400
    assert await stored_title(api, key) == "first"


async def test_users_have_versions_too(api: Api) -> None:
    _, user = await api.user("versioned@example.com")
    got = await api.client.get(f"/items/users/{user['id']}", headers=api.admin)
    tag = got.headers["ETag"]
    headers = {**api.admin, "If-Match": tag}
    first = await api.client.patch(
        f"/items/users/{user['id']}", headers=headers, json={"status": "suspended"}
    )
    assert first.status_code == 200 and first.headers["ETag"] != tag
    again = await api.client.patch(
        f"/items/users/{user['id']}", headers=headers, json={"status": "active"}
    )
    assert again.status_code == 412


async def test_collections_without_a_change_log_answer_no_version(api: Api) -> None:
    roles = await api.ok("GET", "/items/roles", headers=api.admin)
    key = roles["data"][0]["id"]
    response = await api.client.get(
        f"/items/roles/{key}", headers={**api.admin, "If-None-Match": "*"}
    )
    assert response.status_code == 200 and "ETag" not in response.headers


@pytest.mark.parametrize(
    ("kind", "extra", "key"),
    [
        ("Integer", {"defaultValue": {"type": "AUTOINCREMENT"}}, None),
        ("BigInt", {}, 2**40),
        ("String", {}, "Key-With-Case"),
    ],
)
async def test_versions_follow_every_kind_of_key(
    api: Api, kind: str, extra: dict[str, Any], key: Any
) -> None:
    """The version is looked up by the key's text as the triggers log it."""
    fields = {"id": {"type": kind, "primaryKey": True, **extra}, "label": {"type": "String"}}
    await api.collection("keyed", fields, timestamps=False)
    body = {"label": "a"} if key is None else {"id": key, "label": "a"}
    created = await api.client.post("/items/keyed", headers=api.admin, json=body)
    assert created.status_code == 201, created.text
    key = created.json()["data"]["id"]
    first = created.headers["ETag"]
    assert first != '"0"'
    got = await api.client.get(f"/items/keyed/{key}", headers=api.admin)
    assert got.headers["ETag"] == first
    headers = {**api.admin, "If-Match": first}
    updated = await api.client.patch(f"/items/keyed/{key}", headers=headers, json={"label": "b"})
    assert updated.status_code == 200 and updated.headers["ETag"] not in (first, '"0"')
    again = await api.client.patch(f"/items/keyed/{key}", headers=headers, json={"label": "c"})
    assert again.status_code == 412
