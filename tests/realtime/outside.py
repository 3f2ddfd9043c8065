"""Another process writing the server's database: ``sqlite3`` in a Python subprocess, or ``psql``.

Values are written as SQLAlchemy writes them for livebase (:func:`column_value`
says how, per field kind), so that reads and events type them as for any
other row. The writer never goes through livebase: only the change log's
triggers can tell livebase about these rows.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import make_url

TIMEOUT = 30.0  # seconds a writer process may take (it waits for SQLite's lock, say)

# The SQLite writer: each transaction BEGIN IMMEDIATE (waiting up to the busy
# timeout for livebase's writes), its statements, then COMMIT or ROLLBACK.
_SQLITE_WRITER = """
import json, sqlite3, sys
job = json.load(sys.stdin)
conn = sqlite3.connect(job["path"], isolation_level=None)
conn.execute("PRAGMA busy_timeout = 10000")
conn.execute("PRAGMA foreign_keys = ON")  # per connection, as livebase's own (relations)
for statements in job["transactions"]:
    conn.execute("BEGIN IMMEDIATE")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.execute(job["end"])
conn.close()
"""


def column_value(sqlite: bool, kind: str, value: Any) -> Any:
    """What an outside writer must write in a column of field ``kind`` for ``value``.

    - String, Text, UUID: text (a UUID in its lower-case 36-character form).
    - Integer, BigInt: integers. Double: a double (SQLite: REAL).
    - Decimal: PostgreSQL a numeric; SQLite a REAL, as SQLAlchemy binds
      decimals there (reads keep 15 significant digits, rounded to the scale).
    - Boolean: PostgreSQL a boolean; SQLite the integers 1 and 0 (never
      'true' text).
    - DateTime: PostgreSQL a timestamptz (with its offset); SQLite naive UTC
      text 'YYYY-MM-DD HH:MM:SS.ffffff' (a space, six fractional digits, no
      zone: SQLAlchemy's format; a 'T' or an offset does not read back).
    - Date: 'YYYY-MM-DD'.
    - JSON: JSON text (PostgreSQL: a json value).
    """
    if value is None:
        return None
    if kind == "DateTime":
        assert isinstance(value, datetime) and value.tzinfo is not None
        utc = value.astimezone(UTC)
        if sqlite:
            return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return utc.isoformat(timespec="microseconds")
    if kind == "Date":
        assert isinstance(value, date)
        return value.isoformat()
    if kind == "Boolean":
        return int(value) if sqlite else bool(value)
    if kind == "JSON":
        return json.dumps(value)
    if kind == "Decimal":
        return float(value) if sqlite else Decimal(value)
    if kind == "Double":
        return float(value)
    return value


@dataclass(frozen=True)
class Statement:
    """SQL with ``:p0``, ``:p1``... placeholders, and their values."""

    sql: str
    params: Mapping[str, Any]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Outside:
    """Writes to the server's database from another process."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.sqlite = database_url.startswith("sqlite")

    def insert(self, table: str, row: Mapping[str, Any], kinds: Mapping[str, str]) -> Statement:
        names = list(row)
        params = {f"p{i}": column_value(self.sqlite, kinds[n], row[n]) for i, n in enumerate(names)}
        columns = ", ".join(_quote(n) for n in names)
        placeholders = ", ".join(f":p{i}" for i in range(len(names)))
        return Statement(f"INSERT INTO {_quote(table)} ({columns}) VALUES ({placeholders})", params)

    def update(
        self, table: str, key: Any, changes: Mapping[str, Any], kinds: Mapping[str, str]
    ) -> Statement:
        names = list(changes)
        params = {
            f"p{i}": column_value(self.sqlite, kinds[n], changes[n]) for i, n in enumerate(names)
        }
        params["key"] = key
        sets = ", ".join(f"{_quote(n)} = :p{i}" for i, n in enumerate(names))
        return Statement(f'UPDATE {_quote(table)} SET {sets} WHERE "id" = :key', params)

    def increment(self, table: str, key: Any, column: str) -> Statement:
        """``column = column + 1``: under concurrency, commit order is value order."""
        return Statement(
            f'UPDATE {_quote(table)} SET {_quote(column)} = {_quote(column)} + 1 WHERE "id" = :key',
            {"key": key},
        )

    def delete(self, table: str, key: Any) -> Statement:
        return Statement(f'DELETE FROM {_quote(table)} WHERE "id" = :key', {"key": key})

    async def run(self, *transactions: Sequence[Statement], end: str = "COMMIT") -> None:
        """Run each transaction (its statements, then ``end``: COMMIT or ROLLBACK) in order,
        in one other process; returns once that process has exited."""
        assert end in ("COMMIT", "ROLLBACK")
        if self.sqlite:
            path = make_url(self.url).database
            job = {
                "path": path,
                "end": end,
                "transactions": [[(s.sql, dict(s.params)) for s in t] for t in transactions],
            }
            await _run([sys.executable, "-c", _SQLITE_WRITER], json.dumps(job))
            return
        # A session time zone other than UTC (with a half-hour offset): timestamps
        # reach the log's JSON with that offset, and must still read back the same.
        script = "SET TIME ZONE 'Asia/Kolkata';\n" + "".join(
            "BEGIN;\n" + "".join(_render(s) + ";\n" for s in t) + f"{end};\n" for t in transactions
        )
        await _run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url], script)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same double
    return "'" + str(value).replace("'", "''") + "'"  # standard_conforming_strings: on


def _render(statement: Statement) -> str:
    """The statement with its values as PostgreSQL literals (psql takes no parameters)."""
    return re.sub(r":(p\d+|key)\b", lambda m: _literal(statement.params[m[1]]), statement.sql)


async def _run(command: list[str], stdin: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, err = await process.communicate(stdin.encode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, (command[0], process.returncode, err.decode(), out.decode())
