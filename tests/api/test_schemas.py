"""Collections defined at run time through /schemas."""

from __future__ import annotations

import pytest

from tests.helpers import Api, bearer

EVERY_TYPE = {
    "title": {"type": "String", "allowNull": False, "values": {"length": 20}},
    "body": {"type": "Text"},
    "views": {"type": "Integer", "defaultValue": 0, "validate": {"min": 0, "max": 1000}},
    "big": {"type": "BigInt"},
    "score": {"type": "Double"},
    "price": {"type": "Decimal", "precision": 10, "scale": 2},
    "published": {"type": "Boolean", "defaultValue": False},
    "day": {"type": "Date"},
    "at": {"type": "DateTime", "defaultValue": {"type": "NOW"}},
    "ref": {"type": "UUID", "defaultValue": "UUIDV4"},
    "meta": {"type": "JSON"},
    "email": {"type": "String", "unique": True, "validate": {"isEmail": True}},
    "code": {"type": "String", "validate": {"is": "^[A-Z]{3}$", "len": [3, 3]}},
}


async def test_every_field_type_round_trips(api: Api) -> None:
    await api.collection("things", EVERY_TYPE)
    created = await api.ok(
        "POST",
        "/items/things",
        201,
        headers=api.admin,
        json={
            "title": "hello",
            "body": "long text",
            "big": 2**40,
            "score": 1.5,
            "price": "12.34",
            "day": "2026-11-25",
            "meta": {"tags": ["a", "b"], "n": 1},
            "email": "a@b.co",
            "code": "ABC",
        },
    )
    item = created["data"]
    assert item["views"] == 0 and item["published"] is False
    assert item["big"] == 2**40 and item["score"] == 1.5 and item["price"] == "12.34"
    assert item["day"] == "2026-11-25" and item["meta"] == {"tags": ["a", "b"], "n": 1}
    assert item["at"].endswith("Z") and item["createdAt"].endswith("Z")
    assert len(item["id"]) == 36 and len(item["ref"]) == 36
    again = await api.ok("GET", f"/items/things/{item['id']}", headers=api.admin)
    assert again["data"] == item


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"title": None}, 422),
        ({}, 422),  # title is required
        ({"title": "x" * 21}, 422),
        ({"title": "ok", "views": -1}, 422),
        ({"title": "ok", "views": "many"}, 422),
        ({"title": "ok", "email": "not-an-email"}, 422),
        ({"title": "ok", "code": "abc"}, 422),
        ({"title": "ok", "day": "25/11/2026"}, 422),
        ({"title": "ok", "published": "yes"}, 422),
        ({"title": "ok", "ref": "not-a-uuid"}, 422),
        ({"title": "ok", "unknown": 1}, 400),
        ({"title": "ok", "createdAt": "2020-01-01T00:00:00Z"}, 400),
    ],
)
async def test_values_are_validated_against_the_schema(api: Api, body: dict, status: int) -> None:
    await api.collection("things", EVERY_TYPE)
    response = await api.client.post("/items/things", headers=api.admin, json=body)
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"message", "code"}
    listed = await api.ok("GET", "/items/things", headers=api.admin)
    assert listed["totalCount"] == 0


async def test_unique_fields_conflict(api: Api) -> None:
    await api.collection("things", EVERY_TYPE)
    await api.ok(
        "POST", "/items/things", 201, headers=api.admin, json={"title": "a", "email": "a@b.co"}
    )
    again = await api.client.post(
        "/items/things", headers=api.admin, json={"title": "b", "email": "a@b.co"}
    )
    assert again.status_code == 409


async def test_integer_autoincrement_primary_key(api: Api) -> None:
    await api.collection(
        "counters",
        {
            "id": {
                "type": "Integer",
                "primaryKey": True,
                "defaultValue": {"type": "AUTOINCREMENT"},
            },
            "label": {"type": "String"},
        },
        timestamps=False,
    )
    first = await api.ok("POST", "/items/counters", 201, headers=api.admin, json={"label": "a"})
    second = await api.ok("POST", "/items/counters", 201, headers=api.admin, json={"label": "b"})
    assert second["data"]["id"] == first["data"]["id"] + 1
    assert "createdAt" not in first["data"]
    fetched = await api.ok("GET", f"/items/counters/{first['data']['id']}", headers=api.admin)
    assert fetched["data"]["label"] == "a"
    wrong_type = await api.client.get("/items/counters/abc", headers=api.admin)
    assert wrong_type.status_code == 400


async def test_alter_adds_changes_and_drops_fields(api: Api) -> None:
    await api.collection("notes", {"title": {"type": "String"}, "old": {"type": "Integer"}})
    await api.ok("POST", "/items/notes", 201, headers=api.admin, json={"title": "t", "old": 1})
    changed = await api.ok(
        "PATCH",
        "/schemas/notes",
        headers=api.admin,
        json={
            "schema": {
                "fields": {
                    "old": None,
                    "rank": {"type": "Integer", "unique": True},
                    "title": {"type": "String", "allowNull": False},
                }
            }
        },
    )
    fields = changed["data"]["schema"]["fields"]
    assert "old" not in fields and "rank" in fields
    listed = await api.ok("GET", "/items/notes", headers=api.admin)
    assert "old" not in listed["data"][0] and listed["data"][0]["rank"] is None
    required = await api.client.post("/items/notes", headers=api.admin, json={"rank": 1})
    assert required.status_code == 422
    type_change = await api.client.patch(
        "/schemas/notes", headers=api.admin, json={"fields": {"rank": {"type": "String"}}}
    )
    assert type_change.status_code == 400


async def test_drop_collection_removes_table_and_permissions(api: Api) -> None:
    await api.collection("temp", {"title": {"type": "String"}})
    await api.allow("user", "temp", "read")
    await api.ok("DELETE", "/schemas/temp", headers=api.admin)
    assert (await api.client.get("/items/temp", headers=api.admin)).status_code == 404
    permissions = await api.ok("GET", "/permissions", headers=api.admin)
    assert all(p["collection"] != "temp" for p in permissions["data"])
    await api.collection("temp", {"other": {"type": "Integer"}})  # the name is free again


@pytest.mark.parametrize(
    "body",
    [
        {"collectionName": "bad name", "schema": {"fields": {}}},
        {"collectionName": "x'; DROP TABLE users;--", "schema": {"fields": {}}},
        {"collectionName": "posts", "schema": {"fields": {"a b": {"type": "String"}}}},
        {"collectionName": "posts", "schema": {"fields": {"t": {"type": "Blob"}}}},
        {"collectionName": "posts", "schema": {"fields": {"t": "String"}}},
        {
            "collectionName": "posts",
            "schema": {"fields": {"t": {"type": "Integer", "defaultValue": "x"}}},
        },
        {
            "collectionName": "posts",
            "schema": {"fields": {"t": {"type": "String", "validate": {"is": "("}}}},
        },
        {"collectionName": "posts", "schema": {"fields": {"createdAt": {"type": "String"}}}},
        {"collectionName": "posts", "schema": "nope"},
        {"collectionName": "ünïcode", "schema": {"fields": {}}},
        {"collectionName": "users", "schema": {"fields": {}}},
        {"collectionName": "livebase_meta", "schema": {"fields": {}}},
        {"collectionName": 12, "schema": {"fields": {}}},
    ],
)
async def test_bad_schemas_are_refused(api: Api, body: dict) -> None:
    response = await api.client.post("/schemas", headers=api.admin, json=body)
    assert response.status_code in (400, 409, 422), response.text
    schemas = await api.ok("GET", "/schemas", headers=api.admin)
    assert schemas["data"] == []


async def test_schemas_are_for_administrators_only(api: Api) -> None:
    token, _ = await api.user("u@example.com")
    body = {"collectionName": "posts", "schema": {"fields": {}}}
    assert (await api.client.post("/schemas", headers=bearer(token), json=body)).status_code == 403
    assert (await api.client.post("/schemas", json=body)).status_code == 401
    assert (await api.client.get("/schemas", headers=bearer(token))).status_code == 403


async def test_schema_listing_and_reading(api: Api) -> None:
    await api.collection("posts", {"title": {"type": "String"}}, realtime=False)
    listed = await api.ok("GET", "/schemas", headers=api.admin)
    assert [s["collectionName"] for s in listed["data"]] == ["posts"]
    one = await api.ok("GET", "/schemas/posts", headers=api.admin)
    assert one["data"]["schema"]["realtime"] is False
    assert (await api.client.get("/schemas/nothing", headers=api.admin)).status_code == 404


async def test_decimals_are_rounded_to_their_scale_and_bounded(api: Api) -> None:
    await api.collection("prices", {"amount": {"type": "Decimal", "precision": 6, "scale": 2}})
    created = await api.ok(
        "POST", "/items/prices", 201, headers=api.admin, json={"amount": "12.345"}
    )
    assert created["data"]["amount"] == "12.34"
    found = await api.ok(
        "GET", "/items/prices", headers=api.admin, params={"filter": '{"amount": {"eq": "12.34"}}'}
    )
    assert found["totalCount"] == 1
    too_big = await api.client.post("/items/prices", headers=api.admin, json={"amount": 123456})
    assert too_big.status_code == 422


async def test_relationships_are_not_written_through_the_schema_itself(api: Api) -> None:
    relation = {"author": {"type": "M2O", "target": "users", "foreignKey": "author_Id"}}
    refused = await api.client.request(
        "POST",
        "/schemas",
        headers=api.admin,
        json={"collectionName": "posts", "schema": {"fields": {}, "relationships": relation}},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "USE_RELATIONSHIPS_ROUTE"
    await api.collection("posts", {"title": {"type": "String"}})
    refused = await api.client.request(
        "PATCH", "/schemas/posts", headers=api.admin, json={"relationships": relation}
    )
    assert refused.status_code == 400
    schema = await api.ok("GET", "/schemas/posts", headers=api.admin)
    assert "relationships" not in schema["data"]["schema"]
