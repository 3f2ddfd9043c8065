"""One async engine per process, with the SQLite and PostgreSQL differences kept here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Insert, Table, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from livebase.bounded import BoundedCache
from livebase.storage import sqlite
from livebase.storage.sqlite_insert import InsertOne, LoopWriter, RawRead, insert_in_thread

_log = logging.getLogger("livebase.storage")

# Prepared inserts per (table, column keys); tables are replaced on schema changes.
_PREPARED_INSERTS = 1_000

# Who acts, for the change log's triggers (storage/capture.py).
_SQLITE_ACTOR = text("UPDATE livebase_actor SET user_id = :actor WHERE slot = 1")
_POSTGRES_ACTOR = text("SELECT set_config('livebase.user_id', :actor, true)")


class AdvisoryLock(IntEnum):
    """PostgreSQL advisory lock keys (per database), one place so none is taken twice."""

    MIGRATION = 734112  # system migrations at start-up
    ADMIN_BOOTSTRAP = 734113  # creating the first administrator
    CHANGE_LOG_POSITIONS = 734114  # handing out change log positions at commit
    CHANGE_LOG_RELAY = 734115  # held by the one process publishing the change log


_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """Turn a user's ``sqlite://`` or ``postgresql://`` URL into an async driver URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:// or postgresql://")
    return parsed.set(drivername=_DRIVERS[backend]).render_as_string(hide_password=False)


@functools.lru_cache(maxsize=_PREPARED_INSERTS)
def returning_insert(table: Table) -> Insert:
    """``INSERT … RETURNING *`` into ``table``, built once: values come as parameters."""
    return insert(table).returning(*table.c)


def foreign_key_violated(exc: IntegrityError) -> bool:
    """Whether a write was refused for a foreign key (rather than a unique value)."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23503")  # PostgreSQL's foreign_key_violation
    return "FOREIGN KEY constraint failed" in str(exc.orig)


def _file_of(url: str) -> Path | None:
    """The file of a plain SQLite URL; None for memory databases and URI options."""
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:" or parsed.query:
        return None
    return Path(parsed.database)


def _sqlite_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=10000",
        # PostgreSQL's LIKE is case-sensitive; make SQLite's agree so that a
        # filter means the same on both.
        "PRAGMA case_sensitive_like=ON",
    ):
        cursor.execute(pragma)
    cursor.close()
    # SQLite's lower()/upper() only fold ASCII; Python and PostgreSQL fold Unicode.
    dbapi_connection.create_function("lower", 1, _sqlite_lower, deterministic=True)
    dbapi_connection.create_function("upper", 1, _sqlite_upper, deterministic=True)


class Database:
    """The process's connection to SQLite or PostgreSQL.

    Writes go through :meth:`transaction`. On SQLite they are serialised by an
    in-process lock, because SQLite has one writer and ``BEGIN DEFERRED``
    transactions that upgrade to writes would otherwise fail with "database is
    locked" under concurrency.
    """

    def __init__(self, url: str, *, loop_writes: bool = False) -> None:
        """``loop_writes``: SQLite's lone inserts on the event loop (``SQLITE_LOOP_WRITES``)."""
        self.url = url
        driver_url = async_url(url)
        self.dialect: str = make_url(driver_url).get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            # Opening a connection (an aiosqlite thread, the file, the pragmas)
            # was a quarter of a socket handshake in the profile: keep a few open.
            kwargs.update(poolclass=AsyncAdaptedQueuePool, pool_size=4, max_overflow=4)
            # One trip to the SQLite thread per statement, none to give a connection back.
            kwargs.update(module=sqlite.OneTripDBAPI(), pool_reset_on_return=None)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(driver_url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _configure_sqlite)
            event.listen(self.engine.sync_engine, "reset", sqlite.reset)
        self._write_lock = asyncio.Lock()
        self._writer_conn: AsyncConnection | None = None
        self._inserts: BoundedCache[tuple[Table, tuple[str, ...]], InsertOne] = BoundedCache(
            _PREPARED_INSERTS
        )
        # SQLite, when asked: lone inserts on the event loop, through a connection
        # of their own, opened at the first one (a file database only).
        loop_sqlite = loop_writes and self.dialect == "sqlite"
        self._loop_path = _file_of(driver_url) if loop_sqlite else None
        self._loop_writer: LoopWriter | None = None
        self._checkpointing: asyncio.Task[None] | None = None

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file; None for PostgreSQL and memory databases."""
        return _file_of(async_url(self.url)) if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def returning(self) -> bool:
        """Whether INSERT and UPDATE … RETURNING work (SQLite >= 3.35, PostgreSQL).

        Known once the first connection told the server version, which start-up makes.
        """
        dialect = self.engine.dialect
        return bool(dialect.insert_returning and dialect.update_returning)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (autocommit-free, rolled back at the end)."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction whose statements all see one moment of the database.

        A live query's snapshot and the change-log position it stands at are
        read in one (``services/live.py``): on PostgreSQL ``REPEATABLE READ``;
        on SQLite an explicit ``BEGIN``, whose first read fixes what the
        transaction sees (WAL mode), where its driver would begin none for reads.
        """
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                await conn.exec_driver_sql("BEGIN")
                yield conn  # rolled back when the pool takes it back (sqlite.reset)
            else:
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    yield conn

    @asynccontextmanager
    async def transaction(self, actor: str | None = None) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error.

        ``actor``: the user the change log's entries of this transaction name
        (``storage/capture.py`` says how the triggers learn it).
        """
        if self.is_sqlite:
            async with self._write_lock:
                conn = await self._writer()
                async with conn.begin():
                    if actor is not None:
                        await conn.execute(_SQLITE_ACTOR, {"actor": actor})
                    yield conn
                    if actor is not None:
                        await conn.execute(_SQLITE_ACTOR, {"actor": None})
        else:
            async with self.engine.begin() as conn:
                if actor is not None:
                    await conn.execute(_POSTGRES_ACTOR, {"actor": actor})
                yield conn

    @asynccontextmanager
    async def rebuilding(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction in which a table may be rebuilt (``tables.drop_foreign_key``).

        On SQLite, on a connection of its own whose foreign keys are off for the
        transaction (the pragma does nothing inside one), so that dropping a
        table deletes nothing from the tables pointing at it; the foreign keys
        are checked (``PRAGMA foreign_key_check``) before the commit. On
        PostgreSQL, a plain transaction.
        """
        if not self.is_sqlite:
            async with self.transaction() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            try:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"a table rebuild broke foreign keys: {broken[:5]}")
                except BaseException:
                    await conn.rollback()
                    raise
                await conn.commit()
            finally:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()

    async def insert_one(
        self, table: Table, values: dict[str, Any], actor: str | None = None
    ) -> dict[str, Any]:
        """Insert one row in a transaction of its own; the row as stored (RETURNING)."""
        row, _, _ = await self.insert_then_read(table, values, actor, None)
        return row

    async def insert_then_read(
        self,
        table: Table,
        values: dict[str, Any],
        actor: str | None,
        then: RawRead | None,
        version: str | None = None,
    ) -> tuple[dict[str, Any], list[Any], Any]:
        """:meth:`insert_one`; on SQLite also ``then``, a read run in the same
        transaction and trip after the insert, whose rows come back with the
        row (PostgreSQL does not run it: it answers ``[]``); on both,
        ``version``, SQL reading one value in the same transaction after the
        insert, whose value comes back third (None without it).

        On SQLite, in one trip to the SQLite thread, or with ``loop_writes``
        usually on the event loop itself (``storage/sqlite_insert.py`` says
        why and when). A
        unique violation raises SQLAlchemy's ``IntegrityError`` either way.
        Needs :attr:`returning`.
        """
        if not self.is_sqlite:
            async with self.transaction(actor) as conn:
                result = await conn.execute(returning_insert(table), values)
                row = dict(result.mappings().one())
                value = await conn.scalar(text(version)) if version is not None else None
                return row, [], value
        prepared = self._inserts.get_or_make((table, tuple(values)), self._prepare_insert)
        parameters = prepared.parameters(values)
        async with self._write_lock:
            writer = self._open_loop_writer()
            done = writer.try_insert(prepared, parameters, actor, then, version) if writer else None
            if done is None:
                conn = await self._writer()
                # Connected and valid (see _writer): no I/O behind this property.
                fairy = conn.sync_connection.connection  # type: ignore[union-attr]
                done = await insert_in_thread(
                    fairy.dbapi_connection, prepared, parameters, actor, then, version
                )
        if writer is not None and writer.checkpoint_due():
            self._checkpoint_soon()
        row, rows, value = done
        return prepared.item(row), rows, value

    def _prepare_insert(self, key: tuple[Table, tuple[str, ...]]) -> InsertOne:
        table, keys = key
        return InsertOne(returning_insert(table), keys, self.engine.dialect)

    def _open_loop_writer(self) -> LoopWriter | None:
        """The loop writer, opened at the first lone insert (tried once)."""
        if self._loop_writer is None and self._loop_path is not None:
            self._loop_writer = LoopWriter.open(self._loop_path, _configure_sqlite)
            self._loop_path = None  # from here on, no writer means the thread
        return self._loop_writer

    def _checkpoint_soon(self) -> None:
        """A PASSIVE WAL checkpoint in a pooled connection's thread, if none is running.

        The loop writer never checkpoints itself (see ``sqlite_insert``);
        without this its WAL file would only grow.
        """
        if self._checkpointing is None or self._checkpointing.done():
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:  # the next one will try again; a failed one loses nothing
            _log.warning("SQLite WAL checkpoint failed", exc_info=True)

    async def _writer(self) -> AsyncConnection:
        """SQLite's one writer keeps its connection (under the write lock).

        Taking a pooled connection and giving it back cost a tenth of a REST
        write. A connection left unusable (invalidated, or still in a
        transaction after a cancelled rollback) is replaced.
        """
        conn = self._writer_conn
        if conn is not None and (conn.closed or conn.invalidated or conn.in_transaction()):
            self._writer_conn = None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            conn = None
        if conn is None:
            conn = self._writer_conn = await self.engine.connect()
        return conn

    async def serialize(self, conn: AsyncConnection, lock: int) -> None:
        """Make this transaction wait for any other process's holding ``lock``.

        For start-up work several processes may do at once against one
        PostgreSQL database; SQLite writers are serialized already.
        """
        if self.dialect == "postgresql":
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({int(lock)})")

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        if self._writer_conn is not None:
            conn, self._writer_conn = self._writer_conn, None
            await conn.close()
        await self.engine.dispose()
