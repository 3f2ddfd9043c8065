"""The row a write stores (services/rows.py) and keys as clients give them (services/keys.py).

Pure functions over a collection built inline: the items service's API tests
drive them through HTTP on both databases; these pin what each kind adds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import MetaData

from livebase.services import items
from livebase.services.accountability import SYSTEM
from livebase.services.definitions import parse_definition
from livebase.services.errors import BadRequest, Forbidden, ValidationFailed
from livebase.services.keys import item_key
from livebase.services.permissions import FULL, Scope
from livebase.services.rows import row_values
from livebase.storage.model import Collection
from livebase.storage.tables import build_table


def _collection(fields: dict[str, Any], accountability: bool = False) -> Collection:
    definition = parse_definition({"fields": fields, "accountability": accountability})
    table = build_table("things", definition.fields, MetaData())
    return Collection("things", definition.fields, table)


THINGS = _collection(
    {
        "title": {"type": "String", "allowNull": False, "length": 5},
        "ref": {"type": "UUID", "defaultValue": "UUIDV4"},
        "code": {"type": "String", "defaultValue": {"type": "UUIDV4"}},
        "day": {"type": "Date", "defaultValue": "NOW"},
        "at": {"type": "DateTime", "defaultValue": "NOW"},
        "count": {"type": "Integer", "defaultValue": 7},
        "price": {"type": "Decimal", "scale": 1},
        "note": {"type": "Text"},
    },
    accountability=True,
)
NUMBERED = _collection({"id": {"type": "Integer", "primaryKey": True}, "t": {"type": "Text"}})


def test_the_items_module_keeps_its_public_names() -> None:
    assert sorted(items.__all__) == ["CollectionRules", "Item", "ItemsService", "MAX_BULK"]
    public = {name for name in vars(items.ItemsService) if not name.startswith("_")}
    assert public == {
        *("read_many", "read_one", "create", "create_many", "update", "update_many"),
        *("delete", "delete_many", "set_rules", "reading", "reach"),
        # Conditional writes (docs/rest.md): the same, with the item's version.
        *("read_versioned", "create_versioned", "update_versioned"),
    }


def test_a_create_fills_every_kind_of_default_and_stamps() -> None:
    before = datetime.now(UTC)
    values = row_values(THINGS, FULL, {"title": "a", "price": "1.25"}, SYSTEM, creating=True)
    assert uuid.UUID(values["ref"]).version == 4
    assert uuid.UUID(values["code"]).version == 4 and values["code"] != values["ref"]
    assert type(values["day"]) is date and values["day"] == values["createdAt"].date()
    assert type(values["at"]) is datetime and values["at"] >= before
    assert values["count"] == 7 and values["note"] is None
    assert values["price"] == Decimal("1.2")  # rounded half-even to the scale
    assert values["createdAt"] == values["updatedAt"] >= before
    assert values["userCreated"] == values["userUpdated"] == SYSTEM.user_id
    assert "id" in values


def test_an_update_writes_only_what_it_is_given_and_its_stamps() -> None:
    values = row_values(THINGS, FULL, {"note": "n"}, SYSTEM, creating=False, key="k")
    assert set(values) == {"note", "updatedAt", "userUpdated"}


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"nope": 1}, BadRequest, "things has no field 'nope'"),
        ({"createdAt": "2024-01-01"}, BadRequest, "field 'createdAt' is set by the server"),
        ({"title": None}, ValidationFailed, "field title: is required"),
        ({"title": "toolong"}, ValidationFailed, "field title: longer than 5 characters"),
        ({"title": 5}, ValidationFailed, "field title: expected a string, got 5"),
        ({"title": "a", "count": "5"}, ValidationFailed, "field count: expected an integer"),
        ({"title": "a", "count": 2**31}, ValidationFailed, "out of range for Integer"),
        ({"title": "a", "price": 1e12}, ValidationFailed, "at most 11 digits before"),
    ],
)
def test_a_body_is_checked_field_by_field(
    data: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        row_values(THINGS, FULL, data, SYSTEM, creating=True)


def test_a_field_outside_the_scope_is_refused() -> None:
    scope = Scope(fields=frozenset({"title"}), condition=FULL.condition)
    with pytest.raises(Forbidden, match="may not write field 'note'"):
        row_values(THINGS, scope, {"title": "a", "note": "x"}, SYSTEM, creating=True)


def test_an_update_may_repeat_its_key_but_not_change_it() -> None:
    values = row_values(NUMBERED, FULL, {"id": "3", "t": "x"}, SYSTEM, creating=False, key=3)
    assert set(values) == {"t", "updatedAt"}
    with pytest.raises(BadRequest, match="cannot change"):
        row_values(NUMBERED, FULL, {"id": 4}, SYSTEM, creating=False, key=3)


@pytest.mark.parametrize(
    ("collection", "raw", "key"),
    [
        (NUMBERED, "12", 12),  # a path segment
        (NUMBERED, 12, 12),
        (NUMBERED, 12.0, 12),
        (THINGS, "0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ],
)
def test_keys_are_read_as_their_kind(collection: Collection, raw: object, key: object) -> None:
    assert item_key(collection, raw) == key


@pytest.mark.parametrize(
    ("collection", "raw", "index", "message"),
    [
        (NUMBERED, "x", None, "invalid id 'x': expected an integer"),
        (NUMBERED, "99999999999", 2, "item 2: invalid id: 99999999999 is out of range"),
        (NUMBERED, None, None, "an id is required"),
        (THINGS, "x", 0, "item 0: invalid id: expected a UUID, got 'x'"),
    ],
)
def test_bad_keys_are_400s(
    collection: Collection, raw: object, index: int | None, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        item_key(collection, raw, index)
