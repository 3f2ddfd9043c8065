"""Which way a lone SQLite insert went: one trip to the SQLite thread, or the event loop.

Fixtures for the storage and service tests that run both ways
(``SQLITE_LOOP_WRITES`` off, the default, and on); the root conftest exposes them.
"""

from __future__ import annotations

from typing import Any

import pytest

from livebase.storage import database as database_module
from livebase.storage.sqlite_insert import LoopWriter


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
