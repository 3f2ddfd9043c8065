"""Versioned, idempotent creation and upgrade of the system tables at start-up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.storage import capture, changelog, socket_sessions, system
from livebase.storage.database import AdvisoryLock, Database
from livebase.storage.types import utcnow

_log = logging.getLogger("livebase.migrations")

_meta = Table(
    "livebase_meta",
    MetaData(),
    Column("key", String(50), primary_key=True),
    Column("value", Integer, nullable=False),
)

BUILTIN_ROLES = ("administrator", "user", "public")


async def _v1_system_tables(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync_conn: system.metadata.create_all(sync_conn))
    now = utcnow()
    for name in BUILTIN_ROLES:
        await conn.execute(
            insert(system.roles).values(
                id=_builtin_role_id(name), name=name, description=f"built-in {name}", createdAt=now
            )
        )


def _builtin_role_id(name: str) -> str:
    # Stable ids so that the built-in roles are the same on every node.
    numbers = {"administrator": 1, "user": 2, "public": 3}
    return f"00000000-0000-4000-8000-{numbers[name]:012d}"


async def _v2_change_log(conn: AsyncConnection) -> None:
    await changelog.create_tables(conn)
    await capture.install(conn)


async def _v3_socket_sessions(conn: AsyncConnection) -> None:
    await socket_sessions.create_table(conn)


async def _v4_item_versions(conn: AsyncConnection) -> None:
    await changelog.create_item_index(conn)


Migration = Callable[[AsyncConnection], Awaitable[None]]
MIGRATIONS: list[Migration] = [
    _v1_system_tables,
    _v2_change_log,
    _v3_socket_sessions,
    _v4_item_versions,
]


MIGRATION_LOCK = AdvisoryLock.MIGRATION


async def migrate(db: Database) -> int:
    """Bring the system tables to the newest version; returns that version."""
    async with db.transaction() as conn:
        await db.serialize(conn, MIGRATION_LOCK)
        await conn.run_sync(lambda sync_conn: _meta.create(sync_conn, checkfirst=True))
        current = await conn.scalar(select(_meta.c.value).where(_meta.c.key == "schema_version"))
        if current is None:
            await conn.execute(insert(_meta).values(key="schema_version", value=0))
            current = 0
        for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
            _log.info("applying system migration %d (%s)", version, step.__name__)
            await step(conn)
            await conn.execute(
                update(_meta).where(_meta.c.key == "schema_version").values(value=version)
            )
        return len(MIGRATIONS)
