"""The relay: the change log's entries, published as events, in position order, once.

Every item, notification and file event comes from here, whoever made the
change (livebase or another writer of the database), after it committed:

- a livebase write calls :meth:`ChangeRelay.flush` after its commit, so its
  events are handed over before its response is sent, as before the log;
- other writers are noticed by polling (every :data:`POLL` seconds) and, on
  PostgreSQL, at once through ``LISTEN`` (the triggers ``NOTIFY``);
- at start-up, the entries after the saved cursor are published: changes
  committed by a process that died before publishing them.

One relay publishes at a time: on PostgreSQL the process holding a session
advisory lock (released by PostgreSQL when its connection dies, so another
process takes over within :data:`POLL` seconds); a SQLite database has one
livebase process. The cursor is saved at most every :data:`SAVE_EVERY`
seconds, so after a crash the entries of that last moment may be published
again; each event carries its position, and the realtime layer drops what a
process already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import timedelta
from typing import Any

from livebase.services.events import (
    ChangeEvent,
    Event,
    EventBus,
    FileChanged,
    NotificationChanged,
)
from livebase.services.registry import CollectionRegistry
from livebase.storage import capture
from livebase.storage.changelog import BATCH, ChangeLog, Entry, restore
from livebase.storage.database import AdvisoryLock, Database
from livebase.storage.model import Collection
from livebase.storage.sqlite_insert import RawRead
from livebase.storage.types import utcnow

_log = logging.getLogger("livebase.relay")

POLL = 0.25  # seconds between looks for other writers' changes
SAVE_EVERY = 0.1  # seconds: how often the cursor is saved at most
PRUNE_EVERY = 60.0  # seconds between pruning passes
RELAY_LOCK = int(AdvisoryLock.CHANGE_LOG_RELAY)
# System collections whose rows are logged; user collections all are.
LOGGED_SYSTEM = frozenset({"users", "notifications", "files"})


def logged(collection: Collection) -> bool:
    return not collection.system or collection.name in LOGGED_SYSTEM


class ChangeRelay:
    def __init__(
        self, db: Database, registry: CollectionRegistry, events: EventBus, retention: float
    ) -> None:
        self._db = db
        self._registry = registry
        self._events = events
        self._retention = retention
        self.log = ChangeLog(db)
        self.published = 0
        self._saved = 0
        self._lock = asyncio.Lock()
        self._requested = 0  # flushes asked for
        self._covered = 0  # flushes a finished drain covered
        self._wake = asyncio.Event()
        self._leader: Any = None  # PostgreSQL: the connection holding the relay's lock
        self._tasks: list[asyncio.Task[None]] = []
        self._saver: asyncio.Task[None] | None = None
        self._started = False
        self._read_up_to = 0  # the last position a prefetch read (SQLite)

    @property
    def leading(self) -> bool:
        """Whether this process publishes the log (it has started, and holds the lead)."""
        return self._started and (self._db.is_sqlite or self._leader is not None)

    async def capture_all(self) -> None:
        """(Re)make the triggers of every logged collection (start-up).

        Under the migration lock: processes starting together would otherwise
        replace PostgreSQL's trigger function at once ("tuple concurrently updated").
        """
        async with self._db.transaction() as conn:
            await self._db.serialize(conn, AdvisoryLock.MIGRATION)
            await capture.install(conn)
            for collection in self._registry.all_collections():
                if logged(collection):
                    await capture.capture(conn, collection)

    async def start(self) -> None:
        self.published = self._saved = await self.log.published()
        self._started = True
        await self._try_to_lead()
        await self.flush()  # what a process that died did not publish
        self._tasks = [
            asyncio.create_task(self._watch(), name="livebase-relay"),
            asyncio.create_task(self._prune_regularly(), name="livebase-relay-prune"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._saver] if self._saver else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks, self._saver = [], None
        if self.leading:
            with contextlib.suppress(Exception):
                await self._save()
        await self._lost_lead()
        self.log.close()
        self._started = False
        self._read_up_to = 0

    # -- publishing ----------------------------------------------------------------------

    def prefetch(self) -> RawRead | None:
        """SQLite, when this process publishes: a read of the entries to publish,
        for a lone create to run in its own trip and hand to :meth:`flush`,
        which then needs no trip of its own (a third of a create's CPU)."""
        if not self.leading or not self._db.is_sqlite:
            return None
        # Past what earlier prefetches read too: under concurrent writes the
        # relay lags a few entries, and each write would read them all again.
        return self.log.read_after(max(self.published, self._read_up_to))

    async def flush(self, prefetched: list[Any] | None = None) -> None:
        """Publish every entry committed before this call (if this process publishes).

        Concurrent calls share drains: a drain that started after a call covers it.
        ``prefetched``: the rows of a :meth:`prefetch` read, made in the
        caller's transaction, so holding every entry up to its commit.
        """
        if not self.leading:
            return
        self._requested += 1
        ticket = self._requested
        async with self._lock:
            if prefetched is None and self._covered >= ticket:
                return
            covering = self._requested
            try:
                if prefetched is not None:
                    prefetched = self._contiguous(prefetched)
                if prefetched is not None:
                    await self._publish(self.log.entries(prefetched))
                if prefetched is None or len(prefetched) >= BATCH:
                    await self._drain()
                    self._covered = covering
            except Exception:
                # The write committed: its caller must not fail; the next pass
                # (at most POLL seconds away) publishes from where this one stopped.
                _log.exception("the change log relay failed a pass; it tries again")
                self._wake.set()
                return
        if self.published > self._saved and (self._saver is None or self._saver.done()):
            self._saver = asyncio.create_task(self._save_later(), name="livebase-relay-save")

    def _contiguous(self, rows: list[Any]) -> list[Any] | None:
        """The prefetched rows not published yet, if they follow the last one
        published; None if some are missing (an earlier write's prefetch read
        them and has not been published yet): then the log is read instead.
        SQLite's positions have no gaps (each is the largest plus one)."""
        rows = [row for row in rows if row[0] > self.published]
        if rows:
            self._read_up_to = max(self._read_up_to, rows[-1][0])
            if rows[0][0] != self.published + 1:
                return None
        return rows

    async def _drain(self) -> None:
        while True:
            entries = await self.log.after(self.published)
            await self._publish(entries)
            if len(entries) < BATCH:
                return

    async def _publish(self, entries: list[Entry]) -> None:
        """Publish ``entries`` (in position order) past the last one published."""
        for entry in entries:
            if entry.position <= self.published:
                continue  # a prefetch may hold entries another pass published
            try:
                event = self.event(entry)
            except Exception:
                # A state its fields' kinds cannot read back (another writer
                # stored, say, text in a SQLite date column): no event can be
                # made of it, and it must not stop every event after it.
                _log.exception(
                    "change log entry %d (%s %s of %s) cannot be published; skipped",
                    entry.position,
                    entry.collection,
                    entry.action,
                    entry.key,
                )
                event = None
            if event is not None:
                await self._events.publish(event)
            self.published = entry.position

    def event(self, entry: Entry) -> Event | None:
        """The event an entry means; None for a collection since dropped, or a change
        nobody is told of (a file's title, a notification changed other than seen)."""
        collection = self._registry.peek(entry.collection)
        if collection is None:
            return None
        new = restore(collection, entry.new) if entry.new is not None else None
        old = restore(collection, entry.old) if entry.old is not None else None
        state = new if new is not None else old
        assert state is not None
        when, position = entry.changed_at, entry.position
        if entry.collection == "notifications":
            action = {"create": "new", "delete": "deleted"}.get(entry.action)
            if action is None and old is not None and not old.get("seen") and state.get("seen"):
                action = "seen"
            if action is None:
                return None
            return NotificationChanged(action, state, when, position)  # type: ignore[arg-type]
        if entry.collection == "files":
            action = {"create": "uploaded", "delete": "deleted"}.get(entry.action)
            if action is None:
                return None
            return FileChanged(action, state, entry.user_id, when, position)  # type: ignore[arg-type]
        return ChangeEvent(
            collection=collection.name,
            action=entry.action,  # type: ignore[arg-type]
            key=state[collection.primary_key],
            item=state,
            previous=old,
            user_id=entry.user_id,
            timestamp=when,
            position=position,
        )

    async def figures(self) -> tuple[int, int]:
        """The log's entries and how many of them are not published yet (the metrics):
        one read of the database."""
        entries, last, published = await self.log.figures()
        if self.leading:
            published = max(published, self.published)
        return entries, max(0, last - published)

    async def status(self) -> dict[str, Any]:
        """The log's size and how far behind publishing is (``/stats/realtime``)."""
        last = await self.log.last_position()
        published = self.published if self.leading else await self.log.published()
        return {
            "entries": await self.log.size(),
            "lastPosition": last,
            "published": published,
            "behind": max(0, last - published),
            "publishingHere": self.leading,
            "retentionSeconds": self._retention,
        }

    # -- the cursor ------------------------------------------------------------------------

    async def _save_later(self) -> None:
        await asyncio.sleep(SAVE_EVERY)
        try:
            await self._save()
        except Exception:
            _log.exception("saving the change log relay's cursor failed; it tries again")

    async def _save(self) -> None:
        position = self.published
        if position > self._saved:
            await self.log.save_published(position)
            self._saved = position

    # -- noticing other writers --------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._leader is not None:
                    await self._check_lead()
                if not self.leading:
                    await self._try_to_lead()
                await self.flush()
            except Exception:
                _log.exception("the change log relay could not take the lead; it tries again")

    async def _try_to_lead(self) -> None:
        """PostgreSQL: become the publishing relay if no process is."""
        if self._db.is_sqlite or self._leader is not None:
            return
        raw = await self._db.engine.raw_connection()
        try:
            connection: Any = raw.driver_connection  # asyncpg's
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                raw.invalidate()
                return
            await connection.add_listener(capture.NOTIFY_CHANNEL, self._notified)
        except BaseException:
            raw.invalidate()
            raise
        self._leader = raw
        self.log.postgres = connection
        self.published = self._saved = await self.log.published()
        _log.warning(
            "this process (pid %d on %s) now publishes the change log, from position %d",
            os.getpid(),
            socket.gethostname(),
            self.published,
            extra={
                "event": "relay_takeover",
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "published": self.published,
            },
        )

    async def _check_lead(self) -> None:
        """Give the lead up if its connection died (PostgreSQL has freed the lock then)."""
        try:
            # Under the drain's lock: an asyncpg connection runs one query at a time.
            async with self._lock, asyncio.timeout(POLL * 4):
                await self._leader.driver_connection.fetchval("SELECT 1")
        except Exception:
            _log.warning(
                "lost the connection that holds the change log's lead",
                extra={"event": "relay_lead_lost", "pid": os.getpid()},
            )
            await self._lost_lead()

    def _notified(self, *args: Any) -> None:
        self._wake.set()

    async def _lost_lead(self) -> None:
        """Give the lead up (its connection closed: PostgreSQL frees the lock)."""
        if self._leader is None:
            return
        leader, self._leader = self._leader, None
        self.log.postgres = None
        with contextlib.suppress(Exception):
            leader.invalidate()

    # -- retention -----------------------------------------------------------------------------

    async def _prune_regularly(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY)
            if not self.leading:
                continue
            try:
                await self.prune()
            except Exception:
                _log.exception("pruning the change log failed; it tries again")

    async def prune(self) -> int:
        """Delete published entries older than the retention, in small transactions."""
        before = utcnow() - timedelta(seconds=self._retention)
        removed = 0
        while True:
            count = await self.log.prune(before, self._saved)
            removed += count
            if count == 0:
                return removed
            await asyncio.sleep(0)  # writers go between the batches
