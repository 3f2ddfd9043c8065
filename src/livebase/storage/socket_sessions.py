"""Dropped sockets' sessions, kept in the database for recovery when there is no Redis.

One row per private session id (its SHA-256, never the id itself): the
record the realtime layer wrote, a generation that only grows (a late write
of an earlier life of the session must not overwrite a later one) and when
the row stops counting. A restarted process finds here the sessions of the
sockets it had before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, Text, text
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.storage.database import Database

table = Table(
    "livebase_socket_sessions",
    MetaData(),
    Column("pid_hash", String(64), primary_key=True),
    Column("generation", BigInteger, nullable=False),
    Column("record", Text, nullable=False),
    Column("expires_at", Float, nullable=False),  # seconds since the epoch
)

_PUT = text(
    """INSERT INTO livebase_socket_sessions (pid_hash, generation, record, expires_at)
    VALUES (:key, :generation, :record, :expires_at)
    ON CONFLICT (pid_hash) DO UPDATE SET generation = excluded.generation,
        record = excluded.record, expires_at = excluded.expires_at
    WHERE livebase_socket_sessions.generation <= excluded.generation"""
)
_TAKE = text(
    "DELETE FROM livebase_socket_sessions WHERE pid_hash = :key RETURNING record, expires_at"
)
_KEEP = text("UPDATE livebase_socket_sessions SET expires_at = :expires_at WHERE pid_hash = :key")
_PRUNE = text("DELETE FROM livebase_socket_sessions WHERE expires_at < :now")


async def create_table(conn: AsyncConnection) -> None:
    """The table (a system migration step)."""
    await conn.run_sync(lambda sync_conn: table.create(sync_conn, checkfirst=True))


class DatabaseSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, records: Iterable[tuple[str, int, str, float]]) -> None:
        """Write ``(key, generation, record, seconds to keep)`` rows, unless a row
        of a later generation is there."""
        now = time.time()
        rows = [
            {"key": key, "generation": generation, "record": record, "expires_at": now + ttl}
            for key, generation, record, ttl in records
        ]
        if rows:
            async with self._db.transaction() as conn:
                await conn.execute(_PUT, rows)

    async def take(self, key: str) -> str | None:
        """The record under ``key``, removed so that only one reconnect gets it;
        None if there is none or it no longer counts. (An unknown id changes
        nothing: SQLite writes no page for a DELETE that matched no row.)"""
        async with self._db.transaction() as conn:
            row = (await conn.execute(_TAKE, {"key": key})).first()
        if row is None or row[1] < time.time():
            return None
        return str(row[0])

    async def keep(self, keys: Iterable[str], ttl: float) -> None:
        """The sessions of sockets still connected count for ``ttl`` more seconds."""
        expires_at = time.time() + ttl
        rows = [{"key": key, "expires_at": expires_at} for key in keys]
        if rows:
            async with self._db.transaction() as conn:
                await conn.execute(_KEEP, rows)

    async def prune(self) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_PRUNE, {"now": time.time()})
