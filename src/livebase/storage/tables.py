"""Building SQLAlchemy tables from field specs, and the DDL that changes them."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Column, Index, MetaData, Table
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from livebase.storage.kinds import KINDS
from livebase.storage.model import FieldSpec


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


def build_table(name: str, fields: dict[str, FieldSpec], metadata: MetaData) -> Table:
    table = Table(name, metadata, *(_column(spec) for spec in fields.values()))
    for spec in fields.values():
        if spec.unique and not spec.primary_key:
            Index(unique_index_name(name, spec.name), table.c[spec.name], unique=True)
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


def _drop_if_there(sync_conn: Any, index: Index) -> None:
    index.drop(sync_conn, checkfirst=True)
