"""The delivery trace: why did (not) a user's sockets get the event of one log entry?

``GET /stats/realtime/trace?offset=O&user=U`` (docs/operations.md, "Delivery
trace"). The entry is read from the change log and made into its event as
the relay made it (:meth:`ChangeRelay.event`). Every process of the cluster
hands over the recent history of U's sockets (:mod:`history`); for each
socket the state it had when the event was handled (its rooms, its role)
is rebuilt, and the router's own per-socket rules (:meth:`Router.change_for`,
:meth:`Router.file_for`, as a recovery's replay uses them) are run again
against it. Whether the frame was written, is still queued or was dropped
with a slow consumer is told from positions, not from a record of every
delivery.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from livebase.realtime.audience import Audience
from livebase.realtime.cluster import Manager
from livebase.realtime.connections import Connection, Connections
from livebase.realtime.delivery import Delivery
from livebase.realtime.emits import notification_emit
from livebase.realtime.history import TRAIL_EVENTS, SocketHistory
from livebase.realtime.rooms import collection_room, item_room
from livebase.realtime.router import FILE_EVENT_FIELDS, ITEM_EVENTS, Envelope, Router
from livebase.services.accountability import Accountability
from livebase.services.events import ChangeEvent, Event, FileChanged, NotificationChanged
from livebase.services.permissions import PermissionService
from livebase.services.registry import CollectionRegistry
from livebase.services.relay import ChangeRelay
from livebase.storage.changelog import Entry

_log = logging.getLogger("livebase.realtime")

QUESTION = "trace"
BEFORE_ALL = -1  # a position before every mark: a socket's state as it came in
COLLECTION = "collection:"
NOTE = (
    "Rules are re-evaluated with today's permissions and schemas, applied to the role and "
    "rooms each socket had when the event was handled (from its recent history on its "
    "node). A permission changed since the commit is not seen as it was then. "
    "Live-query events (subscription.*) are not traced."
)

WRITTEN, QUEUED, REPLAYED = "written", "queued", "replayed"
NOT_DELIVERED, UNKNOWN = "not delivered", "unknown"


class DeliveryTrace:
    def __init__(
        self,
        relay: ChangeRelay,
        router: Router,
        audience: Audience,
        permissions: PermissionService,
        registry: CollectionRegistry,
        history: SocketHistory,
        connections: Connections,
        delivery: Delivery,
        manager: Manager,
        *,
        auto_join: bool,
    ) -> None:
        self._relay = relay
        self._router = router
        self._audience = audience
        self._permissions = permissions
        self._registry = registry
        self._history = history
        self._connections = connections
        self._delivery = delivery
        self._manager = manager
        self._auto_join = auto_join

    async def trace(self, position: int, user_id: str) -> dict[str, Any] | None:
        """The answer for the entry at ``position`` and ``user_id``'s sockets;
        None if the log does not hold that entry (pruned, or never written)."""
        entries = await self._relay.log.read(position - 1, 1)
        if not entries or entries[0].position != position:
            return None
        entry = entries[0]
        event = self._event(entry)
        names = _event_names(event)
        trails = self.here(position, names, user_id)
        asked = {"position": position, "events": names, "user": user_id}
        answers = await self._manager.ask(QUESTION, asked)
        for _node, found in answers:
            if isinstance(found, list):
                trails += found
        by_sid: dict[str, list[dict[str, Any]]] = {}
        for trail in trails:
            by_sid.setdefault(str(trail["sid"]), []).append(trail)
        committed = entry.changed_at.timestamp()
        sockets = []
        for stretches in by_sid.values():
            stretches.sort(key=lambda t: (t["generation"], t["connectedAt"]))
            if not any(_alive_after(t, position, committed) for t in stretches):
                continue
            sockets.append(self._socket(event, position, stretches))
        sockets.sort(key=lambda s: str(s["connectedAt"]))
        return {
            "entry": {
                "offset": str(entry.position),
                "collection": entry.collection,
                "key": entry.key,
                "action": entry.action,
                "userId": entry.user_id,
                "time": _iso(committed),
            },
            "events": names,
            "user": user_id,
            "sockets": sockets,
            "nodes": {
                "answered": 1 + len(answers),  # this one and those that answered in time
                "clustered": self._manager.clustered,
            },
            "note": NOTE,
            "permissionsChangedSince": [
                {"role": role, "at": _iso(when), "offset": str(mark)}
                for mark, when, role in self._history.rules_changed_since(position)
            ],
            "bounds": {"eventsPerSocket": TRAIL_EVENTS},
        }

    async def answer(self, what: str, body: Any) -> Any:
        """Another process's question (:meth:`Manager.ask`): this process's trails."""
        if what != QUESTION or not isinstance(body, dict):
            return None
        return self.here(int(body["position"]), list(body["events"]), str(body["user"]))

    def here(self, position: int, names: list[str], user_id: str) -> list[dict[str, Any]]:
        """``user_id``'s sockets of this process, and whether the event waits for each."""

        def queued(sid: str) -> bool:
            return any(self._delivery.waiting(sid, name, position) for name in names)

        trails = self._history.of_user(user_id, self._connections.by_sid, queued)
        for trail in trails:
            trail["node"] = self._manager.node_id
        return trails

    def _event(self, entry: Entry) -> Event | None:
        try:
            return self._relay.event(entry)
        except Exception:
            return None  # the relay could not make an event of it either, and said so

    # -- one socket ------------------------------------------------------------------------

    def _socket(
        self, event: Event | None, position: int, stretches: list[dict[str, Any]]
    ) -> dict[str, Any]:
        at_commit = next((t for t in stretches if _connected_at(t, position)), None)
        shown = at_commit or next(
            (t for t in stretches if t["connectedMark"] >= position), stretches[-1]
        )
        answer: dict[str, Any] = {
            "sid": shown["sid"],
            "node": shown["node"],
            "transport": shown["transport"],
            "connectedAt": _iso(shown["connectedAt"]),
            "disconnectedAt": _iso(shown["gone"]["at"]) if shown["gone"] else None,
            "disconnectReason": shown["gone"]["reason"] if shown["gone"] else None,
            "connections": [_stretch(t) for t in stretches],
            "fieldsCut": [],
        }
        if event is None:
            answer.update(outcome=NOT_DELIVERED, reason="the entry makes no event")
            return answer
        if at_commit is not None:
            answer.update(self._at_commit(event, position, at_commit))
            if answer["outcome"] in (WRITTEN, QUEUED):
                return answer
        replay = next((t for t in stretches if _replayed(t, position)), None)
        if replay is not None:
            replayed = self._replayed(event, replay)
            if at_commit is None or replayed["outcome"] == REPLAYED:
                answer.update(replayed, node=replay["node"])
            return answer
        if at_commit is None:
            answer.update(_not_connected(stretches, position), rooms=None)
        return answer

    def _at_commit(self, event: Event, position: int, trail: dict[str, Any]) -> dict[str, Any]:
        """The socket was connected when the event was handled: its rules, then its frame."""
        state = _state_at(trail, position)
        if state is None:
            return {
                "outcome": UNKNOWN,
                "reason": f"its history before this entry is forgotten (the newest "
                f"{TRAIL_EVENTS} room and role changes of a socket are kept)",
                "rooms": None,
            }
        rooms, role = state
        connection = _connection(trail, rooms, role)
        verdict = self._caveat(self._route(event, connection, trail, position), role, position)
        verdict.update(rooms=sorted(rooms), role=role)
        if "envelope" not in verdict:
            return verdict
        del verdict["envelope"]
        verdict.update(_frame(trail, position))
        return verdict

    def _replayed(self, event: Event, trail: dict[str, Any]) -> dict[str, Any]:
        """A recovery's replay covered the position: the rules with its rooms then."""
        state = _state_at(trail, BEFORE_ALL)  # every change since it came back undone
        if state is None:
            return {"outcome": UNKNOWN, "reason": "its history since the recovery is forgotten"}
        rooms, role = state
        verdict = self._route(event, _connection(trail, rooms, role), trail, BEFORE_ALL)
        verdict = self._caveat(verdict, role, trail["connectedMark"])
        verdict.update(rooms=sorted(rooms), role=role)
        if "envelope" in verdict:
            del verdict["envelope"]
            verdict["outcome"] = REPLAYED
            recovered = trail["recovered"]
            verdict["replay"] = {"offset": str(recovered["offset"]), "until": recovered["until"]}
        else:
            verdict["reason"] = f"missed while disconnected, and not replayed: {verdict['reason']}"
        return verdict

    def _caveat(self, verdict: dict[str, Any], role: str, position: int) -> dict[str, Any]:
        """A permission kept the event out by today's rules, but the role's rules changed
        since ``position``: what applied then is not known, so the outcome is not either."""
        if not verdict.pop("byPermission", False):
            return verdict
        changed = [c for c in self._history.rules_changed_since(position) if c[2] in (role, None)]
        if changed:
            verdict["outcome"] = UNKNOWN
            verdict["reason"] = (
                f"the permissions of role {role!r} changed since (at {_iso(changed[0][1])}); "
                f"by today's: {verdict['reason']}"
            )
        return verdict

    # -- the router's rules, for one socket -------------------------------------------------

    def _route(
        self, event: Event, connection: Connection, trail: dict[str, Any], position: int
    ) -> dict[str, Any]:
        """What the router gives ``connection`` of ``event``: ``envelope`` and the fields
        cut, or ``outcome: not delivered`` with the first rule that excluded it."""
        if isinstance(event, ChangeEvent):
            return self._change(event, connection, trail, position)
        if isinstance(event, FileChanged):
            found = self._router.file_for(connection, event)
            if found is None:
                rule = self._permissions.rule(connection.role, "files", "read")
                return _excluded(
                    "not readable: its role may not read this file (read permission on "
                    "files, its conditions) and it did not upload it",
                    rule,
                    by_permission=True,
                )
            cut = [f for f in FILE_EVENT_FIELDS if f not in found.payload["file"]]
            return {"envelope": found, "fieldsCut": cut}
        assert isinstance(event, NotificationChanged)
        emit = notification_emit(event)
        if connection.user_id is None or emit.room != f"user:{connection.user_id}":
            return _excluded(f"the notification is for another user (room {emit.room})")
        return {"envelope": Envelope(emit.event, emit.payload, (connection.sid,))}

    def _change(
        self, event: ChangeEvent, connection: Connection, trail: dict[str, Any], position: int
    ) -> dict[str, Any]:
        name = event.collection
        skipped = self._router.not_broadcast(name)
        if skipped is not None:
            return _excluded(f"never broadcast: {skipped}")
        readable = self._audience.read_scope(connection, name)
        rule = self._permissions.rule(connection.role, name, "read")
        if not self._router.listens(connection, event):
            why, by_permission = self._not_listening(
                connection, name, trail, position, readable is not None
            )
            return _excluded(f"not in a room that receives it: {why}", by_permission=by_permission)
        if readable is None:
            return _excluded(
                f"collection not readable: its role {connection.role!r} has no read "
                f"permission on {name!r}",
                by_permission=True,
            )
        found = self._router.change_for(connection, event)
        if found is None:
            return _excluded(
                f"item outside the read conditions of its role {connection.role!r} on {name!r}",
                rule,
                by_permission=True,
            )
        item = found.payload["item"]
        collection = self._registry.peek(name)
        visible = collection.visible_fields if collection is not None else tuple(event.item)
        cut = [f for f in visible if f in event.item and f not in item]
        writer_hidden = event.user_id is not None and found.payload["userId"] is None
        return {
            "envelope": found,
            "fieldsCut": cut,
            "writerHidden": writer_hidden,
            **({"permission": rule} if rule is not None and cut else {}),
        }

    def _not_listening(
        self,
        connection: Connection,
        name: str,
        trail: dict[str, Any],
        position: int,
        readable: bool,
    ) -> tuple[str, bool]:
        """Why the socket was not in the collection's room; whether that is a permission."""
        room = collection_room(name)
        left = [e for e in trail["events"] if e[0] < position and e[2] == "leave" and e[3] == room]
        if left:
            _mark, when, _, _, why = left[-1]
            return f"it left {room} ({why or 'left'}) at {_iso(when)}", False
        if not readable:
            return (
                f"collection not readable: its role {connection.role!r} has no read "
                f"permission on {name!r}, so it is not in {room}"
            ), True
        joined = [
            e for e in trail["events"] if e[0] >= position and e[2] == "join" and e[3] == room
        ]
        if joined:
            _mark, when, _, _, why = joined[0]
            return f"it joined {room} only later ({why or 'joined'}) at {_iso(when)}", False
        if not self._auto_join:
            return (
                f"SOCKET_AUTO_JOIN_COLLECTIONS is false and it had not joined {room} "
                f"(nor {item_room(name, '<id>')})"
            ), False
        return f"it was not in {room}", False


# -- positions and states ---------------------------------------------------------------


def _alive_after(trail: dict[str, Any], position: int, committed: float) -> bool:
    """Whether the socket was connected at any time from the entry's commit until now."""
    gone = trail["gone"]
    return gone is None or gone["mark"] >= position or gone["at"] >= committed


def _connected_at(trail: dict[str, Any], position: int) -> bool:
    """Whether the socket was in when ``position`` was handled: connected before it
    (events up to its start, or up to where its replay reached, were not live
    events of its own), and gone after it."""
    gone, recovered = trail["gone"], trail["recovered"]
    start = max(trail["connectedMark"], recovered["until"] if recovered else 0)
    return start < position and (gone is None or gone["mark"] >= position)


def _replayed(trail: dict[str, Any], position: int) -> bool:
    recovered = trail["recovered"]
    return recovered is not None and recovered["after"] < position <= recovered["until"]


def _state_at(trail: dict[str, Any], position: int) -> tuple[set[str], str] | None:
    """The rooms and role the socket had when ``position`` was handled, from its
    current (or final) state with the changes since undone; None if forgotten."""
    forgotten = trail["forgottenUpTo"]
    if forgotten is not None and forgotten >= position:
        return None
    last = trail["now"] if trail["gone"] is None else trail["gone"]
    rooms, role = set(last["rooms"]), str(last["role"])
    for mark, _when, kind, subject, _detail in reversed(trail["events"]):
        if mark < position:
            break
        if kind == "join":
            rooms.discard(subject)
        elif kind == "leave":
            rooms.add(subject)
        elif kind == "role":
            role = subject
    return rooms, role


def _connection(trail: dict[str, Any], rooms: set[str], role: str) -> Connection:
    who = Accountability(user_id=trail["userId"], role=role, session_id=trail["sessionId"])
    connection = Connection(sid=trail["sid"], eio_sid="", who=who)
    for room in rooms:
        if room.startswith(COLLECTION):
            connection.collections.add(room.removeprefix(COLLECTION))
        else:
            connection.rooms.add(room)
    return connection


def _frame(trail: dict[str, Any], position: int) -> dict[str, Any]:
    """Routed to the socket: was its frame written, is it queued, or was it lost?"""
    now, gone, slow = trail.get("now"), trail["gone"], trail["slow"]
    if now is not None and now["queued"]:
        return {"outcome": QUEUED}
    sent = now["sent"] if now is not None else gone["sent"]
    if slow is not None:
        written = slow["writtenUpTo"]
        if written is not None and position <= written:
            return {"outcome": WRITTEN}
        why = f"slow consumer disconnected before it was written: {slow['reason']}"
        if written is None and position <= sent:
            why += " (the socket has no offsets: whether this frame had left is unknown)"
        return {"outcome": NOT_DELIVERED, "reason": why}
    if position <= sent:
        return {"outcome": WRITTEN}
    if gone is not None:
        return {"outcome": NOT_DELIVERED, "reason": f"disconnecting ({gone['reason']})"}
    return {"outcome": UNKNOWN, "reason": "routed to it, but no frame of it was written yet"}


def _not_connected(stretches: list[dict[str, Any]], position: int) -> dict[str, Any]:
    after = next((t for t in stretches if t["connectedMark"] >= position), None)
    if after is not None and after["refused"]:
        reason = (
            f"recovery refused: {after['refused']} (it reconnected after the commit as a new "
            "session, so nothing missed was replayed)"
        )
    elif after is not None:
        reason = f"not connected: connected after the commit ({_iso(after['connectedAt'])})"
    else:
        last = stretches[-1]["gone"]
        reason = f"not connected: disconnected before the commit ({last['reason']})"
    return {"outcome": NOT_DELIVERED, "reason": reason}


def _stretch(trail: dict[str, Any]) -> dict[str, Any]:
    gone = trail["gone"]
    return {
        "node": trail["node"],
        "generation": trail["generation"],
        "transport": trail["transport"],
        "connectedAt": _iso(trail["connectedAt"]),
        "connectedOffset": str(trail["connectedMark"]),
        "disconnectedAt": _iso(gone["at"]) if gone else None,
        "disconnectedOffset": str(gone["mark"]) if gone else None,
        "disconnectReason": gone["reason"] if gone else None,
        "recovered": trail["recovered"],
        "recoveryRefused": trail["refused"],
        "slowConsumer": trail["slow"],
        "changes": [_change(event) for event in trail["events"]],
    }


def _change(event: list[Any]) -> dict[str, Any]:
    mark, when, kind, subject, detail = event
    change = {"offset": str(mark), "at": _iso(when), "change": kind}
    if kind == "role":
        return {**change, "from": subject, "to": detail}
    return {**change, "room": subject, "why": detail}


def _excluded(
    reason: str, rule: dict[str, Any] | None = None, *, by_permission: bool = False
) -> dict[str, Any]:
    found: dict[str, Any] = {"outcome": NOT_DELIVERED, "reason": reason}
    if by_permission:
        found["byPermission"] = True
    if rule is not None:
        found["permission"] = rule
    return found


def _event_names(event: Event | None) -> list[str]:
    if isinstance(event, ChangeEvent):
        return [ITEM_EVENTS[event.action]]
    if isinstance(event, FileChanged):
        return [f"file.{event.action}"]
    if isinstance(event, NotificationChanged):
        return [notification_emit(event).event]
    return []


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
