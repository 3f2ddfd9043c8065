"""A SQLite file database with one small table, for the storage layer's own tests.

The database is made both ways a lone insert can go: in one trip to the
SQLite thread (the default) and on the event loop (``SQLITE_LOOP_WRITES``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from livebase.storage.database import Database

_meta = MetaData()
THINGS = Table(
    "things",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), unique=True),
    Column("body", Text),
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


@pytest.fixture
async def db(path: Path, loop_writes: bool) -> AsyncIterator[Database]:
    """The database at ``path`` with ``THINGS`` created."""
    database = Database(f"sqlite:///{path}", loop_writes=loop_writes)
    async with database.transaction() as conn:
        await conn.run_sync(_meta.create_all)
    yield database
    await database.dispose()
