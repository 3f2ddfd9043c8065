"""The first half of the event pipeline: who gets which payload.

Every outgoing event is routed here, then handed to :mod:`delivery`. For an
item change the router walks the *distinct read scopes* of the sockets that
listen (collection room and item room, each socket once), checks the item
against each scope once, cuts it to that scope's fields once, and hands over
one payload per scope with the sockets that share it.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Collection as Sized
from dataclasses import dataclass
from typing import Any

from livebase.realtime.audience import Audience
from livebase.realtime.connections import Connections
from livebase.realtime.rooms import item_room, user_room
from livebase.services.events import ChangeEvent, FileChanged
from livebase.services.registry import CollectionRegistry
from livebase.storage.types import utcnow

ITEM_EVENTS = {"create": "item.created", "update": "item.updated", "delete": "item.deleted"}


@dataclass(frozen=True)
class Envelope:
    """One payload, encoded once, for a set of sockets."""

    event: str
    payload: Any
    sids: Sized[str]


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

    def change(self, event: ChangeEvent) -> list[Envelope]:
        collection = self._registry.peek(event.collection)
        if collection is None or not collection.realtime or event.collection in self._excluded:
            return []
        groups = self._audience.groups(event.collection)
        extra = self._item_room_only(event)
        envelopes = []
        base = {
            "collection": event.collection,
            "userId": event.user_id,
            "timestamp": event.timestamp,
        }
        name = ITEM_EVENTS[event.action]
        for scope, sids in (*groups.items(), *extra.items()):
            view = self._audience.view(collection, scope)
            if view.matches(event.item):
                envelopes.append(Envelope(name, {**base, "item": view.project(event.item)}, sids))
        return envelopes

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
        """``file.*`` to the uploader's room and to sockets whose role may read the file."""
        row = event.file
        sids: set[str] = set()
        if row.get("uploadedBy"):
            sids.update(self.members(user_room(str(row["uploadedBy"]))))
        files = self._registry.peek("files")
        if files is not None:
            for scope, members in self._audience.groups("files").items():
                if self._audience.view(files, scope).matches(row):
                    sids.update(members)
        payload = {
            "file": {k: row.get(k) for k in ("id", "filename", "size", "mimetype")},
            "action": event.action,
            "user": event.user_id,
            "timestamp": event.timestamp,
        }
        return [Envelope(f"file.{event.action}", payload, sids)] if sids else []

    def to_room(self, room: str, event: str, payload: Any) -> list[Envelope]:
        members = self.members(room)
        return [Envelope(event, payload, list(members))] if members else []

    def to_sid(self, sid: str, event: str, payload: Any) -> list[Envelope]:
        return [Envelope(event, payload, (sid,))]

    def to_everyone(self, event: str, payload: Any) -> list[Envelope]:
        return [Envelope(event, payload, list(self._connections.by_sid))]


def stamped(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload with the ISO-8601 UTC ``timestamp`` every event carries."""
    return {**payload, "timestamp": utcnow()}
