"""A SQLite file database with one small table, for the storage layer's own tests.

The database is made both ways a lone insert can go: in one trip to the
SQLite thread (the default) and on the event loop (``SQLITE_LOOP_WRITES``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from livebase.storage import database as database_module
from livebase.storage.database import Database
from livebase.storage.sqlite_insert import LoopWriter

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


def count_sqlite_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, per lone insert on SQLite, the path that committed it: "loop" or "thread"."""
    paths: list[str] = []
    in_thread = database_module.insert_in_thread
    on_loop = LoopWriter.try_insert

    async def counted_thread(*args: Any) -> Any:
        paths.append("thread")
        return await in_thread(*args)

    def counted_loop(self: LoopWriter, *args: Any) -> Any:
        try:
            row = on_loop(self, *args)
        except Exception:  # SQLite refused the row itself (a taken value)
            paths.append("loop")
            raise
        if row is not None:  # None: not for the loop, the thread does it (and is counted)
            paths.append("loop")
        return row

    monkeypatch.setattr(database_module, "insert_in_thread", counted_thread)
    monkeypatch.setattr(LoopWriter, "try_insert", counted_loop)
    return paths


@pytest.fixture(params=[False, True], ids=["thread", "loop"])
def loop_writes(request: pytest.FixtureRequest) -> bool:
    """``SQLITE_LOOP_WRITES``: off (the default) and on."""
    return bool(request.param)


@pytest.fixture
def sqlite_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return count_sqlite_paths(monkeypatch)


@pytest.fixture
async def db(path: Path, loop_writes: bool) -> AsyncIterator[Database]:
    """The database at ``path`` with ``THINGS`` created."""
    database = Database(f"sqlite:///{path}", loop_writes=loop_writes)
    async with database.transaction() as conn:
        await conn.run_sync(_meta.create_all)
    yield database
    await database.dispose()
