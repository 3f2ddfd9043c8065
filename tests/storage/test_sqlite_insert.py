"""Lone inserts on SQLite (storage/sqlite_insert.py): committed at once, never stalling the loop.

Every test over the ``db`` fixture runs both ways: in the SQLite thread (the
default) and on the event loop (``SQLITE_LOOP_WRITES``); ``sqlite_paths``
says which one committed each insert.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, insert, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError

from livebase.settings import Settings
from livebase.storage import sqlite_insert
from livebase.storage.database import Database, returning_insert
from livebase.storage.sqlite_insert import InsertOne
from tests.storage.conftest import THINGS


def _size(path: Path) -> int:
    return path.stat().st_size


async def _names(db: Database) -> list[str | None]:
    async with db.connect() as conn:  # another connection: sees only what is committed
        return list((await conn.execute(select(THINGS.c.name).order_by(THINGS.c.id))).scalars())


async def test_the_row_comes_back_as_stored_and_committed(
    db: Database, loop_writes: bool, sqlite_paths: list[str]
) -> None:
    first = await db.insert_one(THINGS, {"name": "a"})
    second = await db.insert_one(THINGS, {})  # no values: INSERT … DEFAULT VALUES
    big = await db.insert_one(THINGS, {"name": "big", "body": "é" * 100_000})  # the thread's
    assert first == {"id": 1, "name": "a", "body": None}
    assert second == {"id": 2, "name": None, "body": None}
    assert big == {"id": 3, "name": "big", "body": "é" * 100_000}
    assert await _names(db) == ["a", None, "big"]
    small = "loop" if loop_writes else "thread"
    assert sqlite_paths == [small, small, "thread"]


@pytest.mark.parametrize("loop_writes", [False], ids=["thread"])  # db only makes the table
async def test_lone_inserts_take_the_thread_unless_loop_writes_are_asked_for(
    db: Database, path: Path, sqlite_paths: list[str]
) -> None:
    assert Settings.model_fields["SQLITE_LOOP_WRITES"].default is False
    default = Database(f"sqlite:///{path}")  # as build_services makes it by default
    asked = Database(f"sqlite:///{path}", loop_writes=True)
    try:
        await default.insert_one(THINGS, {"name": "by default"})
        await asked.insert_one(THINGS, {"name": "asked for"})
    finally:
        await default.dispose()
        await asked.dispose()
    assert sqlite_paths == ["thread", "loop"]
    assert await _names(db) == ["by default", "asked for"]


async def test_a_taken_value_is_sqlalchemys_error_and_leaves_the_writers_clean(
    db: Database,
) -> None:
    await db.insert_one(THINGS, {"name": "x"})
    with pytest.raises(IntegrityError):
        await db.insert_one(THINGS, {"name": "x"})
    with pytest.raises(IntegrityError):  # a big row: refused in the thread, the same way
        await db.insert_one(THINGS, {"name": "x", "body": "b" * 100_000})
    async with db.transaction() as conn:  # the general path's writer is free
        await conn.execute(insert(THINGS).values(name="y"))
    assert (await db.insert_one(THINGS, {"name": "z"}))["name"] == "z"
    assert await _names(db) == ["x", "y", "z"]


async def test_another_process_holding_the_write_lock_never_stalls_the_loop(
    db: Database, path: Path, loop_writes: bool, sqlite_paths: list[str]
) -> None:
    await db.insert_one(THINGS, {"name": "before"})  # the loop writer is open
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # SQLite's write lock, as another process would hold it
    other.execute("INSERT INTO things (name) VALUES ('other')")
    release = threading.Timer(1.0, other.execute, ("COMMIT",))  # that process, a second later
    release.start()
    try:
        pending = asyncio.create_task(db.insert_one(THINGS, {"name": "waits"}))
        turns = 0
        while not pending.done():
            await asyncio.sleep(0.01)
            turns += 1
    finally:
        release.join()
        other.close()
    # Waiting on the lock inside the loop (SQLite's busy handler) would have
    # left no turn to this loop until the lock was gone, about 100 of 0.01 s.
    assert turns >= 10
    assert (await pending)["name"] == "waits"
    assert await _names(db) == ["before", "other", "waits"]
    # On the loop, refused at once (busy timeout 0), then waited for in the thread.
    assert sqlite_paths == (["loop", "thread"] if loop_writes else ["thread", "thread"])


@pytest.mark.parametrize("loop_writes", [True], ids=["loop"])  # the thread's commits checkpoint
async def test_rows_reach_the_database_file_not_only_the_wal(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_paths: list[str]
) -> None:
    monkeypatch.setattr("livebase.storage.sqlite_insert.CHECKPOINT_EVERY", 50)
    size_before = _size(path)
    for i in range(200):
        await db.insert_one(THINGS, {"name": f"n{i}", "body": "x" * 500})
    for _ in range(100):  # the last checkpoint runs in a thread: wait for it, boundedly
        if _size(path) > size_before + 50 * 500:
            break
        await asyncio.sleep(0.05)
    # The loop writer never checkpoints itself; without the database's
    # checkpoints every row would stay in the WAL file.
    assert _size(path) > size_before + 50 * 500
    assert len(await _names(db)) == 200
    assert sqlite_paths == ["loop"] * 200


def test_an_insert_sqlalchemy_would_add_parameters_to_is_not_prepared() -> None:
    table = Table("stamped", MetaData(), Column("id", Integer, primary_key=True),
                  Column("kind", String(10), default="plain"))  # fmt: skip
    with pytest.raises(ValueError, match="cannot prepare"):
        InsertOne(returning_insert(table), ("id",), sqlite_dialect.dialect())


def test_the_loop_writer_is_only_for_wal_mode(tmp_path: Path) -> None:
    def rollback_journal(connection: sqlite3.Connection, _record: object) -> None:
        connection.execute("PRAGMA journal_mode=DELETE")

    assert sqlite_insert.LoopWriter.open(tmp_path / "plain.db", rollback_journal) is None


def test_a_loop_writer_sqlite_will_not_configure_leaves_creates_to_the_thread(
    tmp_path: Path,
) -> None:
    def failing(connection: sqlite3.Connection, _record: object) -> None:
        connection.execute("PRAGMA no_such_thing(")

    assert sqlite_insert.LoopWriter.open(tmp_path / "broken.db", failing) is None


async def test_a_missing_foreign_key_target_is_refused_both_ways(
    db: Database, loop_writes: bool, sqlite_paths: list[str]
) -> None:
    """Foreign keys hold on the lone insert's own connections too (``PRAGMA foreign_keys``)."""
    meta = MetaData()
    Table("things", meta, Column("id", Integer, primary_key=True))
    parts = Table(
        "parts",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("thing_Id", Integer, ForeignKey("things.id", ondelete="CASCADE")),
    )
    async with db.transaction() as conn:
        await conn.run_sync(parts.create)
    thing = await db.insert_one(THINGS, {"name": "t"})
    assert await db.insert_one(parts, {"thing_Id": thing["id"]}) == {"id": 1, "thing_Id": 1}
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        await db.insert_one(parts, {"thing_Id": 999})
    assert sqlite_paths == ["loop" if loop_writes else "thread"] * 3
