"""Room names and who may join them (docs/realtime.md, "Rooms")."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livebase.realtime.audience import Audience
from livebase.realtime.connections import Connection
from livebase.services.errors import ServiceError
from livebase.services.items import ItemsService

MAX_ROOM_LENGTH = 200
PRESENCE = "presence"
# Rooms named admin:... are the server's, for administrators only (extensions'
# validators never see them); the inspector's is the one there is.
ADMIN = "admin"
INSPECTOR_ROOM = "admin:inspector"
# python-socketio puts every socket in a room named by its id (python-engineio's
# ``generate_id``: 15 bytes, URL-safe base64). Such names are refused whether or
# not the socket is connected here: it may be connected to another process of a
# cluster, and a socket joining it would receive what is meant for that socket.
_SOCKET_ID = re.compile(r"[A-Za-z0-9_-]{20}")


class RoomRefused(Exception):
    """A join was refused; the message goes back to the client in the ack."""


@dataclass(frozen=True)
class SocketInfo:
    """What room validators and client-event handlers learn about a socket."""

    sid: str
    user_id: str | None
    role: str


RoomValidator = Callable[[SocketInfo, str], bool | Awaitable[bool]]


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def collection_room(collection: str) -> str:
    return f"collection:{collection}"


def item_room(collection: str, key: Any) -> str:
    return f"item:{collection}:{key}"


def room_name(raw: object) -> str:
    """The room a client asked for: a string or ``{room}``; refused otherwise."""
    if isinstance(raw, dict):
        raw = raw.get("room")
    if not isinstance(raw, str):
        raise RoomRefused("room must be a string (or {room: string})")
    if not 1 <= len(raw) <= MAX_ROOM_LENGTH:
        raise RoomRefused(f"room names are 1 to {MAX_ROOM_LENGTH} characters")
    if is_socket_id(raw):
        raise RoomRefused("a socket's own room (named by its id) cannot be joined or left")
    return raw


def is_admin_room(room: str) -> bool:
    return room.partition(":")[0] == ADMIN


def is_socket_id(room: str) -> bool:
    """Whether ``room`` is shaped like a Socket.IO socket id, hence reserved."""
    return _SOCKET_ID.fullmatch(room) is not None


class RoomRules:
    def __init__(self, audience: Audience, items: ItemsService) -> None:
        self._audience = audience
        self._items = items
        self._validators: dict[str, RoomValidator] = {}

    def register_validator(self, prefix: str, validator: RoomValidator) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("a room validator needs a non-empty prefix")
        self._validators[prefix] = validator

    async def check_join(self, connection: Connection, room: str) -> None:
        """Raise :class:`RoomRefused` unless ``connection`` may join ``room``."""
        kind, _, rest = room.partition(":")
        if kind == "user" and rest:
            if rest != connection.user_id:
                raise RoomRefused("you cannot join another user's room")
        elif kind == "collection" and rest:
            self._require_read(connection, rest)
        elif kind == "item" and rest:
            await self._check_item(connection, rest)
        elif room == PRESENCE:
            if self._audience.read_scope(connection, "users") is None:
                raise RoomRefused("presence needs read permission on users")
        elif kind == ADMIN:
            if not connection.who.is_admin:
                raise RoomRefused("administrators only")
            if room != INSPECTOR_ROOM:
                raise RoomRefused(f"no such administrators' room (there is {INSPECTOR_ROOM!r})")
        else:
            await self._check_custom(connection, room)

    def _require_read(self, connection: Connection, collection: str) -> None:
        if self._audience.read_scope(connection, collection) is None:
            # Unknown and unreadable look the same, so names do not leak.
            raise RoomRefused(
                f"no read permission on collection {collection!r} (or it does not exist)"
            )

    async def _check_item(self, connection: Connection, rest: str) -> None:
        collection, _, key = rest.partition(":")
        if not key:
            raise RoomRefused("item rooms are item:<collection>:<id>")
        self._require_read(connection, collection)
        try:
            await self._items.read_one(collection, key, connection.who)
        except ServiceError:
            raise RoomRefused(f"item {key!r} of {collection!r} not found or not readable") from None

    async def _check_custom(self, connection: Connection, room: str) -> None:
        validator = longest_prefix(self._validators, room)
        if validator is not None:
            await ask(validator, connection, room, f"join room {room!r}")


def longest_prefix(validators: dict[str, Any], room: str) -> Any:
    """The validator registered for the longest prefix of ``room``, if any."""
    prefixes = [p for p in validators if room.startswith(p)]
    return validators[max(prefixes, key=len)] if prefixes else None


async def ask(
    validator: Callable[..., Any], connection: Connection, room: str, what: str, *args: Any
) -> None:
    """An extension's validator (sync or async) says yes, or :class:`RoomRefused` says why not."""
    info = SocketInfo(sid=connection.sid, user_id=connection.user_id, role=connection.role)
    try:
        allowed = validator(info, room, *args)
        if inspect.isawaitable(allowed):
            allowed = await allowed
    except Exception as exc:
        raise RoomRefused(f"{what} refused: {exc}") from None
    if not allowed:
        raise RoomRefused(f"not allowed to {what}")
