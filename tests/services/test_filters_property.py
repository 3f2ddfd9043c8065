"""The SQL and the Python back ends of the filter language agree, on both databases.

Each example writes a random set of rows (NULLs, JSON null, strings full of
``%``, ``_``, quotes, mixed case and letters whose case folding is tricky, such
as ``ß``, ``İ`` and ``Σ``), reads them back, and checks a batch of random
filter trees whose values are drawn from or near the stored values, so that
filters match some rows and miss others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from livebase.services import filters
from livebase.services.filters import FieldKind
from livebase.services.paths import Columns, Reach, kinds_with_paths
from livebase.services.permissions import FULL, Scope
from livebase.services.relations import RelationGraph
from livebase.storage.database import Database
from livebase.storage.model import Collection, FieldSpec, Relation, RelationKind
from livebase.storage.types import UTCDateTime

KINDS = {kind.value.lower(): kind for kind in FieldKind}  # "string": FieldKind.STRING, ...
COLUMN_TYPES: dict[FieldKind, Any] = {
    FieldKind.STRING: sa.String(255),
    FieldKind.TEXT: sa.Text(),
    FieldKind.INTEGER: sa.Integer(),
    FieldKind.BIGINT: sa.BigInteger(),
    FieldKind.DOUBLE: sa.Double(),
    FieldKind.DECIMAL: sa.Numeric(12, 4),
    FieldKind.BOOLEAN: sa.Boolean(),
    FieldKind.DATE: sa.Date(),
    FieldKind.DATETIME: UTCDateTime(),
    FieldKind.UUID: sa.String(36),
    FieldKind.JSON: sa.JSON(),
}

ALL_OPS = [
    *("eq", "ne", "gt", "gte", "lt", "lte", "in", "notIn", "between", "notBetween"),
    *("like", "notLike", "iLike", "notILike", "startsWith", "endsWith", "isNull", "isNotNull"),
]
NOT_TEXT = [op for op in ALL_OPS if "ike" not in op and "With" not in op]
OPS: dict[FieldKind, list[str]] = {
    **dict.fromkeys((FieldKind.STRING, FieldKind.TEXT, FieldKind.UUID), ALL_OPS),
    **dict.fromkeys(
        (FieldKind.INTEGER, FieldKind.BIGINT, FieldKind.DOUBLE, FieldKind.DECIMAL), NOT_TEXT
    ),
    **dict.fromkeys((FieldKind.DATE, FieldKind.DATETIME), NOT_TEXT),
    FieldKind.BOOLEAN: ["eq", "ne", "in", "notIn", "isNull", "isNotNull"],
    FieldKind.JSON: ["isNull", "isNotNull"],
}

# LIKE wildcards, quotes, escape characters, and letters whose case folding
# differs between naive implementations (dotted and dotless i, final sigma).
TRICKY = list("aAsSzZ0 %_'\"\\/éÉäÄßẞİıiIΣσςöÖ")  # noqa: RUF001
WORDS = ["İSTANBUL", "istanbul", "ΟΔΟΣ", "Οδός", "Straße", "STRASSE", "50%_Off", "a_b", "A%B"]
short_texts = st.text(st.sampled_from(TRICKY), min_size=1, max_size=2)
text_values = (
    st.sampled_from(WORDS)
    | st.text(st.sampled_from(TRICKY), max_size=6)
    | st.text(
        st.sampled_from(TRICKY) | st.characters(codec="utf-8", exclude_characters="\x00"),
        max_size=8,
    )
)
SQL_NULL = object()  # a JSON column left SQL NULL, unlike Python None (stored as JSON null)

VALUES: dict[FieldKind, st.SearchStrategy[Any]] = {
    FieldKind.STRING: text_values,
    FieldKind.TEXT: text_values,
    FieldKind.INTEGER: st.integers(-3, 3) | st.integers(-(2**31), 2**31 - 1),
    FieldKind.BIGINT: st.integers(-3, 3) | st.integers(-(2**63), 2**63 - 1),
    FieldKind.DOUBLE: st.sampled_from([-1.5, -0.0, 0.0, 0.1, 2.0])
    | st.floats(allow_nan=False, allow_infinity=False),
    FieldKind.DECIMAL: st.decimals(
        min_value=Decimal("-99999999.9999"),
        max_value=Decimal("99999999.9999"),
        places=4,
        allow_nan=False,
        allow_infinity=False,
    ),
    FieldKind.BOOLEAN: st.booleans(),
    FieldKind.DATE: st.dates(),
    FieldKind.DATETIME: st.datetimes(timezones=st.just(UTC)),
    FieldKind.UUID: st.uuids().map(str),
    FieldKind.JSON: st.sampled_from([SQL_NULL, None, {"a": 1}, [1, "x"], "x", 0, False]),
}


def _row(row_id: int) -> st.SearchStrategy[dict[str, Any]]:
    columns = {name: st.none() | VALUES[kind] for name, kind in KINDS.items()}
    return st.fixed_dictionaries({"id": st.just(row_id), **columns})


@st.composite
def row_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 10))
    return [draw(_row(row_id)) for row_id in range(1, count + 1)]


# -- filter values near the stored ones ------------------------------------------------


def _shift(value: Any, step: Any) -> Any:
    try:
        return value + step
    except OverflowError:
        return value


@st.composite
def _near_text(draw: st.DrawFn, value: str) -> str:
    start = draw(st.integers(0, len(value)))
    end = draw(st.integers(start, len(value)))
    piece = value[start:end]
    change: Callable[[str], str] = draw(st.sampled_from([str, str.upper, str.lower, str.swapcase]))
    return change(piece)


def _near(kind: FieldKind, value: Any) -> st.SearchStrategy[Any]:
    if kind in (FieldKind.STRING, FieldKind.TEXT, FieldKind.UUID):
        # Short pieces of text find the wildcard and case-folding mistakes.
        return st.just(value) | _near_text(value) | short_texts
    steps: dict[FieldKind, Any] = {
        FieldKind.INTEGER: 1,
        FieldKind.BIGINT: 1,
        FieldKind.DECIMAL: Decimal("0.0001"),
        FieldKind.DATE: timedelta(days=1),
        FieldKind.DATETIME: timedelta(microseconds=1),
    }
    if kind in steps:
        step = steps[kind]
        nearby = [value, _shift(value, step), _shift(value, -step)]
        if kind is FieldKind.DECIMAL:  # finer than the column's scale
            nearby += [value + step / 10, value - step / 10]
        return st.sampled_from(nearby)
    return st.just(value)


def _in_range(kind: FieldKind, value: Any) -> bool:
    bits = {FieldKind.INTEGER: 31, FieldKind.BIGINT: 63}.get(kind)
    return bits is None or -(2**bits) <= value < 2**bits


def _as_json(kind: FieldKind, value: Any, style: int) -> Any:
    """How a client would write ``value`` in a JSON filter."""
    if kind is FieldKind.DATE:
        return value.isoformat()
    if kind is FieldKind.DATETIME:
        if style == 0:
            return value.isoformat().replace("+00:00", "Z")
        if style == 1:
            return value.replace(tzinfo=None).isoformat()  # naive means UTC
        try:
            return value.astimezone(timezone(timedelta(hours=-5))).isoformat()
        except OverflowError:
            return value.isoformat()
    if kind is FieldKind.DECIMAL:
        return str(value) if style else float(value)
    return value


@st.composite
def filter_values(draw: st.DrawFn, kind: FieldKind, rows: list[dict[str, Any]], name: str) -> Any:
    stored = [row[name] for row in rows if row[name] is not None]
    candidates = VALUES[kind]
    if stored:
        candidates = st.sampled_from(stored).flatmap(lambda v: _near(kind, v)) | candidates
    value = draw(candidates)
    if not _in_range(kind, value):  # the stored maximum, plus one
        value = 0
    return _as_json(kind, value, draw(st.integers(0, 2)))


# Text fields have the most operators and the most ways to go wrong.
FIELD_CHOICES = [*KINDS, "string", "string", "text"]


@st.composite
def conditions(draw: st.DrawFn, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{field: {op: value}}`` or a bare ``{field: value}``."""
    name = draw(st.sampled_from(FIELD_CHOICES))
    kind = KINDS[name]
    op = draw(st.sampled_from(OPS[kind]))
    values = filter_values(kind, rows, name)
    if op in ("isNull", "isNotNull"):
        return {name: {op: draw(st.booleans())}}
    if op in ("in", "notIn"):
        return {name: {op: draw(st.lists(values, max_size=4))}}
    if op in ("between", "notBetween"):
        low, high = draw(values), draw(values)
        return {name: {op: [low, high]}}
    value = draw(st.none() | values) if op in ("eq", "ne") else draw(values)
    if op == "eq" and draw(st.booleans()):
        return {name: value}
    return {name: {op: value}}


def filter_trees(rows: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    leaves = st.lists(conditions(rows), min_size=1, max_size=2).map(
        lambda parts: {k: v for part in parts for k, v in part.items()}
    )
    return st.recursive(
        leaves,
        lambda children: st.builds(
            lambda key, items, extra: {key: items, **extra},
            st.sampled_from(["AND", "OR"]),
            st.lists(children, max_size=3),
            st.just({}) | leaves,
        ),
        max_leaves=6,
    )


# -- the test ------------------------------------------------------------------------


@pytest.fixture
async def database(
    database_url: str, pg_database_url: str
) -> AsyncIterator[tuple[Database, sa.Table]]:
    # pg_database_url is named here only so that it is set up before any event loop
    # runs: database_url asks for it lazily, from inside its loop, where asyncio.run fails.
    db = Database(database_url)
    table = sa.Table(
        "things",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, COLUMN_TYPES[kind]) for name, kind in KINDS.items()),
    )
    async with db.transaction() as conn:
        await conn.run_sync(table.metadata.create_all)
    try:
        yield db, table
    finally:
        await db.dispose()


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "json": sa.null() if row["json"] is SQL_NULL else row["json"]}


# No shrinking: every step costs database round trips, and a failure reports the
# rows and the filter as drawn anyway.
@settings(
    max_examples=150,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=row_sets(), data=st.data())
async def test_sql_and_python_agree(
    database: tuple[Database, sa.Table], rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    db, table = database
    async with db.transaction() as conn:
        await conn.execute(table.delete())
        if rows:
            await conn.execute(table.insert().values([_stored(row) for row in rows]))
    async with db.connect() as conn:
        stored = [dict(row) for row in (await conn.execute(sa.select(table))).mappings()]
        for _ in range(8):
            raw = data.draw(filter_trees(stored), label="filter")
            node = filters.parse(raw, KINDS)
            matches = filters.to_predicate(node)
            expected = {row["id"] for row in stored if matches(row)}
            query = sa.select(table.c.id).where(filters.to_sql(node, table.c, db.dialect))
            found = set((await conn.execute(query)).scalars())
            assert found == expected, (
                f"{db.dialect} finds {sorted(found)}, Python {sorted(expected)}\n"
                f"filter: {raw}\nparsed: {node}\nstored: {stored}"
            )
            share = "none" if not expected else "all" if len(expected) == len(stored) else "some"
            event(f"a filter matched {share} of the rows")


async def test_strings_order_by_code_point_whatever_the_column_collation(
    database_url: str, pg_database_url: str
) -> None:
    # Our own database sorts by code point already (C.UTF-8); a linguistic
    # collation on the column shows that COLLATE "C" does the work.
    word = sa.String(20).with_variant(sa.String(20, collation="und-x-icu"), "postgresql")
    table = sa.Table(
        "words",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("word", word),
    )
    words = ["a", "A", "b", "B", "z", "é", "E", "ä", "-", "1", "a-b", "ab"]
    rows = [{"id": i, "word": w} for i, w in enumerate(words)]
    db = Database(database_url)
    try:
        async with db.transaction() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(table.insert().values(rows))
        async with db.connect() as conn:
            for op in ("gt", "gte", "lt", "lte", "between", "notBetween"):
                for bound in words:
                    value = [bound, "b"] if "etween" in op else bound
                    node = filters.parse({"word": {op: value}}, {"word": FieldKind.STRING})
                    matches = filters.to_predicate(node)
                    expected = {row["id"] for row in rows if matches(row)}
                    query = sa.select(table.c.id).where(filters.to_sql(node, table.c, db.dialect))
                    found = set((await conn.execute(query)).scalars())
                    assert found == expected, f"{db.dialect}: {op} {value!r}"
    finally:
        await db.dispose()


# -- paths through relations ------------------------------------------------------------
#
# parents.thing -> things, things.next -> things (M2O): a filter on parents through
# ``thing.<field>`` or ``thing.next.<field>`` must mean in SQL (a scalar subquery per
# hop, under the read condition of things) what it means in Python over parents whose
# related rows are nested, ``None`` when missing or unreadable.

READ_CONDITIONS = [None, {"boolean": {"eq": True}}, {"integer": {"gte": 0}}]
MISSING = 99  # a key no row has


@st.composite
def path_conditions(draw: st.DrawFn, rows: list[dict[str, Any]]) -> dict[str, Any]:
    prefix = draw(st.sampled_from(["thing.", "thing.next."]))
    return {prefix + name: spec for name, spec in draw(conditions(rows)).items()}


def path_trees(rows: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        path_conditions(rows),
        lambda children: st.builds(
            lambda key, items: {key: items},
            st.sampled_from(["AND", "OR"]),
            st.lists(children, max_size=3),
        ),
        max_leaves=4,
    )


def _related_collections() -> tuple[Collection, Collection, Reach]:
    metadata = sa.MetaData()
    things = sa.Table(
        "rthings",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_Id", sa.Integer),
        *(sa.Column(name, COLUMN_TYPES[kind]) for name, kind in KINDS.items()),
    )
    parents = sa.Table(
        "rparents",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("thing_Id", sa.Integer),
    )
    key = FieldSpec("id", FieldKind.INTEGER, primary_key=True)
    thing_fields = {
        "id": key,
        "next_Id": FieldSpec("next_Id", FieldKind.INTEGER),
        **{name: FieldSpec(name, kind) for name, kind in KINDS.items()},
    }
    parent_fields = {"id": key, "thing_Id": FieldSpec("thing_Id", FieldKind.INTEGER)}
    thing_collection = Collection("rthings", thing_fields, things)
    parent_collection = Collection("rparents", parent_fields, parents)
    graph = RelationGraph(
        [
            Relation("thing", RelationKind.M2O, "rparents", "rthings", foreign_key="thing_Id"),
            Relation("next", RelationKind.M2O, "rthings", "rthings", foreign_key="next_Id"),
        ]
    )
    by_name = {"rthings": thing_collection, "rparents": parent_collection}
    reach = Reach(graph, by_name.get, lambda c: FULL)  # its scope is replaced per example
    return parent_collection, thing_collection, reach


@pytest.fixture
async def related_database(
    database_url: str, pg_database_url: str
) -> AsyncIterator[tuple[Database, Collection, Collection, Reach]]:
    db = Database(database_url)
    parents, things, reach = _related_collections()
    async with db.transaction() as conn:
        await conn.run_sync(parents.table.metadata.create_all)
    try:
        yield db, parents, things, reach
    finally:
        await db.dispose()


@settings(
    max_examples=100,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=row_sets(), data=st.data())
async def test_sql_and_python_agree_through_paths(
    related_database: tuple[Database, Collection, Collection, Reach],
    rows: list[dict[str, Any]],
    data: st.DataObject,
) -> None:
    db, parents, things, base_reach = related_database
    keys = [None, MISSING, *(row["id"] for row in rows)]
    thing_rows = [{**row, "next_Id": data.draw(st.sampled_from(keys))} for row in rows]
    parent_rows = [
        {"id": i, "thing_Id": data.draw(st.sampled_from(keys))}
        for i in range(1, data.draw(st.integers(1, 8)) + 1)
    ]
    raw_condition = data.draw(st.sampled_from(READ_CONDITIONS), label="read condition")
    scope = Scope(fields=None, condition=filters.parse(raw_condition, things.kinds))
    reach = Reach(base_reach.relations, base_reach.collection, lambda c: scope)
    async with db.transaction() as conn:
        await conn.execute(parents.table.delete())
        await conn.execute(things.table.delete())
        if thing_rows:
            await conn.execute(things.table.insert().values([_stored(r) for r in thing_rows]))
        await conn.execute(parents.table.insert().values(parent_rows))
    async with db.connect() as conn:
        stored = [dict(r) for r in (await conn.execute(sa.select(things.table))).mappings()]
        readable = filters.to_predicate(scope.condition)
        by_key = {row["id"]: row for row in stored if readable(row)}
        nested = {key: {**row, "next": by_key.get(row["next_Id"])} for key, row in by_key.items()}
        expanded = [{**p, "thing": nested.get(p["thing_Id"])} for p in parent_rows]
        columns = Columns(parents, FULL, reach, db.dialect)
        kinds = kinds_with_paths(parents, FULL, reach, "filter")
        for _ in range(6):
            raw = data.draw(path_trees(stored), label="filter")
            node = filters.parse(raw, parents.kinds, paths=kinds)
            matches = filters.to_predicate(node)
            expected = {p["id"] for p in expanded if matches(p)}
            query = sa.select(parents.table.c.id).where(filters.to_sql(node, columns, db.dialect))
            found = set((await conn.execute(query)).scalars())
            assert found == expected, (
                f"{db.dialect} finds {sorted(found)}, Python {sorted(expected)}\n"
                f"filter: {raw}\nparsed: {node}\nread condition: {raw_condition}\n"
                f"parents: {expanded}"
            )
            share = "none" if not expected else "all" if len(expected) == len(expanded) else "some"
            event(f"a path filter matched {share} of the rows")
