"""The change log: one entry per changed row, written by the database itself.

Row triggers on every logged table (:mod:`capture` generates them) insert
an entry in the same transaction as the change, whoever writes: livebase,
``psql``, ``sqlite3``, a migration or another service. An entry holds the
collection, the item's key, the action, the state after and before (as
JSON), who acted when livebase wrote it, and when.

**Positions** are the order in which entries are published, and clients
see them as offsets: commit order, so that a reader that has seen position
*p* will never see a smaller one appear. On SQLite writes are serialised, so
the row id is commit order already (a new row's id is the largest one plus
one; pruning never deletes the newest entry, so ids never go back). On
PostgreSQL ids come from a sequence before commit, so a later id may commit
first; there a deferred trigger gives each entry its position at commit,
from a second sequence, under a transaction-scoped advisory lock: the lock
is released only once the transaction is visible as committed, so positions
are handed out in commit order. It orders only the commits of transactions
that changed logged rows, and only for the moment of their commit.

**The relay's cursor** (``published``) is the last position published, kept
in ``livebase_relay``; entries after it are published at start-up, so an
entry committed just before a crash is still published.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Integer, column, func, select, table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase import encoding
from livebase.storage.database import AdvisoryLock, Database
from livebase.storage.kinds import DECIMAL_SCALE, FieldKind, parse_datetime
from livebase.storage.model import Collection, FieldSpec
from livebase.storage.sqlite_insert import RawRead
from livebase.storage.types import UTCDateTime

ACTIONS = ("create", "update", "delete")
BATCH = 500  # entries read at a time
_CHANGED_AT = UTCDateTime()


@dataclass(frozen=True)
class Entry:
    """One logged change, as stored (states are the JSON the trigger wrote)."""

    position: int
    collection: str
    key: str
    action: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None
    user_id: str | None
    changed_at: datetime


@dataclass(frozen=True)
class Heading:
    """An entry without its states: what changed, where, by whom and when."""

    position: int
    collection: str
    key: str
    action: str
    user_id: str | None
    changed_at: datetime


_SQLITE_TABLES = (
    """CREATE TABLE IF NOT EXISTS livebase_changes (
        position INTEGER PRIMARY KEY,
        collection TEXT NOT NULL,
        item_key TEXT NOT NULL,
        action TEXT NOT NULL,
        new_state TEXT,
        old_state TEXT,
        user_id TEXT,
        changed_at TEXT NOT NULL
    )""",
    # Who acts in livebase's current write transaction: set at its start and
    # cleared before its commit, so the committed value is always NULL and
    # other writers' entries say nobody.
    """CREATE TABLE IF NOT EXISTS livebase_actor (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        user_id TEXT
    )""",
    "INSERT OR IGNORE INTO livebase_actor (slot, user_id) VALUES (1, NULL)",
    """CREATE TABLE IF NOT EXISTS livebase_relay (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        published INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO livebase_relay (slot, published) VALUES (1, 0)",
)

POSITION_LOCK = int(AdvisoryLock.CHANGE_LOG_POSITIONS)

_POSTGRES_TABLES = (
    """CREATE TABLE IF NOT EXISTS livebase_changes (
        id BIGSERIAL PRIMARY KEY,
        position BIGINT UNIQUE,
        collection TEXT NOT NULL,
        item_key TEXT NOT NULL,
        action TEXT NOT NULL,
        new_state JSONB,
        old_state JSONB,
        user_id TEXT,
        changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    )""",
    "CREATE SEQUENCE IF NOT EXISTS livebase_positions",
    f"""CREATE OR REPLACE FUNCTION livebase_position_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({POSITION_LOCK});
        UPDATE livebase_changes SET position = nextval('livebase_positions') WHERE id = NEW.id;
        RETURN NULL;
    END
    $$""",
    "DROP TRIGGER IF EXISTS livebase_position ON livebase_changes",
    """CREATE CONSTRAINT TRIGGER livebase_position AFTER INSERT ON livebase_changes
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION livebase_position_change()""",
    """CREATE TABLE IF NOT EXISTS livebase_relay (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        published BIGINT NOT NULL
    )""",
    """INSERT INTO livebase_relay (slot, published) VALUES (1, 0)
        ON CONFLICT (slot) DO NOTHING""",
)


async def create_tables(conn: AsyncConnection) -> None:
    """The change log's tables (a system migration step)."""
    statements = _SQLITE_TABLES if conn.dialect.name == "sqlite" else _POSTGRES_TABLES
    for statement in statements:
        await conn.exec_driver_sql(statement)


_READ = {
    "sqlite": """SELECT position, collection, item_key, action, new_state, old_state,
        user_id, changed_at FROM livebase_changes
        WHERE position > :after ORDER BY position LIMIT :limit""",
    "postgresql": """SELECT position, collection, item_key, action, new_state::text,
        old_state::text, user_id, changed_at FROM livebase_changes
        WHERE position > :after ORDER BY position LIMIT :limit""",
}
# The same reads for the drivers themselves (sqlite3's ? and asyncpg's $n parameters).
_SQLITE_READ = _READ["sqlite"].replace(":after", "?").replace(":limit", "?")
_POSTGRES_READ = _READ["postgresql"].replace(":after", "$1").replace(":limit", "$2")


class ChangeLog:
    """Reading the log in position order, and the relay's cursor.

    The relay reads after every write, so :meth:`after` skips SQLAlchemy (a
    checkout, a statement and a rollback cost ~0.6 ms of CPU, twice a lone
    create's): on SQLite a connection of its own in one thread of its own,
    one trip per read; on PostgreSQL the relay's own connection (``postgres``,
    set while it leads).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.postgres: Any = None  # an asyncpg connection, while the relay leads
        path = db.sqlite_file
        self._sqlite = _SQLiteReader(path) if path is not None else None

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()

    async def published(self) -> int:
        """The last position the relay published (its cursor)."""
        async with self._db.connect() as conn:
            value = await conn.scalar(text("SELECT published FROM livebase_relay WHERE slot = 1"))
        return int(value or 0)

    async def save_published(self, position: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                text("UPDATE livebase_relay SET published = :p WHERE slot = 1 AND published < :p"),
                {"p": position},
            )

    def read_after(self, position: int) -> RawRead:
        """SQLite: :meth:`after` as a read to run in a write's own trip (lone creates)."""
        return _SQLITE_READ, (position, BATCH)

    def entries(self, rows: list[Any]) -> list[Entry]:
        """Rows of :meth:`read_after` as entries."""
        return [_entry(row) for row in rows]

    async def after(self, position: int, limit: int = BATCH) -> list[Entry]:
        """The positioned entries after ``position``, in order, at most ``limit``."""
        if self.postgres is not None:
            rows = await self.postgres.fetch(_POSTGRES_READ, position, limit)
            return [_entry(row) for row in rows]
        return await self.read(position, limit)

    async def read(self, position: int, limit: int = BATCH) -> list[Entry]:
        """:meth:`after`, for readers other than the relay (a recovery's replay): on
        PostgreSQL through the pool, as the relay's connection serves one query at a time."""
        if self._sqlite is not None:
            return [_entry(row) for row in await self._sqlite.read(position, limit)]
        async with self._db.connect() as conn:
            result = await conn.execute(
                text(_READ[self._db.dialect]), {"after": position, "limit": limit}
            )
            return [_entry(row) for row in result.all()]

    async def last_position(self) -> int:
        async with self._db.connect() as conn:
            return await newest_position(conn)

    async def bounds(self) -> tuple[int, int]:
        """The oldest and newest positions the log holds (0, 0 when empty)."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT min(position), max(position) FROM livebase_changes")
                )
            ).one()
        return int(row[0] or 0), int(row[1] or 0)

    async def tail(self, after: int, limit: int) -> list[Heading]:
        """The newest entries after ``after``, at most ``limit`` of them, oldest first,
        without their states (the inspector's event tail: a burst larger than
        ``limit`` shows its newest entries)."""
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        """SELECT position, collection, item_key, action, user_id, changed_at
                        FROM livebase_changes WHERE position > :after
                        ORDER BY position DESC LIMIT :limit"""
                    ),
                    {"after": after, "limit": limit},
                )
            ).all()
        return [_heading(row) for row in reversed(rows)]

    async def prune(self, before: datetime, published: int, limit: int = 1000) -> int:
        """Delete up to ``limit`` of the oldest entries, if published and older than
        ``before``; how many went. The newest entry always stays (SQLite's next
        position is the largest plus one). Entries are in commit order, so the
        oldest come first and no index on their time is needed: none of the
        next ``limit`` old enough means none is."""
        stored = _CHANGED_AT.process_bind_param(before, self._db.engine.dialect)
        async with self._db.transaction() as conn:
            result = await conn.execute(
                text(
                    """DELETE FROM livebase_changes WHERE position IN (
                        SELECT position FROM livebase_changes
                        WHERE position <= :published
                          AND position < (SELECT max(position) FROM livebase_changes)
                        ORDER BY position LIMIT :limit
                    ) AND changed_at < :before"""
                ),
                {"published": published, "before": stored, "limit": limit},
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def figures(self) -> tuple[int, int, int]:
        """Its entries, newest position and the relay's cursor, in one query."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*), max(position),"
                        " (SELECT published FROM livebase_relay WHERE slot = 1)"
                        " FROM livebase_changes"
                    )
                )
            ).one()
        return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)

    async def size(self) -> int:
        async with self._db.connect() as conn:
            value = await conn.scalar(text("SELECT count(*) FROM livebase_changes"))
        return int(value or 0)


class _SQLiteReader:
    """A read-only connection to the log, used in one thread of its own."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livebase-log")
        self._connection: sqlite3.Connection | None = None  # opened in that thread

    async def read(self, position: int, limit: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._read, position, limit)

    def _read(self, position: int, limit: int) -> list[Any]:
        if self._connection is None:
            self._connection = sqlite3.connect(self._path)
            self._connection.execute("PRAGMA busy_timeout=10000")
        return self._connection.execute(_SQLITE_READ, (position, limit)).fetchall()

    def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        self._thread.submit(close)
        self._thread.shutdown(wait=True)


# -- an item's version: the id of its newest entry ----------------------------------------

_ITEM_INDEX = {
    "sqlite": "CREATE INDEX IF NOT EXISTS livebase_changes_item"
    " ON livebase_changes (collection, item_key, position)",
    "postgresql": "CREATE INDEX IF NOT EXISTS livebase_changes_item"
    " ON livebase_changes (collection, item_key, id)",
}
# SQLite's position is its row id; PostgreSQL's entries have an id from insertion on.
_ENTRY_ID = {"sqlite": "position", "postgresql": "id"}
_changes = table("livebase_changes", column("collection"), column("item_key"))
# The newest entry of the current transaction's session: a create's own, read right after
# it (a create is always logged). SQLite's writes are serialised, so its newest entry is
# the transaction's; PostgreSQL's currval is the session's last id.
_NEWEST_OWN_ENTRY = {
    "sqlite": "SELECT max(position) FROM livebase_changes",
    "postgresql": "SELECT currval('livebase_changes_id_seq')",
}


async def create_item_index(conn: AsyncConnection) -> None:
    """The index that finds an item's newest entry (a system migration step)."""
    await conn.exec_driver_sql(_ITEM_INDEX[conn.dialect.name])


def version_of(dialect: str, collection: str, key: Any) -> ColumnElement[Any]:
    """The version of item ``key`` of ``collection``, as a scalar subquery (0 if it has
    no entry: the log was pruned, or the row predates it).

    An item's version is the id of its newest change log entry, so any committed change
    of it, whoever wrote it, gives it a new one. Ids are not positions: PostgreSQL gives a
    position only at commit, an id at the change itself. The ids of one item's entries
    still grow in commit order, because a writer holds the row's lock (or, for a new
    key, the unique index's) from its change to its commit.
    """
    entry_id = column(_ENTRY_ID[dialect], Integer)
    newest = (
        select(func.max(entry_id))
        .select_from(_changes)
        .where(_changes.c.collection == collection, _changes.c.item_key == str(key))
        .scalar_subquery()
    )
    return func.coalesce(newest, 0)


async def item_version(conn: AsyncConnection, collection: str, key: Any) -> int:
    """:func:`version_of` as ``conn`` sees it: in a write transaction that holds the
    item's row lock, exactly the version its commit will leave."""
    return int(await conn.scalar(select(version_of(conn.dialect.name, collection, key))) or 0)


def newest_own_entry(dialect: str) -> str:
    """SQL reading the id of the entry a create just logged, in its own transaction."""
    return _NEWEST_OWN_ENTRY[dialect]


async def newest_position(conn: AsyncConnection) -> int:
    """The newest position ``conn`` sees. Positions are handed out in commit order,
    so in a snapshot (``Database.snapshot``) every entry up to it is visible, and
    every row it changed."""
    value = await conn.scalar(text("SELECT max(position) FROM livebase_changes"))
    return int(value or 0)


def _entry(row: Any) -> Entry:
    position, collection, key, action, new, old, user_id, changed_at = row
    if isinstance(changed_at, str):  # SQLite: the trigger's text, in UTC
        changed_at = parse_datetime(changed_at)
    return Entry(
        position=int(position),
        collection=collection,
        key=str(key),
        action=action,
        new=encoding.loads(new) if new is not None else None,
        old=encoding.loads(old) if old is not None else None,
        user_id=user_id,
        changed_at=changed_at.astimezone(UTC),
    )


def _heading(row: Any) -> Heading:
    position, collection, key, action, user_id, changed_at = row
    if isinstance(changed_at, str):
        changed_at = parse_datetime(changed_at)
    return Heading(
        position=int(position),
        collection=collection,
        key=str(key),
        action=action,
        user_id=user_id,
        changed_at=changed_at.astimezone(UTC),
    )


# -- logged states back to the values a read returns -------------------------------------


def restore(collection: Collection, state: dict[str, Any]) -> dict[str, Any]:
    """A logged state as the item a read of the row would have returned (hidden
    fields aside): the trigger's JSON turned back into each field kind's type."""
    item = {}
    for spec in collection.fields.values():
        if spec.hidden:
            continue
        value = state.get(spec.name)
        item[spec.name] = None if value is None else _restorers[spec.kind](value, spec)
    return item


def _as_is(value: Any, spec: FieldSpec) -> Any:
    return value


def _decimal(value: Any, spec: FieldSpec) -> Decimal:
    """Text from either trigger, to the field's scale: PostgreSQL logs a numeric's
    exact digits; SQLite a REAL's 18 digits, rounded here to the scale as
    SQLAlchemy formats the REAL it reads."""
    scale = spec.scale if spec.scale is not None else DECIMAL_SCALE
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-scale))


_restorers: dict[FieldKind, Callable[[Any, FieldSpec], Any]] = {
    FieldKind.STRING: _as_is,
    FieldKind.TEXT: _as_is,
    FieldKind.UUID: _as_is,
    FieldKind.INTEGER: _as_is,
    FieldKind.BIGINT: _as_is,
    FieldKind.JSON: _as_is,
    FieldKind.DOUBLE: lambda value, spec: float(value),
    FieldKind.DECIMAL: _decimal,
    FieldKind.BOOLEAN: lambda value, spec: bool(value),
    FieldKind.DATE: lambda value, spec: date.fromisoformat(value),
    FieldKind.DATETIME: lambda value, spec: parse_datetime(value),
}
