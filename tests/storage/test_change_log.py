"""The change log at the storage level: positions in commit order, and who acted.

The triggers are those of ``users`` (a system table every database has),
written through plain connections of the database driver: what any other
writer of the database does.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from livebase.storage import capture
from livebase.storage.changelog import ChangeLog
from livebase.storage.database import Database
from livebase.storage.migrations import migrate
from livebase.storage.system import SYSTEM_COLLECTIONS

INSERT_USER = "INSERT INTO users (id, email, role) VALUES ({}, {}, 'user')"


@pytest.fixture
async def logged_db(database_url: str) -> AsyncIterator[Database]:
    """The system tables, with ``users`` logged."""
    db = Database(database_url)
    try:
        await migrate(db)
        async with db.transaction() as conn:
            await capture.install(conn)
            await capture.capture(conn, SYSTEM_COLLECTIONS["users"])
        yield db
    finally:
        await db.dispose()


async def _entries(db: Database) -> list[tuple[Any, ...]]:
    """(id order, position, key, user) of every entry; SQLite's id is its position."""
    order = "position" if db.is_sqlite else "id"
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT {order}, position, item_key, user_id FROM livebase_changes ORDER BY 1")
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_positions_follow_commit_order_not_the_order_entries_were_written(
    logged_db: Database, database_url: str
) -> None:
    """PostgreSQL: the first to write commits last; its entry's position comes last.

    (On SQLite one transaction writes at a time, so the row id already is commit order.)
    """
    early, late = str(uuid.uuid4()), str(uuid.uuid4())
    first = await asyncpg.connect(database_url)
    second = await asyncpg.connect(database_url)
    try:
        writing_first = first.transaction()
        await writing_first.start()
        await first.execute(INSERT_USER.format("$1", "$2"), early, "early@example.com")
        async with second.transaction():
            await second.execute(INSERT_USER.format("$1", "$2"), late, "late@example.com")
        # The later writer has committed; its entry is published before the first's exists.
        log = ChangeLog(logged_db)
        assert [entry.key for entry in await log.after(0)] == [late]
        await writing_first.commit()
    finally:
        await first.close()
        await second.close()

    (id_early, pos_early, key_early, _), (id_late, pos_late, key_late, _) = await _entries(
        logged_db
    )
    assert (key_early, key_late) == (early, late) and id_early < id_late
    assert pos_late < pos_early
    # A reader that has seen the late entry finds the early one after it: nothing is skipped.
    assert [entry.key for entry in await log.after(pos_late)] == [early]


async def test_a_writer_after_livebase_names_nobody_and_livebase_names_its_actor(
    logged_db: Database, database_url: str
) -> None:
    """livebase sets who acts for its own transaction only: another writer's entry,
    committed right after, names nobody (SQLite: the actor row is cleared before commit;
    PostgreSQL: the setting is transaction-local)."""
    actor = str(uuid.uuid4())
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    async with logged_db.transaction(actor) as conn:
        await conn.execute(
            text("INSERT INTO users (id, email, role) VALUES (:id, 'ours@example.com', 'user')"),
            {"id": ours},
        )
    if logged_db.is_sqlite:
        path = make_url(database_url).database
        assert path is not None
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("PRAGMA busy_timeout = 10000")
            assert other.execute("SELECT user_id FROM livebase_actor").fetchall() == [(None,)]
            other.execute(INSERT_USER.format("?", "?"), (theirs, "theirs@example.com"))
        finally:
            other.close()
    else:
        other_pg = await asyncpg.connect(database_url)
        try:
            await other_pg.execute(INSERT_USER.format("$1", "$2"), theirs, "theirs@example.com")
        finally:
            await other_pg.close()
    # And livebase's own transaction without an actor names nobody either.
    async with logged_db.transaction() as conn:
        await conn.execute(
            text("UPDATE users SET email = 'ours2@example.com' WHERE id = :id"), {"id": ours}
        )
    entries = await _entries(logged_db)
    assert [(key, user) for _, _, key, user in entries] == [
        (ours, actor),
        (theirs, None),
        (ours, None),
    ]
    positions = [position for _, position, _, _ in entries]
    assert None not in positions and positions == sorted(set(positions))
