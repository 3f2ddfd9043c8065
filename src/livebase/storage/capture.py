"""Row triggers that write the change log, and telling them who acts.

Every logged table has triggers that insert one :mod:`changelog` entry per
inserted, updated or deleted row, in the writer's transaction: a change and
its entry commit or roll back together, whoever the writer is. Hidden
fields (password hashes, storage keys) are left out of the logged states.

- **PostgreSQL**: one trigger function for every table, ``to_jsonb`` of the
  row minus the hidden columns, so added columns are logged without a new
  trigger; it also ``NOTIFY``s the relay. Who acts comes from the
  transaction's ``livebase.user_id`` setting (``set_config(..., true)``),
  which other writers do not set.
- **SQLite**: three triggers per table listing its columns (SQLite has no
  row-to-JSON function), made again after every schema change. Who acts
  comes from the one-row ``livebase_actor`` table, which livebase sets at the
  start of its write transactions and clears before they commit, so its
  committed value, all another writer can see, is always NULL. Doubles and
  decimals are logged as 18-digit text: SQLite's JSON keeps only 15, and
  SQLite's printf() is not correctly rounded (3.40, at least), so 17 digits,
  enough in theory, came back one ulp off for about 1 double in 400 (most
  beyond 1e100); with 18 none did, in 2 million random doubles.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.storage.model import Collection, FieldKind

NOTIFY_CHANNEL = "livebase_changes"
# SQLite functions take at most 127 arguments: json_object() gets 60 fields at a time.
_PAIRS_PER_OBJECT = 60

_POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION livebase_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    hidden text[] := TG_ARGV[2]::text[];
    quiet text[] := TG_ARGV[3]::text[];
    decimals text[] := TG_ARGV[4]::text[];
    new_state jsonb;
    old_state jsonb;
    field text;
BEGIN
    IF TG_OP <> 'DELETE' THEN new_state := to_jsonb(NEW) - hidden; END IF;
    IF TG_OP <> 'INSERT' THEN old_state := to_jsonb(OLD) - hidden; END IF;
    IF TG_OP = 'UPDATE' AND cardinality(quiet) + cardinality(hidden) > 0
            AND new_state - quiet = old_state - quiet THEN
        RETURN NULL;  -- nothing visible changed but bookkeeping
    END IF;
    -- Decimals as strings: a JSON number would come back a double.
    FOREACH field IN ARRAY decimals LOOP
        IF jsonb_typeof(new_state -> field) = 'number' THEN
            new_state := jsonb_set(new_state, ARRAY[field], to_jsonb(new_state ->> field));
        END IF;
        IF jsonb_typeof(old_state -> field) = 'number' THEN
            old_state := jsonb_set(old_state, ARRAY[field], to_jsonb(old_state ->> field));
        END IF;
    END LOOP;
    INSERT INTO livebase_changes (collection, item_key, action, new_state, old_state, user_id)
    VALUES (
        TG_ARGV[0],
        COALESCE(new_state, old_state) ->> TG_ARGV[1],
        CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END,
        new_state,
        old_state,
        NULLIF(current_setting('livebase.user_id', true), '')
    );
    PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    RETURN NULL;
END
$$"""

_SQLITE_ACTIONS = {
    "create": ("INSERT", "NEW"),
    "update": ("UPDATE", "NEW"),
    "delete": ("DELETE", "OLD"),
}


async def install(conn: AsyncConnection) -> None:
    """What every logged table's triggers share (PostgreSQL's trigger function)."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(_POSTGRES_FUNCTION)


async def capture(conn: AsyncConnection, collection: Collection) -> None:
    """(Re)create ``collection``'s triggers to match its current fields."""
    await conn.run_sync(_capture, collection)


async def release(conn: AsyncConnection, collection: Collection) -> None:
    """Drop ``collection``'s triggers (dropping the table drops them too)."""
    await conn.run_sync(_release, collection.name)


def _capture(sync_conn: SyncConnection, collection: Collection) -> None:
    _release(sync_conn, collection.name)
    quote = sync_conn.dialect.identifier_preparer.quote
    statements = (
        _postgres_triggers(collection, quote)
        if sync_conn.dialect.name == "postgresql"
        else _sqlite_triggers(collection, quote)
    )
    for statement in statements:
        sync_conn.exec_driver_sql(statement)


def _release(sync_conn: SyncConnection, table: str) -> None:
    quote = sync_conn.dialect.identifier_preparer.quote
    if sync_conn.dialect.name == "postgresql":
        sync_conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS livebase_log ON {quote(table)}")
        return
    for action in _SQLITE_ACTIONS:
        sync_conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(_trigger_name(table, action))}")


def _postgres_triggers(collection: Collection, quote: Any) -> list[str]:
    hidden = _text_array(spec.name for spec in collection.fields.values() if spec.hidden)
    quiet = _text_array(spec.name for spec in collection.fields.values() if spec.quiet)
    decimals = _text_array(
        spec.name for spec in collection.fields.values() if spec.kind is FieldKind.DECIMAL
    )
    arguments = ", ".join(
        _literal(value)
        for value in (collection.name, collection.primary_key, hidden, quiet, decimals)
    )
    return [
        f"CREATE TRIGGER livebase_log AFTER INSERT OR UPDATE OR DELETE ON {quote(collection.name)}"
        f" FOR EACH ROW EXECUTE FUNCTION livebase_log_change({arguments})"
    ]


def _sqlite_triggers(collection: Collection, quote: Any) -> list[str]:
    statements = []
    for action, (operation, row) in _SQLITE_ACTIONS.items():
        state = _sqlite_state(collection, row, quote)
        new = state if row == "NEW" else "NULL"
        old = "NULL" if action == "create" else _sqlite_state(collection, "OLD", quote)
        key = f"CAST({row}.{quote(collection.primary_key)} AS TEXT)"
        when = _sqlite_changed(collection, quote) if action == "update" else ""
        statements.append(
            f"CREATE TRIGGER {quote(_trigger_name(collection.name, action))}"
            f" AFTER {operation} ON {quote(collection.name)}{when} BEGIN"
            " INSERT INTO livebase_changes"
            " (collection, item_key, action, new_state, old_state, user_id, changed_at)"
            f" VALUES ({_literal(collection.name)}, {key}, '{action}', {new}, {old},"
            " (SELECT user_id FROM livebase_actor WHERE slot = 1),"
            " strftime('%Y-%m-%d %H:%M:%f', 'now'));"
            " END"
        )
    return statements


def _sqlite_state(collection: Collection, row: str, quote: Any) -> str:
    pairs = [
        f"{_literal(spec.name)}, {_sqlite_value(spec.kind, f'{row}.{quote(spec.name)}')}"
        for spec in collection.fields.values()
        if not spec.hidden
    ]
    objects = [
        f"json_object({', '.join(pairs[i : i + _PAIRS_PER_OBJECT])})"
        for i in range(0, len(pairs), _PAIRS_PER_OBJECT)
    ] or ["json_object()"]
    # json_patch leaves out the null values of the objects after the first:
    # restoring a state reads a missing field as null.
    state = objects[0]
    for more in objects[1:]:
        state = f"json_patch({state}, {more})"
    return state


def _sqlite_value(kind: FieldKind, column: str) -> str:
    if kind in (FieldKind.DOUBLE, FieldKind.DECIMAL):
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE printf('%!.18g', {column}) END"
    if kind is FieldKind.JSON:
        return f"CASE WHEN json_valid({column}) THEN json({column}) ELSE {column} END"
    return column


def _sqlite_changed(collection: Collection, quote: Any) -> str:
    """For a table with quiet or hidden fields: log an update only if a visible,
    not quiet, field changed."""
    specs = collection.fields.values()
    if not any(spec.quiet or spec.hidden for spec in specs):
        return ""
    same = " AND ".join(
        f"NEW.{quote(spec.name)} IS OLD.{quote(spec.name)}"
        for spec in specs
        if not (spec.quiet or spec.hidden)
    )
    return f" WHEN NOT ({same})" if same else " WHEN 0"


def _trigger_name(table: str, action: str) -> str:
    return f"livebase_log_{table}_{action}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text array literal: ``{"a","b"}``."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"
