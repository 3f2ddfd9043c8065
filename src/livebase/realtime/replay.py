"""A recovering socket's missed events, read back from the change log.

Each logged entry becomes the event the relay made of it
(:meth:`ChangeRelay.event`) and goes through the router's rules for one
socket, with the socket's rights *now*: what it may no longer read is not
replayed, fields are cut as they would be today, and each event comes once.
A change reaches the socket's rooms as the item event and its live queries
as the subscription events they would have been.
"""

from __future__ import annotations

from typing import Any

from livebase.realtime.connections import Connection
from livebase.realtime.emits import notification_emit
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.rooms import user_room
from livebase.realtime.router import Envelope, Router
from livebase.services.events import ChangeEvent, Event, FileChanged, NotificationChanged
from livebase.services.relay import ChangeRelay
from livebase.storage.changelog import BATCH, Entry

# Log entries read per event a replay may hold: a socket that reads little of
# a busy log costs reads, so they are bounded too.
ENTRIES_PER_EVENT = 10


class TooMany(Exception):
    """More missed events (or log entries to read) than a replay may hold."""


class Replay:
    """Missed events, read from the log once for every socket that recovers.

    Sockets that drop together recover together and miss the same entries:
    each entry is read and made into its event once (:attr:`_events`, with
    :attr:`_next` saying which logged position follows which: positions only
    grow, so that never changes), and each payload is cut once per read
    scope. Both are bounded (:attr:`_capacity` events); past it they start
    afresh. An event keeps the collection's fields of when it was read: a
    schema change meanwhile shows in the fields the router cuts, as live.
    """

    def __init__(
        self, relay: ChangeRelay, router: Router, live: LiveQueries, max_events: int
    ) -> None:
        self._relay = relay
        self._router = router
        self._live = live
        self.max_events = max_events
        self._capacity = 2 * max_events
        self._next: dict[int, int] = {}  # a position -> the next logged one
        self._events: dict[int, Event | None] = {}  # a logged position -> its event
        self._payloads: dict[tuple[Any, ...], Any] = {}  # (position, scope...) -> payload

    async def missed(
        self, connection: Connection, after: int, until: int, already: int = 0
    ) -> list[Envelope]:
        """The events for ``connection`` at positions in (``after``, ``until``], in order.

        Raises :class:`TooMany` past :attr:`max_events` (counting ``already``)."""
        envelopes: list[Envelope] = []
        scopes: dict[str, Any] = {}
        budget = (self.max_events + 1) * ENTRIES_PER_EVENT
        position = after
        while position < until:
            following = self._next.get(position)
            if following is None:
                if budget <= 0:
                    raise TooMany(
                        f"more than {self.max_events * ENTRIES_PER_EVENT} entries to read"
                    )
                read = await self._read(position, min(BATCH, budget))
                budget -= read
                following = self._next.get(position)
                if following is None:
                    break  # the log holds nothing more yet
            if following > until:
                break
            position = following
            event = self._events.get(position)
            if event is not None:
                envelopes += await self.route(connection, event, scopes)
                if already + len(envelopes) > self.max_events:
                    raise TooMany(f"more than {self.max_events} missed events")
        return envelopes

    async def _read(self, after: int, limit: int) -> int:
        """Read up to ``limit`` entries after ``after`` into the cache; how many came."""
        entries = await self._relay.log.read(after, limit)
        if len(self._events) + len(entries) > self._capacity:
            self._next.clear()
            self._events.clear()
            self._payloads.clear()
        previous = after
        for entry in entries:
            self._next[previous] = entry.position
            self._events[entry.position] = self._event(entry)
            previous = entry.position
        return len(entries)

    def _event(self, entry: Entry) -> Event | None:
        try:
            return self._relay.event(entry)
        except Exception:
            return None  # the relay skipped it too, and said so

    async def route(
        self, connection: Connection, event: Event, scopes: dict[str, Any] | None = None
    ) -> list[Envelope]:
        found: Envelope | None = None
        if isinstance(event, ChangeEvent):
            found = self._router.change_for(connection, event, scopes, self._payloads)
            live = await self._live.change_for(connection, event, self._payloads)
            return [found, *live] if found is not None else live
        if isinstance(event, FileChanged):
            found = self._router.file_for(connection, event)
        elif isinstance(event, NotificationChanged):
            emit = notification_emit(event)
            if connection.user_id is not None and emit.room == user_room(connection.user_id):
                found = Envelope(emit.event, emit.payload, (connection.sid,), emit.position)
        return [found] if found is not None else []
