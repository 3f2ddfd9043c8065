"""The SQLite adapter (storage/sqlite.py): whole statements in one trip, and pool check-in."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from livebase.storage.database import Database
from tests.storage.conftest import THINGS


async def test_rows_counts_and_keys_come_back(db: Database) -> None:
    async with db.transaction() as conn:
        result = await conn.execute(insert(THINGS).values(name="a"))
        assert result.inserted_primary_key == (1,)
        await conn.execute(insert(THINGS), [{"name": "b"}, {"name": "c"}])  # executemany
        returned = await conn.execute(insert(THINGS).values(name="d").returning(THINGS.c.id))
        assert returned.scalar_one() == 4
        changed = await conn.execute(update(THINGS).where(THINGS.c.id > 2).values(name=None))
        assert changed.rowcount == 2
    async with db.connect() as conn:
        columns = (THINGS.c.id, THINGS.c.name)
        rows = (await conn.execute(select(*columns).order_by(THINGS.c.id))).all()
        assert [tuple(row) for row in rows] == [(1, "a"), (2, "b"), (3, None), (4, None)]
        assert (await conn.execute(text("SELECT 1 WHERE 0"))).first() is None


async def test_errors_are_sqlalchemy_errors_and_leave_nothing_behind(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(insert(THINGS).values(name="x"))
            await conn.execute(insert(THINGS).values(name="x"))
    async with db.connect() as conn:
        assert (await conn.execute(select(THINGS))).all() == []


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
            await conn.execute(insert(THINGS).values(name=None))
    async with db.connect() as conn:
        names = (await conn.execute(select(THINGS.c.name))).scalars().all()
        assert names == [None, None, None]
