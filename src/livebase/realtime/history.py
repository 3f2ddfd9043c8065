"""Each socket's recent history on this process, for the delivery trace (:mod:`trace`).

The trace answers "why did (not) this socket get the event at position O?"
by running the router's rules again against the socket's state *at that
time*. That state is kept here, not every delivery: when a socket came and
went (and why), the rooms it joined and left (and why), its role changes, a
slow-consumer drop (with the position up to which its frames had been
written), a recovery (the positions its replay covered) or a refused one.

Every event is stamped with a **mark**: the change-log position this
process had handled when it happened (:class:`offsets.Progress`). An event
at position O met the socket in the state left by the history with marks
below O. The state at O is worked out backwards from the socket's current
(or final) state, undoing the events with marks from O on.

Memory is bounded (docs/operations.md, "Delivery trace"): at most
:data:`TRAIL_EVENTS` events per socket (past that the oldest are forgotten,
and the trace says ``unknown`` for earlier positions), and at most
:data:`GONE_SOCKETS` sockets remembered after they went, each for the change
log's retention at most, oldest forgotten first. A connected socket that
changes no room costs one small object.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from livebase.realtime.connections import Connection
from livebase.realtime.offsets import Progress
from livebase.realtime.rooms import collection_room

TRAIL_EVENTS = 32  # room and role changes kept per socket
GONE_SOCKETS = 10_000  # sockets remembered after they went, per process ...
GONE_BYTES = 16 * 1024 * 1024  # ... and the memory they may hold together, about
REFUSALS = 1_000  # refused recoveries kept until their new socket is in
RULE_CHANGES = 1_000  # changes of a role's permissions remembered
USER_SOCKETS = 200  # a user's sockets a process reports to one trace: the newest

# The trailing offset of an event packet (``42["item.created",{...},"17"]``).
_PACKET_OFFSET = re.compile(r',"(\d{1,18})"\]$')
# Events that carry their own change-log position (others carry the socket's).
_LOGGED_EVENTS = ("item.", "file.", "notification.", "subscription.")

Transport = Callable[[str], str | None]  # eio_sid -> "websocket" / "polling", None if gone


class Trail:
    """One socket's history, from its connect (or the recovery of its session) on."""

    __slots__ = (
        "connected_at",
        "connected_mark",
        "dropped_mark",
        "events",
        "evicted",
        "generation",
        "gone",
        "recovered",
        "refused",
        "sid",
        "size",
        "slow",
        "transport",
        "who",
    )

    def __init__(self, connection: Connection, mark: int, transport: str | None) -> None:
        self.sid = connection.sid
        self.who = connection.who
        self.generation = connection.generation
        self.connected_at = time.time()
        self.connected_mark = mark
        self.transport = transport
        # (mark, when, kind, room or role, detail): "join", "leave", "role"
        self.events: list[tuple[int, float, str, str, str]] = []
        self.dropped_mark: int | None = None  # the newest mark of the events forgotten
        self.recovered: dict[str, int] | None = None  # the replay: offset, after, until, missed
        self.refused: str | None = None  # why this connect could not recover its session
        self.evicted: str | None = None  # why the server disconnected it
        self.slow: dict[str, Any] | None = None  # a slow-consumer drop
        self.gone: dict[str, Any] | None = None  # its disconnect, once it went
        self.size = 0  # about the bytes it holds, once gone

    def add(self, mark: int, kind: str, subject: str, detail: str) -> None:
        if len(self.events) >= TRAIL_EVENTS:
            self.dropped_mark = self.events.pop(0)[0]
        self.events.append((mark, time.time(), kind, subject, detail))


class SocketHistory:
    """The trails of this process's sockets, connected and recently gone."""

    def __init__(self, progress: Progress, retention: float, transport: Transport) -> None:
        self._progress = progress
        self._retention = retention
        self._transport = transport
        self._live: dict[str, Trail] = {}
        # By (sid, generation): a session recovered here is a new trail of the same socket.
        self._gone: OrderedDict[tuple[str, int], Trail] = OrderedDict()
        self._gone_bytes = 0
        self._refusals: OrderedDict[str, str] = OrderedDict()  # eio_sid -> reason
        # (mark, when, role): the trace applies today's rules, and says when they changed.
        self._rule_changes: deque[tuple[int, float, str | None]] = deque(maxlen=RULE_CHANGES)

    @property
    def _mark(self) -> int:
        return self._progress.position

    # -- recording ---------------------------------------------------------------------

    def connected(self, connection: Connection, recovered: dict[str, int] | None = None) -> None:
        """``connection`` is in, with its rooms (marks from here on are its own)."""
        mark = max(self._mark, connection.start)
        trail = Trail(connection, mark, self._transport(connection.eio_sid))
        trail.recovered = recovered
        trail.refused = self._refusals.pop(connection.eio_sid, None)
        self._live[connection.sid] = trail

    def refused(self, eio_sid: str, reason: str) -> None:
        """A handshake asked to recover a session and was refused; its socket follows."""
        self._refusals[eio_sid] = reason
        while len(self._refusals) > REFUSALS:
            self._refusals.popitem(last=False)

    def joined(self, sid: str, room: str, why: str) -> None:
        trail = self._live.get(sid)
        if trail is not None:
            trail.add(self._mark, "join", room, why)

    def left(self, sid: str, room: str, why: str) -> None:
        trail = self._live.get(sid)
        if trail is not None:
            trail.add(self._mark, "leave", room, why)

    def role_changed(self, sid: str, old: str, new: str) -> None:
        trail = self._live.get(sid)
        if trail is not None:
            trail.add(self._mark, "role", old, new)

    def permissions_changed(self, role: str | None) -> None:
        self._rule_changes.append((self._mark, time.time(), role))

    def rules_changed_since(self, position: int) -> list[tuple[int, float, str | None]]:
        """The changes of permissions handled here from ``position`` on (the newest
        :data:`RULE_CHANGES`)."""
        return [change for change in self._rule_changes if change[0] >= position]

    def evicted(self, sid: str, reason: str) -> None:
        trail = self._live.get(sid)
        if trail is not None and trail.evicted is None:
            trail.evicted = reason

    def slow_consumer(self, connection: Connection, reason: str, queue: Any) -> None:
        """A slow consumer is dropped: what waited in ``queue`` will never be written.

        The first packet queued tells up to where frames were written: a
        logged event's own position (those before it were written), or any
        other event's offset (the position handled when it was sent). A
        socket without offsets (it opted out of recovery) cannot tell.
        """
        trail = self._live.get(connection.sid)
        if trail is None or trail.slow is not None:
            return
        written: int | None = connection.sent
        first = next((p for p in list(getattr(queue, "_queue", ())) if p is not None), None)
        if first is not None:
            written = _written_before(first, connection.pid is not None)
        trail.slow = {
            "mark": self._mark,
            "at": time.time(),
            "reason": reason,
            "sent": connection.sent,
            "writtenUpTo": written,
        }

    def disconnected(self, connection: Connection, reason: str) -> None:
        trail = self._live.get(connection.sid)
        if trail is None or trail.generation != connection.generation:
            return  # not this connection's: its session's recovery is in already
        del self._live[connection.sid]
        trail.gone = {
            "mark": self._mark,
            "at": time.time(),
            "reason": trail.evicted or reason,
            "sent": connection.sent,
            "rooms": _rooms_of(connection),
            "role": connection.role,
        }
        transport = self._transport(connection.eio_sid)
        if transport is not None:
            trail.transport = transport
        trail.size = _footprint(trail)
        self._gone_bytes += trail.size
        self._gone[(connection.sid, trail.generation)] = trail
        self._forget_old()

    def _forget_old(self) -> None:
        """At most :data:`GONE_SOCKETS` gone sockets, none older than the log's retention."""
        gone = self._gone
        too_old = time.time() - self._retention
        while gone:
            oldest = next(iter(gone.values()))
            fits = len(gone) <= GONE_SOCKETS and self._gone_bytes <= GONE_BYTES
            if fits and oldest.gone is not None and oldest.gone["at"] >= too_old:
                break
            self._gone_bytes -= gone.popitem(last=False)[1].size

    def sizes(self) -> dict[str, int]:
        return {
            "connected": len(self._live),
            "gone": len(self._gone),
            "goneBytes": self._gone_bytes,
        }

    # -- reading -----------------------------------------------------------------------

    def of_user(
        self, user_id: str, connections: dict[str, Connection], queued: Callable[[str], bool]
    ) -> list[dict[str, Any]]:
        """The trails of ``user_id``'s sockets here, as plain data (they may cross
        processes); a connected socket's current state, and whether the event
        asked about still waits for it here (``queued``)."""
        self._forget_old()
        found = []
        for trail in (*self._live.values(), *self._gone.values()):
            if trail.who.user_id != user_id:
                continue
            connection = connections.get(trail.sid)
            if trail.gone is None and connection is None:
                continue  # going at this very moment
            data = _as_data(trail)
            if trail.gone is None and connection is not None:
                data["now"] = {
                    "sent": connection.sent,
                    "rooms": _rooms_of(connection),
                    "role": connection.role,
                    "queued": queued(trail.sid),
                }
                data["transport"] = self._transport(connection.eio_sid) or trail.transport
            found.append(data)
        found.sort(key=lambda data: float(data["connectedAt"]))
        return found[-USER_SOCKETS:]


def _as_data(trail: Trail) -> dict[str, Any]:
    return {
        "sid": trail.sid,
        "userId": trail.who.user_id,
        "role": trail.who.role,
        "sessionId": trail.who.session_id,
        "generation": trail.generation,
        "transport": trail.transport,
        "connectedAt": trail.connected_at,
        "connectedMark": trail.connected_mark,
        "events": [list(event) for event in trail.events],
        "forgottenUpTo": trail.dropped_mark,
        "recovered": trail.recovered,
        "refused": trail.refused,
        "slow": trail.slow,
        "gone": trail.gone,
    }


def _footprint(trail: Trail) -> int:
    """About the bytes a gone socket's trail holds (objects, strings and their headers)."""
    rooms = trail.gone["rooms"] if trail.gone is not None else ()
    events = sum(200 + len(e[3]) + len(e[4]) for e in trail.events)
    return 1_000 + sum(60 + len(room) for room in rooms) + events


def _rooms_of(connection: Connection) -> list[str]:
    rooms = {collection_room(c) for c in connection.collections} | connection.rooms
    return sorted(rooms)


def _written_before(packet: Any, tagged: bool) -> int | None:
    """The newest position written before ``packet``, the first of a dropped queue."""
    encoded = getattr(packet, "encode_cache", None)
    if not tagged or not isinstance(encoded, str) or not encoded.startswith('42["'):
        return None
    found = _PACKET_OFFSET.search(encoded)
    if found is None:
        return None
    position = int(found.group(1))
    event = encoded[4 : encoded.find('"', 4)]
    return position - 1 if event.startswith(_LOGGED_EVENTS) else position
