"""Collection and field names: one rule on SQLite and PostgreSQL, refused at schema time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import Api

STRING = {"type": "String"}


@pytest.mark.parametrize(
    "name",
    [
        "sqlite_things",  # SQLite: "object name reserved for internal use"
        "SQLite_things",
        "pg_class",  # PostgreSQL: shadowed by pg_catalog.pg_class
        "pg_things",
        "livebase_meta",  # ours
        "LiveBaseData",
        "posts\n",  # a trailing newline passed the old `$`-anchored pattern
        "a" * 64,  # past PostgreSQL's 63-byte identifiers
    ],
)
async def test_reserved_collection_names_are_refused(api: Api, name: str) -> None:
    body = {"collectionName": name, "schema": {"fields": {"t": STRING}}}
    response = await api.client.post("/schemas", headers=api.admin, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("RESERVED_NAME", "INVALID_NAME")
    assert (await api.ok("GET", "/schemas", headers=api.admin))["data"] == []


@pytest.mark.parametrize(
    ("fields", "options"),
    [
        ({"Title": STRING, "title": STRING}, {}),  # SQLite: duplicate column name
        ({"ID": STRING}, {}),  # the same as the key id, to SQLite
        ({"createdat": STRING}, {}),  # the same as the timestamp createdAt, to SQLite
        ({"createdAt": STRING}, {"timestamps": False}),  # would clash once timestamps are on
        ({"userUpdated": STRING}, {}),
        ({"xmin": STRING}, {}),  # PostgreSQL: conflicts with a system column
        ({"ctid": STRING}, {}),
        ({"tableoid": STRING}, {}),
        ({"rowid": STRING}, {}),  # SQLite: would hide the row id
        ({"b" * 64: STRING}, {}),
    ],
)
async def test_reserved_field_names_are_refused(
    api: Api, fields: dict[str, Any], options: dict[str, Any]
) -> None:
    body = {"collectionName": "things", "schema": {"fields": fields, **options}}
    created = await api.client.post("/schemas", headers=api.admin, json=body)
    assert created.status_code == 400, created.text
    assert (await api.ok("GET", "/schemas", headers=api.admin))["data"] == []

    await api.collection("things", {"title": STRING}, **options)
    added = {name: spec for name, spec in fields.items() if name != "title"}
    patched = await api.client.patch("/schemas/things", headers=api.admin, json={"fields": added})
    assert patched.status_code == 400, patched.text
    schema = (await api.ok("GET", "/schemas/things", headers=api.admin))["data"]["schema"]
    assert set(schema["fields"]) == {"title"}
    await api.ok("POST", "/items/things", 201, headers=api.admin, json={"title": "still works"})


async def test_a_field_differing_in_case_from_an_existing_one_is_refused(api: Api) -> None:
    await api.collection("things", {"title": STRING})
    patched = await api.client.patch(
        "/schemas/things", headers=api.admin, json={"fields": {"TITLE": STRING}}
    )
    assert patched.status_code == 400, patched.text
    assert "differ only in letter case" in patched.json()["error"]["message"]


async def test_a_collection_differing_in_case_from_another_is_a_conflict(api: Api) -> None:
    await api.collection("things", {"title": STRING})
    for name in ("Things", "USERS"):
        body = {"collectionName": name, "schema": {"fields": {}}}
        response = await api.client.post("/schemas", headers=api.admin, json=body)
        assert response.status_code == 409, response.text


async def _round_trip(api: Api, collection: str, item: dict[str, Any]) -> None:
    created = await api.ok("POST", f"/items/{collection}", 201, headers=api.admin, json=item)
    key = created["data"]["id"]
    for name, value in item.items():
        query = {"filter": json.dumps({name: {"eq": value}}), "sort": json.dumps([f"-{name}"])}
        found = await api.ok("GET", f"/items/{collection}", headers=api.admin, params=query)
        assert [row["id"] for row in found["data"]] == [key]
    await api.ok("PATCH", f"/items/{collection}/{key}", headers=api.admin, json=item)
    await api.ok("DELETE", f"/items/{collection}/{key}", headers=api.admin)


async def test_sql_keywords_are_ordinary_names(api: Api) -> None:
    fields = {"order": STRING, "user": STRING, "group": {"type": "Integer"}, "from": STRING}
    await api.collection("select", fields)
    await _round_trip(api, "select", {"order": "a", "user": "b", "group": 3, "from": "c"})


async def test_long_names_keep_their_unique_indexes_apart(api: Api) -> None:
    # uq_{table}_{field} cut at 63 characters gave these fields one index name.
    long_table, prefix = "t" * 63, "f" * 62
    unique = {"type": "String", "unique": True}
    await api.collection(long_table, {f"{prefix}1": unique, f"{prefix}2": unique})
    # ... and these two pairs the same name, uq_a_b_c.
    await api.collection("a_b", {"c": unique})
    await api.collection("a", {"b_c": unique})

    item = {f"{prefix}1": "x", f"{prefix}2": "y"}
    await _round_trip(api, long_table, item)
    await api.ok("POST", f"/items/{long_table}", 201, headers=api.admin, json=item)
    twice = await api.client.post(f"/items/{long_table}", headers=api.admin, json=item)
    assert twice.status_code == 409, twice.text
    not_unique = {"fields": {f"{prefix}1": {"type": "String"}, f"{prefix}2": None}}
    await api.ok("PATCH", f"/schemas/{long_table}", headers=api.admin, json=not_unique)
    await api.ok("POST", f"/items/{long_table}", 201, headers=api.admin, json={f"{prefix}1": "x"})
    await api.ok("POST", "/items/a_b", 201, headers=api.admin, json={"c": "same"})
    await api.ok("POST", "/items/a", 201, headers=api.admin, json={"b_c": "same"})
