"""The first half of the event pipeline: who gets which payload.

Every outgoing event is routed here, then handed to :mod:`delivery`. For an
item change the router walks the *distinct read scopes* of the sockets that
listen (collection room and item room, each socket once), checks the item
against each scope once, cuts it to that scope's fields once, and hands over
one payload per scope with the sockets that share it.

Who wrote a change (``userId`` of item events, ``user`` of file events) is
part of what is cut: it goes to sockets whose scope may read the field that
REST shows it in (``userUpdated`` of the collection, ``uploadedBy`` of
``files``) and to the writer's own sockets; others get null.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Collection as Sized
from dataclasses import dataclass
from typing import Any

from livebase.realtime.audience import Audience
from livebase.realtime.connections import Connection, Connections
from livebase.realtime.rooms import item_room, user_room
from livebase.services.events import ChangeEvent, FileChanged
from livebase.services.registry import CollectionRegistry
from livebase.storage.types import utcnow

ITEM_EVENTS = {"create": "item.created", "update": "item.updated", "delete": "item.deleted"}
FILE_EVENT_FIELDS = ("id", "filename", "size", "mimetype")
# Where REST shows who wrote: an item's last writer, a file's uploader.
ITEM_WRITER_FIELD = "userUpdated"
FILE_WRITER_FIELD = "uploadedBy"


@dataclass(frozen=True)
class Envelope:
    """One payload, encoded once, for a set of sockets."""

    event: str
    payload: Any
    sids: Sized[str]
    position: int | None = None  # the change log entry it tells of; None: not a logged change
    source: object = None  # what made it, when that matters (a live query's group)
    # Made for its sockets alone, after the fact (a live query brought up to date): never
    # taken for an event their start or a replay already covered.
    personal: bool = False


class Router:
    def __init__(
        self,
        rooms: Callable[[], dict[str | None, Any]],
        connections: Connections,
        audience: Audience,
        registry: CollectionRegistry,
        excluded: set[str],
    ) -> None:
        # python-socketio's room table for namespace "/", looked up on each use:
        # python-socketio deletes it when its last room empties and makes a new one later.
        self._rooms = rooms
        self._connections = connections
        self._audience = audience
        self._registry = registry
        self._excluded = excluded

    def members(self, room: str) -> Sized[str]:
        return self._rooms().get(room) or ()

    def not_broadcast(self, name: str) -> str | None:
        """Why changes of collection ``name`` are never broadcast (§6.3 rule 6), if they are not."""
        collection = self._registry.peek(name)
        if collection is None:
            return "the collection no longer exists"
        if not collection.realtime:
            return f"the collection's schema says realtime: false ({name})"
        if name in self._excluded:
            return f"the collection is in SOCKET_EXCLUDE_COLLECTIONS ({name})"
        return None

    @staticmethod
    def listens(connection: Connection, event: ChangeEvent) -> bool:
        """Whether ``connection`` is in a room that receives ``event``."""
        return event.collection in connection.collections or (
            item_room(event.collection, event.key) in connection.rooms
        )

    def change(self, event: ChangeEvent) -> list[Envelope]:
        collection = self._registry.peek(event.collection)
        if collection is None or not collection.realtime or event.collection in self._excluded:
            return []
        groups = self._audience.groups(event.collection)
        extra = self._item_room_only(event)
        writer = self._sids_of_user(event.user_id)
        envelopes = []
        name, position = ITEM_EVENTS[event.action], event.position
        for scope, sids in (*groups.items(), *extra.items()):
            view = self._audience.view(collection, scope)
            if not view.matches(event.item):
                continue
            payload = _item_payload(event, view.project(event.item))
            if ITEM_WRITER_FIELD in view.fields:
                envelopes.append(Envelope(name, payload, sids, position))
                continue
            own = writer.intersection(sids)
            if own:
                envelopes.append(Envelope(name, payload, own, position))
            others = set(sids) - own if own else sids
            if others:
                envelopes.append(Envelope(name, {**payload, "userId": None}, others, position))
        return envelopes

    def change_for(
        self,
        connection: Connection,
        event: ChangeEvent,
        scopes: dict[str, Any] | None = None,
        payloads: dict[tuple[Any, ...], Any] | None = None,
    ) -> Envelope | None:
        """:meth:`change` for one socket, from the rooms it holds (a recovery's replay).

        ``scopes`` keeps the socket's read scope per collection between calls;
        ``payloads`` keeps, between sockets, the payload of each (event, scope,
        whether the socket's user wrote it), None if that scope does not match.
        """
        collection = self._registry.peek(event.collection)
        if collection is None or not collection.realtime or event.collection in self._excluded:
            return None
        if not self.listens(connection, event):
            return None
        scopes = {} if scopes is None else scopes
        if event.collection not in scopes:
            scopes[event.collection] = self._audience.read_scope(connection, event.collection)
        scope = scopes[event.collection]
        if scope is None:
            return None
        own = connection.user_id is not None and connection.user_id == event.user_id
        key = (event.position, event.collection, scope, own)
        if payloads is None or key not in payloads:
            payload = self._payload_for(collection, scope, event, own)
            if payloads is None:
                return self._envelope_for(connection, event, payload)
            payloads[key] = payload
        return self._envelope_for(connection, event, payloads[key])

    def _payload_for(
        self, collection: Any, scope: Any, event: ChangeEvent, own: bool
    ) -> dict[str, Any] | None:
        view = self._audience.view(collection, scope)
        if not view.matches(event.item):
            return None
        payload = _item_payload(event, view.project(event.item))
        if ITEM_WRITER_FIELD not in view.fields and not own:
            payload["userId"] = None
        return payload

    @staticmethod
    def _envelope_for(
        connection: Connection, event: ChangeEvent, payload: dict[str, Any] | None
    ) -> Envelope | None:
        if payload is None:
            return None
        return Envelope(ITEM_EVENTS[event.action], payload, (connection.sid,), event.position)

    def _sids_of_user(self, user_id: str | None) -> set[str]:
        return set(self.members(user_room(user_id))) if user_id else set()

    def _item_room_only(self, event: ChangeEvent) -> dict[Any, set[str]]:
        """Sockets in ``item:{c}:{id}`` but not in the collection room, by scope."""
        extra: dict[Any, set[str]] = {}
        for sid in self.members(item_room(event.collection, event.key)):
            connection = self._connections.get(sid)
            if connection is None or self._audience.scope_of(sid, event.collection) is not None:
                continue
            scope = self._audience.read_scope(connection, event.collection)
            if scope is not None:
                extra.setdefault(scope, set()).add(sid)
        return extra

    def file(self, event: FileChanged) -> list[Envelope]:
        """``file.*`` to sockets whose role may read the file, and to its uploader's.

        Each gets the file cut to the fields it may read, as for items. The
        uploader's sockets get, on upload, the whole record (the upload's
        response gave it to them) and later at least the id.
        """
        row = event.file
        cuts = self._file_readers(row)  # sid -> (file fields, whether the writer is shown)
        uploader = row.get(FILE_WRITER_FIELD)
        for sid in self._sids_of_user(str(uploader) if uploader else None):
            cuts[sid] = _with_uploaders_fields(event, cuts.get(sid, ((), False)))
        for sid in self._sids_of_user(event.user_id).intersection(cuts):
            cuts[sid] = (cuts[sid][0], True)
        by_cut: dict[tuple[tuple[str, ...], bool], list[str]] = {}
        for sid, cut in cuts.items():
            by_cut.setdefault(cut, []).append(sid)
        return [
            Envelope(f"file.{event.action}", self._file_payload(event, *cut), sids, event.position)
            for cut, sids in by_cut.items()
        ]

    def file_for(self, connection: Connection, event: FileChanged) -> Envelope | None:
        """:meth:`file` for one socket (a recovery's replay)."""
        files = self._registry.peek("files")
        cut: tuple[tuple[str, ...], bool] | None = None
        scope = None
        if files is not None and "files" in connection.collections:
            scope = self._audience.read_scope(connection, "files")
        if files is not None and scope is not None:
            view = self._audience.view(files, scope)
            if view.matches(event.file):
                fields = tuple(f for f in FILE_EVENT_FIELDS if f in view.fields)
                cut = (fields, FILE_WRITER_FIELD in view.fields)
        user = connection.user_id
        uploader = event.file.get(FILE_WRITER_FIELD)
        if user is not None and uploader is not None and str(uploader) == user:
            cut = _with_uploaders_fields(event, cut or ((), False))
        if cut is None:
            return None
        if user is not None and user == event.user_id:
            cut = (cut[0], True)
        payload = self._file_payload(event, *cut)
        return Envelope(f"file.{event.action}", payload, (connection.sid,), event.position)

    def _file_readers(self, row: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], bool]]:
        files = self._registry.peek("files")
        cuts: dict[str, tuple[tuple[str, ...], bool]] = {}
        if files is None:
            return cuts
        for scope, sids in self._audience.groups("files").items():
            view = self._audience.view(files, scope)
            if view.matches(row):
                fields = tuple(f for f in FILE_EVENT_FIELDS if f in view.fields)
                cuts.update(dict.fromkeys(sids, (fields, FILE_WRITER_FIELD in view.fields)))
        return cuts

    @staticmethod
    def _file_payload(event: FileChanged, fields: tuple[str, ...], shown: bool) -> dict[str, Any]:
        return {
            "file": {name: event.file.get(name) for name in fields},
            "action": event.action,
            "user": event.user_id if shown else None,
            "timestamp": event.timestamp,
        }

    def to_room(
        self,
        room: str,
        event: str,
        payload: Any,
        position: int | None = None,
        skip: str | None = None,
    ) -> list[Envelope]:
        members = [sid for sid in self.members(room) if sid != skip]
        return [Envelope(event, payload, members, position)] if members else []

    def to_sid(self, sid: str, event: str, payload: Any) -> list[Envelope]:
        return [Envelope(event, payload, (sid,))]

    def to_everyone(self, event: str, payload: Any) -> list[Envelope]:
        return [Envelope(event, payload, list(self._connections.by_sid))]


def _item_payload(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "collection": event.collection,
        "item": item,
        "userId": event.user_id,
        "timestamp": event.timestamp,
    }


def _with_uploaders_fields(
    event: FileChanged, cut: tuple[tuple[str, ...], bool]
) -> tuple[tuple[str, ...], bool]:
    """What the uploader's sockets see of their file: on upload all of the event's
    fields (the upload's response gave them the record), later at least the id."""
    own = FILE_EVENT_FIELDS if event.action == "uploaded" else ("id",)
    fields, shown = cut
    return tuple(f for f in FILE_EVENT_FIELDS if f in fields or f in own), shown


def stamped(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload with the ISO-8601 UTC ``timestamp`` every event carries."""
    return {**payload, "timestamp": utcnow()}
