"""A recovering socket's missed events, read back from the change log.

Each logged entry becomes the event the relay made of it
(:meth:`ChangeRelay.event`) and goes through the router's rules for one
socket, with the socket's rights *now*: what it may no longer read is not
replayed, fields are cut as they would be today, and each event comes once.
"""

from __future__ import annotations

import logging

from livebase.realtime.connections import Connection
from livebase.realtime.emits import notification_emit
from livebase.realtime.rooms import user_room
from livebase.realtime.router import Envelope, Router
from livebase.services.events import ChangeEvent, Event, FileChanged, NotificationChanged
from livebase.services.relay import ChangeRelay
from livebase.storage.changelog import BATCH, Entry

_log = logging.getLogger("livebase.realtime")

# Log entries read per event a replay may hold: a socket that reads little of
# a busy log costs reads, so they are bounded too.
ENTRIES_PER_EVENT = 10


class TooMany(Exception):
    """More missed events (or log entries to read) than a replay may hold."""


class Replay:
    def __init__(self, relay: ChangeRelay, router: Router, max_events: int) -> None:
        self._relay = relay
        self._router = router
        self.max_events = max_events

    async def missed(
        self, connection: Connection, after: int, until: int, already: int = 0
    ) -> list[Envelope]:
        """The events for ``connection`` at positions in (``after``, ``until``], in order.

        Raises :class:`TooMany` past :attr:`max_events` (counting ``already``)."""
        envelopes: list[Envelope] = []
        budget = (self.max_events + 1) * ENTRIES_PER_EVENT
        position = after
        while position < until:
            if budget <= 0:
                raise TooMany(f"more than {self.max_events * ENTRIES_PER_EVENT} entries to read")
            limit = min(BATCH, budget)
            entries = await self._relay.log.read(position, limit)
            budget -= len(entries)
            for entry in entries:
                if entry.position > until:
                    return envelopes
                position = entry.position
                envelope = self._for(connection, entry)
                if envelope is not None:
                    envelopes.append(envelope)
                    if already + len(envelopes) > self.max_events:
                        raise TooMany(f"more than {self.max_events} missed events")
            if len(entries) < limit:
                return envelopes  # the log holds nothing more yet
        return envelopes

    def _for(self, connection: Connection, entry: Entry) -> Envelope | None:
        try:
            event = self._relay.event(entry)
        except Exception:
            return None  # the relay skipped it too, and said so
        return self.route(connection, event) if event is not None else None

    def route(self, connection: Connection, event: Event) -> Envelope | None:
        if isinstance(event, ChangeEvent):
            return self._router.change_for(connection, event)
        if isinstance(event, FileChanged):
            return self._router.file_for(connection, event)
        if isinstance(event, NotificationChanged):
            emit = notification_emit(event)
            if connection.user_id is None or emit.room != user_room(connection.user_id):
                return None
            return Envelope(emit.event, emit.payload, (connection.sid,), emit.position)
        return None
