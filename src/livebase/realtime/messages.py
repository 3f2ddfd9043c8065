"""Every message that crosses between livebase processes, in one place.

Each message is one small JSON object per event (never one per recipient)
with readable keys, a ``type`` and the ``v`` ersion of this module's
shapes. A process handles its own events first, then publishes them; the
others decode and handle them as if they had happened there.

An item change travels once, unfiltered, to every process that has
listeners for its collection; each process filters and projects it for its
own sockets. Values lose their Python types in JSON, so dates and decimals
are restored from the collection's field types before permission
conditions are checked against them.

Two processes of different versions must not misread each other:
:func:`decode` raises :class:`VersionMismatch` for a message of any other
version, and the receiver ignores it (and says so, once per peer).
"""

from __future__ import annotations

import contextlib
from typing import Any

from livebase import encoding
from livebase.realtime.connections import SocketTakenOver
from livebase.realtime.emits import ToEveryone, ToRoom
from livebase.services.errors import ServiceError
from livebase.services.events import (
    ChangeEvent,
    FileChanged,
    NotificationChanged,
    PermissionsChanged,
    SessionRevoked,
)
from livebase.services.registry import CollectionRegistry
from livebase.services.values import coerce_value
from livebase.storage.kinds import KINDS, FieldKind

# Bump on any change to the shape of any message below. Messages from before
# versions existed carry no "v" and count as version 1.
VERSION = 3

Message = dict[str, Any]

# The livebase events, handled by the realtime server.
CHANGE = "change"  # an item changed (ChangeEvent)
FILE = "file"  # a file was uploaded, changed or deleted (FileChanged)
NOTIFICATION = "notification"  # a notification was sent, seen or deleted (NotificationChanged)
ROOM = "room"  # an event for the sockets of one room (services.socket, presence, notifications)
EVERYONE = "everyone"  # an event for every socket (services.socket.broadcast)
REVOKE = "revoke"  # a session ended: its sockets go (SessionRevoked)
PERMISSIONS = "permissions"  # a role's permissions changed (PermissionsChanged)
TAKEOVER = "takeover"  # a reconnect recovered a socket's session (SocketTakenOver)
# The cluster's own bookkeeping.
ACK = "ack"  # "I handled your message {confirm}", to the process that asked
QUESTION = "question"  # a request every process answers (the delivery trace)
ANSWER = "answer"  # one process's answer to a question, to the process that asked
# python-socketio's API on another process's sockets (sio.emit, enter_room, ...).
EMIT = "emit"
ENTER_ROOM = "enter_room"
LEAVE_ROOM = "leave_room"
CLOSE_ROOM = "close_room"
DISCONNECT = "disconnect"
SOCKETIO = frozenset({EMIT, ENTER_ROOM, LEAVE_ROOM, CLOSE_ROOM, DISCONNECT})

_RETYPED = tuple(kind for kind, entry in KINDS.items() if entry.retyped)


class VersionMismatch(ValueError):
    """A message of another version of livebase: not to be read."""

    def __init__(self, version: Any) -> None:
        super().__init__(f"message version {version!r}, not {VERSION}")
        self.version = version


def encode(message: Message) -> bytes:
    return encoding.dumps(message)


def decode(data: bytes) -> Message:
    """The message in ``data``; :class:`VersionMismatch` if another version wrote it."""
    message = encoding.loads(data)
    version = message.get("v", 1) if isinstance(message, dict) else None
    if version != VERSION:
        raise VersionMismatch(version)
    return message  # type: ignore[no-any-return]


def _message(kind: str, **fields: Any) -> Message:
    return {"v": VERSION, "type": kind, **fields}


# -- livebase events -------------------------------------------------------------------


def change(event: ChangeEvent) -> Message:
    return _message(
        CHANGE,
        collection=event.collection,
        action=event.action,
        key=event.key,
        item=event.item,
        previous=event.previous,
        user=event.user_id,
        timestamp=event.timestamp,
        position=event.position,
    )


def change_event(message: Message, registry: CollectionRegistry) -> ChangeEvent:
    collection, previous = message["collection"], message["previous"]
    return ChangeEvent(
        collection=collection,
        action=message["action"],
        key=message["key"],
        item=_retyped(registry, collection, message["item"]),
        previous=_retyped(registry, collection, previous) if previous is not None else None,
        user_id=message["user"],
        timestamp=_datetime(message["timestamp"]),
        position=message["position"],
    )


def file(event: FileChanged) -> Message:
    return _message(
        FILE,
        action=event.action,
        file=event.file,
        user=event.user_id,
        timestamp=event.timestamp,
        position=event.position,
    )


def file_event(message: Message, registry: CollectionRegistry) -> FileChanged:
    return FileChanged(
        action=message["action"],
        file=_retyped(registry, "files", message["file"]),
        user_id=message["user"],
        timestamp=_datetime(message["timestamp"]),
        position=message["position"],
    )


def notification(event: NotificationChanged) -> Message:
    return _message(
        NOTIFICATION,
        action=event.action,
        notification=event.notification,
        timestamp=event.timestamp,
        position=event.position,
    )


def notification_event(message: Message) -> NotificationChanged:
    return NotificationChanged(
        action=message["action"],
        notification=message["notification"],
        timestamp=_datetime(message["timestamp"]),
        position=message["position"],
    )


def room(emit: ToRoom) -> Message:
    return _message(ROOM, room=emit.room, event=emit.event, payload=emit.payload, skip=emit.skip)


def room_emit(message: Message) -> ToRoom:
    return ToRoom(
        room=message["room"],
        event=message["event"],
        payload=message["payload"],
        skip=message.get("skip"),
    )


def everyone(emit: ToEveryone) -> Message:
    return _message(EVERYONE, event=emit.event, payload=emit.payload)


def everyone_emit(message: Message) -> ToEveryone:
    return ToEveryone(event=message["event"], payload=message["payload"])


def revoke(event: SessionRevoked) -> Message:
    return _message(REVOKE, session=event.session_id, user=event.user_id)


def revoke_event(message: Message) -> SessionRevoked:
    return SessionRevoked(session_id=message["session"], user_id=message["user"])


def permissions(event: PermissionsChanged) -> Message:
    return _message(PERMISSIONS, role=event.role)


def permissions_event(message: Message) -> PermissionsChanged:
    return PermissionsChanged(role=message["role"])


# -- confirmations -----------------------------------------------------------------------


def takeover(event: SocketTakenOver) -> Message:
    return _message(TAKEOVER, sid=event.sid)


def takeover_event(message: Message) -> SocketTakenOver:
    return SocketTakenOver(str(message["sid"]))


def confirmed(message: Message, ident: str) -> Message:
    """``message``, asking every process that handles it to answer with an :func:`ack`."""
    return {**message, "confirm": ident}


def ack(ident: str, to: str) -> Message:
    return _message(ACK, confirm=ident, to=to)


def question(what: str, body: Any, ident: str) -> Message:
    """Ask every other process ``what`` (one of :meth:`Manager.ask`'s topics) about ``body``."""
    return _message(QUESTION, what=what, body=body, ask=ident)


def answer(ident: str, to: str, node: str, body: Any) -> Message:
    return _message(ANSWER, ask=ident, to=to, node=node, body=body)


# -- python-socketio's API across processes -------------------------------------------------


def emit(event: str, args: list[Any], namespace: str, to: Any, skip_sid: Any) -> Message:
    """``sio.emit``: ``args`` are the event's arguments; ``to`` a room, a sid, a list or None."""
    return _message(EMIT, event=event, args=args, namespace=namespace, to=to, skip_sid=skip_sid)


def enter_room(sid: str, room: str, namespace: str) -> Message:
    return _message(ENTER_ROOM, sid=sid, room=room, namespace=namespace)


def leave_room(sid: str, room: str, namespace: str) -> Message:
    return _message(LEAVE_ROOM, sid=sid, room=room, namespace=namespace)


def close_room(room: str, namespace: str) -> Message:
    return _message(CLOSE_ROOM, room=room, namespace=namespace)


def disconnect(sid: str, namespace: str) -> Message:
    return _message(DISCONNECT, sid=sid, namespace=namespace)


# -- values JSON turned into text --------------------------------------------------------------

# collection name -> (the Collection it was worked out for, its fields that JSON turned into text)
_retyped_fields: dict[str, tuple[Any, tuple[Any, ...]]] = {}


def _fields_to_retype(collection: Any) -> tuple[Any, ...]:
    cached = _retyped_fields.get(collection.name)
    if cached is None or cached[0] is not collection:  # a schema change made a new Collection
        fields = tuple(spec for spec in collection.fields.values() if spec.kind in _RETYPED)
        cached = _retyped_fields[collection.name] = (collection, fields)
    return cached[1]


def _retyped(registry: CollectionRegistry, name: str, item: dict[str, Any]) -> dict[str, Any]:
    collection = registry.peek(name)
    if collection is None:
        return item
    for spec in _fields_to_retype(collection):
        if isinstance(item.get(spec.name), str):
            # Left as sent if it does not parse: a condition on it simply will not match.
            with contextlib.suppress(ServiceError):
                item[spec.name] = coerce_value(spec.kind, item[spec.name], spec.name)
    return item


def _datetime(value: str) -> Any:
    return coerce_value(FieldKind.DATETIME, value, "timestamp")
