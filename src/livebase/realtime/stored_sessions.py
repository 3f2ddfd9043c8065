"""Sockets' sessions, stored so that a reconnect may recover them (:mod:`recovery`).

Each recovery-capable socket's session is stored under its private session
id's hash: its sid, user, rooms, where its offsets began, and, once it is
gone, how far it had been brought up to. In Redis when there is one, so
that any process can recover it; else in the database, so that a
restarted process can. A session is stored before the
socket hears its ``pid`` and before a ``join`` or ``leave`` is answered;
writes made at the same time go together.

A stored session counts for :attr:`SessionBook.window` seconds after its
socket went; while the socket is connected its process renews it every
:data:`RENEW_EVERY` seconds, so that the session of a socket whose process
died counts for at most the window plus that period.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from livebase import encoding
from livebase.realtime.connections import Connection
from livebase.storage.redis import RedisLink

_log = logging.getLogger("livebase.realtime")

RENEW_EVERY = 30.0  # seconds between renewals of connected sockets' sessions


def pid_key(pid: str) -> str:
    return hashlib.sha256(pid.encode()).hexdigest()


@dataclass
class Record:
    """What a socket's session keeps for its recovery."""

    sid: str
    user_id: str | None
    generation: int  # grows with each recovery: an older life never overwrites a newer
    start: int  # the position its offsets began at
    collections: list[str] = field(default_factory=list)
    rooms: list[str] = field(default_factory=list)  # item, custom and presence rooms
    subscriptions: list[dict[str, Any]] = field(default_factory=list)  # live queries
    left: list[str] = field(default_factory=list)  # collection rooms left on request
    tracked: dict[str, Any] = field(default_factory=dict)  # room presence: room -> state
    # Once gone: the position it had been brought up to, and the newest one
    # written to it (None: still connected, or its process died).
    upto: int | None = None
    sent: int | None = None

    def encode(self) -> str:
        return encoding.dumps(asdict(self)).decode()

    @classmethod
    def decode(cls, data: str | bytes) -> Record | None:
        try:
            fields = encoding.loads(data)
            record = cls(**fields)
        except (ValueError, TypeError):
            return None
        return record

    @classmethod
    def of(cls, connection: Connection, upto: int | None = None) -> Record:
        return cls(
            sid=connection.sid,
            user_id=connection.user_id,
            generation=connection.generation,
            start=connection.start,
            collections=sorted(connection.collections),
            rooms=sorted(connection.rooms),
            left=sorted(connection.left),
            tracked=dict(connection.tracked),
            subscriptions=[
                s.stored() for s in connection.subscriptions.values() if s.since is not None
            ],
            upto=upto,
            sent=connection.sent if upto is not None else None,
        )


class SessionStore(Protocol):
    async def put(self, records: list[tuple[str, int, str, float]]) -> None: ...
    async def take(self, key: str) -> str | None: ...
    async def keep(self, keys: list[str], ttl: float) -> None: ...
    async def prune(self) -> None: ...


# KEYS[1]: the session; ARGV: generation, record, milliseconds to keep.
_PUT = """
local stored = redis.call('HGET', KEYS[1], 'g')
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 'r', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
_TAKE = """
local record = redis.call('HGET', KEYS[1], 'r')
redis.call('DEL', KEYS[1])
return record
"""


class RedisSessions:
    """Sessions as Redis hashes that expire by themselves."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._put: Any = link.client.register_script(_PUT)
        self._take: Any = link.client.register_script(_TAKE)

    async def put(self, records: list[tuple[str, int, str, float]]) -> None:
        pipe = self._link.client.pipeline(transaction=False)
        for key, generation, record, ttl in records:
            # Queued in the pipeline (awaiting it sends nothing yet).
            args = [generation, record, int(ttl * 1000)]
            await self._put(keys=[self._key(key)], args=args, client=pipe)
        await self._link.attempt(pipe.execute())

    async def take(self, key: str) -> str | None:
        record = await self._link.attempt(self._take(keys=[self._key(key)]))
        return record.decode() if isinstance(record, bytes) else record

    async def keep(self, keys: list[str], ttl: float) -> None:
        pipe = self._link.client.pipeline(transaction=False)
        for key in keys:
            pipe.pexpire(self._key(key), int(ttl * 1000))
        await self._link.attempt(pipe.execute())

    async def prune(self) -> None:
        return None  # Redis expires them

    def _key(self, key: str) -> str:
        return self._link.key("session", key)


class SessionBook:
    """This process's writes to the session store, and the renewals.

    Writes are grouped: while one is on its way, the sessions that change
    meanwhile wait and go together in the next, so a burst of connects
    costs a few round trips, not one each.
    """

    def __init__(self, store: SessionStore, window: float) -> None:
        self._store = store
        self.window = window
        self._pending: dict[str, tuple[int, str, float]] = {}
        self._writing: dict[str, tuple[int, str, float]] = {}  # on its way to the store
        self._written: asyncio.Future[None] | None = None  # when the pending ones are
        self._writer: asyncio.Task[None] | None = None

    def save(
        self, connection: Connection, *, gone: bool = False, upto: int | None = None
    ) -> asyncio.Future[None]:
        """Store ``connection``'s session as it is now; done once it is stored (it
        never fails: a failed write is logged). Once ``gone`` the session counts
        for the window; ``upto``: the position it had been brought up to."""
        loop = asyncio.get_running_loop()
        if connection.pid is None:
            done = loop.create_future()
            done.set_result(None)
            return done
        ttl = self.window if gone else self.window + 2 * RENEW_EVERY
        record = Record.of(connection, upto).encode()
        self._pending[pid_key(connection.pid)] = (connection.generation, record, ttl)
        if self._written is None:
            self._written = loop.create_future()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_all())
        return self._written

    async def take(self, pid: str) -> Record | None:
        """The stored session of ``pid``, taken so that no other reconnect gets it."""
        key = pid_key(pid)
        # Not yet written, or being written: fresher than the store.
        pending = self._pending.pop(key, None) or self._writing.get(key)
        stored = await self._store.take(key)
        data = pending[1] if pending is not None else stored
        return Record.decode(data) if data is not None else None

    async def put_back(self, pid: str, record: Record) -> None:
        """Return a session taken by a reconnect that may not have it."""
        await self._store.put([(pid_key(pid), record.generation, record.encode(), self.window)])

    async def renew(self, connections: list[Connection]) -> None:
        keys = [pid_key(c.pid) for c in connections if c.pid is not None]
        if keys:
            await self._store.keep(keys, self.window + 2 * RENEW_EVERY)
        await self._store.prune()

    async def close(self) -> None:
        """Write what is pending (the server stops)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
        await self._write_all()

    async def _write_all(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, {}
            written, self._written = self._written, None
            self._writing = pending
            try:
                await self._store.put([(key, *entry) for key, entry in pending.items()])
            except Exception:
                _log.exception("storing %d socket sessions for recovery failed", len(pending))
            finally:
                self._writing = {}
                if written is not None and not written.done():
                    written.set_result(None)
