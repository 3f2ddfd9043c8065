"""The SQLite adapter (storage/sqlite.py): whole statements in one trip, and pool check-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from livebase.storage.database import Database

_meta = MetaData()
_things = Table(
    "things",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), unique=True),
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    async with database.transaction() as conn:
        await conn.run_sync(_meta.create_all)
    yield database
    await database.dispose()


async def test_rows_counts_and_keys_come_back(db: Database) -> None:
    async with db.transaction() as conn:
        result = await conn.execute(insert(_things).values(name="a"))
        assert result.inserted_primary_key == (1,)
        await conn.execute(insert(_things), [{"name": "b"}, {"name": "c"}])  # executemany
        returned = await conn.execute(insert(_things).values(name="d").returning(_things.c.id))
        assert returned.scalar_one() == 4
        changed = await conn.execute(update(_things).where(_things.c.id > 2).values(name=None))
        assert changed.rowcount == 2
    async with db.connect() as conn:
        rows = (await conn.execute(select(_things).order_by(_things.c.id))).all()
        assert [tuple(row) for row in rows] == [(1, "a"), (2, "b"), (3, None), (4, None)]
        assert (await conn.execute(text("SELECT 1 WHERE 0"))).first() is None


async def test_errors_are_sqlalchemy_errors_and_leave_nothing_behind(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(insert(_things).values(name="x"))
            await conn.execute(insert(_things).values(name="x"))
    async with db.connect() as conn:
        assert (await conn.execute(select(_things))).all() == []


async def test_an_uncommitted_write_is_rolled_back_when_the_connection_goes_back(
    db: Database,
) -> None:
    def write_behind_sqlalchemys_back(sync_conn: Any) -> bool:
        raw = sync_conn.connection.dbapi_connection
        cursor = raw.cursor()
        cursor.execute("INSERT INTO things (name) VALUES ('open')")
        cursor.close()
        return bool(raw.in_transaction)

    async with db.engine.connect() as conn:
        # A transaction SQLAlchemy does not know of: only the pool's check-in can end it.
        assert await conn.run_sync(write_behind_sqlalchemys_back)
    for _ in range(3):  # whichever pooled connection comes next: no write lock left
        async with db.transaction() as conn:
            await conn.execute(insert(_things).values(name=None))
    async with db.connect() as conn:
        names = (await conn.execute(select(_things.c.name))).scalars().all()
        assert names == [None, None, None]
