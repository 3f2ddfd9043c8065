"""A lone insert on SQLite, committed in one go: in one trip to a thread, or on the event loop.

Creating one item is the hottest write (every realtime change starts with
one). Through SQLAlchemy and aiosqlite it paid for SQLAlchemy's execution
machinery and for two trips to aiosqlite's thread (the statement, the
commit). A trip is not just a thread wake-up: the SQLite thread needs the
GIL for its Python parts while the busy event loop holds it, so each trip
costs several GIL hand-offs and context switches, more than the INSERT and
COMMIT themselves (tens of µs in WAL mode, where a commit does not fsync).

So :class:`InsertOne` keeps what SQLAlchemy knows (the statement compiled
for the dialect, each column's conversions to and from SQLite) and
:class:`LoopWriter` runs it on a connection of its own on the event loop,
under the database's write lock. It is guarded so that the loop never waits
on SQLite:

- busy timeout 0: if another process holds SQLite's write lock, the insert
  is refused at once and the caller takes aiosqlite's thread, which waits;
- no automatic checkpoint (it fsyncs): the caller checkpoints from a
  thread every :data:`CHECKPOINT_EVERY` commits;
- rows with more than :data:`LOOP_MAX_BYTES` of text go to the thread;
- only in WAL mode (elsewhere every commit syncs the journal).

None of that keeps a slow disk (a network volume, a saturated one) from
stalling the loop while SQLite writes the WAL, so the loop writer is
opt-in (``SQLITE_LOOP_WRITES``, ``docs/decisions.md``); by default lone
inserts take :func:`insert_in_thread`, still one trip.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import aiosqlite
from sqlalchemy import Insert, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError

_log = logging.getLogger("livebase.storage")

# A read in the driver's own SQL and parameters, run in an insert's transaction.
RawRead = tuple[str, tuple[Any, ...]]
# What a lone insert hands back: its row, its ``then`` read's rows, its ``version`` read's value.
Inserted = tuple[Any, list[Any], Any]

CHECKPOINT_EVERY = 500
LOOP_MAX_BYTES = 64 * 1024
_SQLITE_BUSY = 5


class InsertOne:
    """``INSERT INTO table (keys…) VALUES (…) RETURNING *``, prepared once per table and keys.

    The SQL, the parameter order and each column's conversions to and from
    SQLite come from SQLAlchemy (the statement compiled for this dialect,
    ``dialect_impl(...).bind_processor``/``result_processor``), so a row
    written here reads back exactly as one written through SQLAlchemy.
    """

    __slots__ = ("_binds", "_columns", "sql")

    def __init__(self, statement: Insert, keys: tuple[str, ...], dialect: Dialect) -> None:
        """``statement`` is ``insert(table).returning(*table.c)``; ``keys`` the columns given."""
        table = cast(Table, statement.table)
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        names = compiled.positiontup or ()
        if set(names) != set(keys):  # a column default of SQLAlchemy's would add parameters
            raise ValueError(f"cannot prepare an insert of {keys} into {table.name}")
        self.sql = str(compiled)
        self._binds = [(name, _processor(table, name, dialect, "bind")) for name in names]
        self._columns = [(c.key, _processor(table, c.key, dialect, "result")) for c in table.c]

    def parameters(self, values: dict[str, Any]) -> list[Any]:
        return [
            values[name] if process is None else process(values[name])
            for name, process in self._binds
        ]

    def item(self, row: Any) -> dict[str, Any]:
        return {
            key: value if process is None else process(value)
            for (key, process), value in zip(self._columns, row, strict=True)
        }

    def error(self, exc: sqlite3.Error, parameters: list[Any]) -> StatementError:
        """The exception SQLAlchemy would have raised (IntegrityError for a taken value)."""
        return DBAPIError.instance(self.sql, parameters, exc, sqlite3.Error)


class LoopWriter:
    """A SQLite connection for lone inserts on the event loop (see the module's notes)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._commits = 0  # since a checkpoint was last due

    @classmethod
    def open(cls, path: Path, configure: Callable[[Any, Any], None]) -> LoopWriter | None:
        """A writer on ``path`` configured like the pool's connections.

        None outside WAL mode, or if SQLite would not open or configure it
        (the thread does everything then, as before this writer existed).
        """
        connection = None
        try:
            connection = sqlite3.connect(path)  # used on the event loop's thread only
            configure(connection, None)
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        except sqlite3.Error:
            _log.warning("no SQLite writer on the event loop; creates use a thread", exc_info=True)
            mode = None
        if connection is not None and mode == "wal":
            return cls(connection)
        if connection is not None:
            connection.close()
        return None

    def try_insert(
        self,
        prepared: InsertOne,
        parameters: list[Any],
        actor: str | None = None,
        then: RawRead | None = None,
        version: str | None = None,
    ) -> Inserted | None:
        """The inserted row, committed, with ``then``'s rows and ``version``'s value
        (:func:`_insert_committed`); None if the thread should do it."""
        if _text_bytes(parameters) > LOOP_MAX_BYTES:
            return None
        try:
            done = _insert_committed(
                self._connection, prepared.sql, parameters, actor, then, version
            )
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == _SQLITE_BUSY:  # another process writes
                return None
            raise prepared.error(exc, parameters) from exc
        except sqlite3.Error as exc:
            raise prepared.error(exc, parameters) from exc
        self._commits += 1
        return done

    def checkpoint_due(self) -> bool:
        """True once every :data:`CHECKPOINT_EVERY` commits: time to checkpoint from a thread."""
        if self._commits < CHECKPOINT_EVERY:
            return False
        self._commits = 0
        return True

    def close(self) -> None:
        self._connection.close()


async def insert_in_thread(
    dbapi_connection: Any,
    prepared: InsertOne,
    parameters: list[Any],
    actor: str | None = None,
    then: RawRead | None = None,
    version: str | None = None,
) -> Inserted:
    """The same insert and commit in one trip to a pooled connection's aiosqlite thread.

    ``dbapi_connection`` is SQLAlchemy's adapter (``storage/sqlite.py``) of a
    connection outside any transaction.
    """
    connection = cast(aiosqlite.Connection, dbapi_connection._connection)
    try:
        async with dbapi_connection._execute_mutex:
            return await connection._execute(  # type: ignore[no-untyped-call,no-any-return]
                _insert_committed, connection._conn, prepared.sql, parameters, actor, then, version
            )
    except sqlite3.Error as exc:
        raise prepared.error(exc, parameters) from exc


_ACTOR = "UPDATE livebase_actor SET user_id = ? WHERE slot = 1"


def _insert_committed(
    conn: sqlite3.Connection,
    sql: str,
    parameters: list[Any],
    actor: str | None,
    then: RawRead | None,
    version: str | None = None,
) -> Inserted:
    """INSERT … RETURNING one row, then ``then`` (a read), then COMMIT; or roll back.

    ``actor``: the user its change log entry names, set for the transaction
    only (``storage/capture.py``). ``then``: read in the same trip what the
    insert's triggers wrote (the change log relay's next entries).
    ``version``: a read of one value in the same transaction (the id of the
    change log entry the insert wrote: the new item's version).
    """
    cursor = conn.cursor()
    try:
        if actor is not None:
            cursor.execute(_ACTOR, (actor,))  # sqlite3 opens the transaction, as for SQLAlchemy
        cursor.execute(sql, parameters)
        row = cursor.fetchone()
        cursor.fetchall()  # step the statement to its end: COMMIT refuses a running one
        if actor is not None:
            cursor.execute(_ACTOR, (None,))
        rows = cursor.execute(*then).fetchall() if then is not None else []
        value = cursor.execute(version).fetchone()[0] if version is not None else None
        conn.commit()
        return row, rows, value
    except BaseException:
        conn.rollback()
        raise
    finally:
        cursor.close()


def _text_bytes(parameters: list[Any]) -> int:
    return sum(len(p) for p in parameters if isinstance(p, str | bytes))


def _processor(table: Table, name: str, dialect: Dialect, which: str) -> Any:
    impl = table.c[name].type.dialect_impl(dialect)
    return impl.bind_processor(dialect) if which == "bind" else impl.result_processor(dialect, None)
