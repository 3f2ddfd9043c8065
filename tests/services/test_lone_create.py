"""A lone create commits with its insert (Database.insert_then_read), and nothing tells it apart.

``items.create`` of one item that nothing can refuse after the insert takes
that path (one trip to the SQLite thread, without SQLAlchemy's execution
machinery, or on the event loop with ``SQLITE_LOOP_WRITES``); ``create_many``
takes the general transaction. Every field kind must come back, be stored, be
published and be refused the same way on all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from livebase.app import create_app, services_of
from livebase.services.accountability import SYSTEM
from livebase.services.container import Services
from livebase.services.errors import Conflict, ValidationFailed
from livebase.services.events import ChangeEvent, Event
from livebase.services.query import Query
from tests.api.conftest import make_settings

_FIELDS = {
    "title": {"type": "String", "allowNull": False},
    "body": {"type": "Text"},
    "count": {"type": "Integer", "defaultValue": 7},
    "big": {"type": "BigInt"},
    "ratio": {"type": "Double"},
    "price": {"type": "Decimal", "precision": 10, "scale": 2},
    "done": {"type": "Boolean", "defaultValue": False},
    "day": {"type": "Date"},
    "at": {"type": "DateTime"},
    "ref": {"type": "UUID", "defaultValue": {"type": "UUIDV4"}},
    "meta": {"type": "JSON"},
    "code": {"type": "String", "unique": True},
}

_VALUES: list[dict[str, Any]] = [
    {"title": "only the required field"},
    {
        "title": "every kind",
        "body": "x" * 3000,
        "count": -3,
        "big": 2**53,
        "ratio": 0.1,
        "price": "12.34",
        "done": True,
        "day": "2026-11-26",
        "at": "2026-11-26T08:30:00+02:00",
        "ref": "0b6f4cd0-5c4b-4a3e-9d1e-2f2a9b1c0d3e",
        "meta": {"nested": [1, "two", None, {"three": 3.5}], "ünïcode": "✓"},
    },
    {"title": "nulls", "body": None, "price": None, "day": None, "at": None, "meta": None},
    {"title": "json scalars", "meta": [1, 2, 3]},
]


@pytest.fixture
async def app(database_url: str, tmp_path: Path, loop_writes: bool) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(database_url, tmp_path, SQLITE_LOOP_WRITES=loop_writes))
    async with app.router.lifespan_context(app):
        await services_of(app).schemas.create(
            SYSTEM, {"collectionName": "things", "schema": {"fields": _FIELDS}}
        )
        yield app


def _count_lone_inserts(services: Services) -> list[int]:
    """Wrap the database's one-trip insert to prove the lone path ran."""
    calls = [0]
    original = services.db.insert_then_read

    async def counted(*args: Any) -> Any:
        calls[0] += 1
        return await original(*args)

    services.db.insert_then_read = counted  # type: ignore[method-assign]
    return calls


def _lone_path(services: Services, loop_writes: bool) -> str | None:
    """The path a lone create takes: none of SQLite's on PostgreSQL."""
    if not services.db.is_sqlite:
        return None
    return "loop" if loop_writes else "thread"


def _without_stamps(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("id", "createdAt", "updatedAt")}


@pytest.mark.parametrize("values", _VALUES, ids=[v["title"] for v in _VALUES])
async def test_a_lone_create_answers_stores_and_publishes_as_a_transaction_does(
    app: FastAPI, values: dict[str, Any], loop_writes: bool, sqlite_paths: list[str]
) -> None:
    services = services_of(app)
    published: list[ChangeEvent] = []

    async def listen(event: Event) -> None:
        if isinstance(event, ChangeEvent):
            published.append(event)

    services.events.subscribe(listen)
    lone_inserts = _count_lone_inserts(services)

    alone = await services.items.create("things", dict(values), SYSTEM)
    assert lone_inserts == [1]
    [general] = await services.items.create_many("things", [dict(values)], SYSTEM)
    assert lone_inserts == [1]  # the bulk write took the general transaction
    path = _lone_path(services, loop_writes)
    assert sqlite_paths == ([] if path is None else [path])

    assert alone["id"] != general["id"]
    if "ref" not in values:  # each create draws its own default UUID
        assert alone.pop("ref") != general.pop("ref")
    assert _without_stamps(alone) == _without_stamps(general)
    assert alone["createdAt"].tzinfo is not None and alone["createdAt"] == alone["updatedAt"]

    stored_alone = await services.items.read_one("things", alone["id"], SYSTEM)
    stored_general = await services.items.read_one("things", general["id"], SYSTEM)
    stored_alone.pop("ref"), stored_general.pop("ref")
    assert _without_stamps(stored_alone) == _without_stamps(stored_general)
    assert stored_alone == {k: v for k, v in alone.items() if k != "ref"}

    assert [(e.action, e.key) for e in published] == [
        ("create", alone["id"]),
        ("create", general["id"]),
    ]
    assert published[0].item == {**alone, "ref": published[0].item["ref"]}
    assert published[0].previous is None and published[0].user_id is None


async def test_a_refused_lone_create_leaves_nothing_and_the_next_one_works(
    app: FastAPI, loop_writes: bool, sqlite_paths: list[str]
) -> None:
    services = services_of(app)
    published: list[Event] = []

    async def listen(event: Event) -> None:
        published.append(event)

    services.events.subscribe(listen)
    lone_inserts = _count_lone_inserts(services)
    first = await services.items.create("things", {"title": "a", "code": "taken"}, SYSTEM)

    with pytest.raises(Conflict, match="must be unique"):
        await services.items.create("things", {"title": "b", "code": "taken"}, SYSTEM)
    with pytest.raises(ValidationFailed):  # refused before any SQL
        await services.items.create("things", {"title": None}, SYSTEM)
    with pytest.raises(Conflict, match="must be unique"):
        await services.items.create_many("things", [{"title": "c", "code": "taken"}], SYSTEM)
    assert lone_inserts == [2]

    second = await services.items.create("things", {"title": "d", "code": "free"}, SYSTEM)
    assert lone_inserts == [3]
    path = _lone_path(services, loop_writes)
    assert sqlite_paths == ([] if path is None else [path] * 3)
    _, total = await services.items.read_many("things", Query(), SYSTEM)
    assert total == 2
    assert [e.key for e in published if isinstance(e, ChangeEvent)] == [first["id"], second["id"]]
    # The writer connection is left outside any transaction: the general path still works.
    await services.items.update("things", first["id"], {"title": "a2"}, SYSTEM)
    assert (await services.items.read_one("things", first["id"], SYSTEM))["title"] == "a2"
