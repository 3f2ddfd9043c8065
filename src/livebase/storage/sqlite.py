"""SQLAlchemy's aiosqlite adapter, with one trip to the SQLite thread per statement.

aiosqlite runs each SQLite call in its own thread and hands the result back
to the event loop: a thread wake-up, a loop wake-up, ~20 µs of CPU. Its
SQLAlchemy adapter makes four of those per statement (open a cursor,
execute, fetch, close the cursor); on a REST write they cost more than the
SQL itself. Here one function does all four in that thread.

Only the plain (buffered) cursor changes; everything else, including how
errors are translated, is SQLAlchemy's. Both libraries are pinned in
pyproject.toml, since this leans on their adapter classes
(``sqlalchemy.dialects.sqlite.aiosqlite``) and on aiosqlite's ``_execute``.

``storage/sqlite_insert.py`` goes further for the hottest write, a lone item
create.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, int, int | None, list[Any]]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """In the SQLite thread: the whole statement, from cursor to closing it."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor: rows, description and counts arrive with the statement."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # No aiosqlite cursor (opening one is a trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        connection = cast(aiosqlite.Connection, self._connection)
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await connection._execute(  # type: ignore[no-untyped-call]
                _run, connection._conn, operation, parameters, many
            )
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        pass  # nothing open in the SQLite thread

    def close(self) -> None:
        self._rows.clear()


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _Cursor

    @property
    def in_transaction(self) -> bool:
        return bool(self._connection.in_transaction)


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DB-API module for ``create_async_engine(..., module=...)``."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *args: Any, **kwargs: Any) -> _Connection:
        connection = self.aiosqlite.connect(*args, **kwargs)
        connection._thread.daemon = True  # as SQLAlchemy does: never hold up exit
        return _Connection(self, await_(connection))


def reset(dbapi_connection: Any, _record: Any, reset_state: Any) -> None:
    """Pool check-in: roll back only what is still open.

    SQLAlchemy rolls back every connection it takes back, even right after a
    commit: one more trip to the SQLite thread per write, for nothing.
    """
    if not reset_state.asyncio_safe or reset_state.transaction_was_reset:
        return  # as SQLAlchemy's own reset: nothing to do, or no event loop to do it on
    if dbapi_connection.in_transaction:
        dbapi_connection.rollback()
