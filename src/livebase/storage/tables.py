"""Building SQLAlchemy tables from field specs, and the DDL that changes them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ForeignKeyConstraint, Index, MetaData, Table
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import TypeEngine

from livebase.storage.kinds import KINDS
from livebase.storage.model import FieldSpec, ForeignKey


def column_type(spec: FieldSpec) -> TypeEngine[Any]:
    return KINDS[spec.kind].column(spec)


def _column(spec: FieldSpec) -> Column[Any]:
    # NOT NULL, defaults and validation are enforced by the items service so
    # that a schema change never needs a table rebuild; uniqueness is a real
    # index because only the database can enforce it under concurrency.
    if spec.primary_key:
        return Column(
            spec.name,
            column_type(spec),
            primary_key=True,
            autoincrement=spec.auto_increment,
        )
    return Column(spec.name, column_type(spec), nullable=True)


def unique_index_name(table: str, field: str) -> str:
    """A name no other (table, field) pair gets, within PostgreSQL's 63 bytes.

    Index names share one namespace per database: ``uq_{table}_{field}``
    cut at 63 made two long fields of one table, or ``a_b.c`` and ``a.b_c``,
    collide.
    """
    digest = hashlib.sha256(f"{table}\0{field}".encode()).hexdigest()[:12]
    return f"uq_{table[:20]}_{field[:20]}_{digest}"


def _legacy_unique_index_name(table: str, field: str) -> str:
    # What databases created before unique_index_name hashed still hold.
    return f"uq_{table}_{field}"[:63]


def index_name(table: str, fields: Sequence[str]) -> str:
    """The name of the (plain) index of a foreign key, or of a junction's pair of keys."""
    digest = hashlib.sha256("\0".join((table, *fields)).encode()).hexdigest()[:12]
    return f"ix_{table[:20]}_{'_'.join(fields)[:20]}_{digest}"


def build_table(
    name: str,
    fields: dict[str, FieldSpec],
    metadata: MetaData,
    foreign_keys: Sequence[ForeignKey] = (),
    unique_together: Sequence[tuple[str, ...]] = (),
) -> Table:
    """The table of a collection, with its unique and foreign key indexes.

    A foreign key's target table usually lives in another ``MetaData`` (one
    per collection, see ``services/registry.py``): a stub of its primary key
    stands for it here, enough for SQLAlchemy to write ``REFERENCES``.
    """
    table = Table(name, metadata, *(_column(spec) for spec in fields.values()))
    for spec in fields.values():
        if spec.unique and not spec.primary_key:
            Index(unique_index_name(name, spec.name), table.c[spec.name], unique=True)
    for key in foreign_keys:
        if key.target not in metadata.tables:
            target_type = column_type(fields[key.field])
            Table(key.target, metadata, Column(key.target_field, target_type, primary_key=True))
        table.append_constraint(
            ForeignKeyConstraint(
                [key.field], [f"{key.target}.{key.target_field}"], ondelete=key.on_delete.value
            )
        )
        if not fields[key.field].unique:
            Index(index_name(name, [key.field]), table.c[key.field])
    for together in unique_together:
        Index(index_name(name, together), *(table.c[f] for f in together), unique=True)
    return table


async def create_table(conn: AsyncConnection, table: Table) -> None:
    await conn.run_sync(lambda sync_conn: table.create(sync_conn))


async def drop_table(conn: AsyncConnection, table: Table) -> None:
    await conn.run_sync(lambda sync_conn: table.drop(sync_conn))


def _quote(conn: AsyncConnection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


async def add_column(conn: AsyncConnection, table: Table, spec: FieldSpec) -> None:
    """``ALTER TABLE ... ADD COLUMN`` (names are validated identifiers, then quoted)."""
    column_sql = column_type(spec).compile(dialect=conn.dialect)
    await conn.exec_driver_sql(
        f"ALTER TABLE {_quote(conn, table.name)} ADD COLUMN {_quote(conn, spec.name)} {column_sql}"
    )


async def add_foreign_key(conn: AsyncConnection, table: Table, key: ForeignKey) -> None:
    """Add ``key``'s column (NULL in every row), its constraint and its index.

    ``table`` is the collection's table as it will be (with the column and
    its index). ``ADD COLUMN ... REFERENCES`` works on both databases (on
    SQLite for a column whose default is NULL).
    """
    quote = conn.dialect.identifier_preparer.quote
    column_sql = table.c[key.field].type.compile(dialect=conn.dialect)
    await conn.exec_driver_sql(
        f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(key.field)} {column_sql}"
        f" REFERENCES {quote(key.target)} ({quote(key.target_field)})"
        f" ON DELETE {key.on_delete.value}"
    )
    for index in table.indexes:
        if [c.name for c in index.columns] == [key.field]:
            await conn.run_sync(_create_index, index)


async def drop_foreign_key(conn: AsyncConnection, table: Table, field: str) -> None:
    """Drop the foreign key column ``field``; ``table`` is the table as it will be, without it.

    PostgreSQL drops the column's constraint and index with it. SQLite
    cannot drop a column a foreign key uses: the table is rebuilt (new table,
    rows copied, old one dropped, new one renamed, indexes made again), in a
    transaction of :meth:`Database.rebuilding`, whose foreign keys are off so
    that dropping the old table deletes no row of the tables pointing at it.
    The copy's table has no triggers: the change log sees nothing; the caller
    makes the triggers again (``capture.capture``).
    """
    if conn.dialect.name != "sqlite":
        await drop_column(conn, table, field)
        return
    quote = conn.dialect.identifier_preparer.quote
    name, copy = quote(table.name), quote(f"{table.name}__rebuild")
    create = str(CreateTable(table).compile(dialect=conn.dialect)).strip()
    prefix = f"CREATE TABLE {name} "
    assert create.startswith(prefix), create
    await conn.exec_driver_sql(f"CREATE TABLE {copy} " + create[len(prefix) :])
    columns = ", ".join(quote(c.name) for c in table.columns)
    await conn.exec_driver_sql(f"INSERT INTO {copy} ({columns}) SELECT {columns} FROM {name}")
    await conn.exec_driver_sql(f"DROP TABLE {name}")
    await conn.exec_driver_sql(f"ALTER TABLE {copy} RENAME TO {name}")
    for index in table.indexes:
        await conn.run_sync(_create_index, index)


async def drop_column(conn: AsyncConnection, table: Table, name: str) -> None:
    await conn.exec_driver_sql(
        f"ALTER TABLE {_quote(conn, table.name)} DROP COLUMN {_quote(conn, name)}"
    )


async def create_unique_index(conn: AsyncConnection, table: Table, field: str) -> None:
    index = Index(unique_index_name(table.name, field), table.c[field], unique=True)
    await conn.run_sync(lambda sync_conn: index.create(sync_conn))


async def drop_unique_index(conn: AsyncConnection, table: Table, field: str) -> None:
    names = (unique_index_name(table.name, field), _legacy_unique_index_name(table.name, field))
    for name in names:
        index = Index(name, table.c[field], unique=True)
        await conn.run_sync(_drop_if_there, index)


def _create_index(sync_conn: Any, index: Index) -> None:
    index.create(sync_conn)


def _drop_if_there(sync_conn: Any, index: Index) -> None:
    index.drop(sync_conn, checkfirst=True)
