"""Broadcast: a socket sends a message to the other sockets of a room it is in
(docs/realtime.md, "Broadcast"): cursors, typing indicators, "someone is looking".

The message reaches every other socket of the room, on every process, as
``room.message`` ``{room, event, data, from: {userId, socketId}, timestamp}``:
the client's event name only ever arrives inside it, so no client can send
another socket an event that looks like one of the server's. It is not logged
and never replayed. Allowed in item rooms and custom rooms (an extension
may decide who broadcasts where: ``register_broadcast_validator``), never in
``user:``, ``collection:``, ``admin:`` or ``presence`` rooms, and at most
``SOCKET_BROADCAST_RATE`` a second per socket.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from livebase.metrics import BROADCASTS, BROADCASTS_REFUSED
from livebase.realtime.connections import Connection
from livebase.realtime.emits import ToRoom
from livebase.realtime.rooms import (
    PRESENCE,
    RoomRefused,
    SocketInfo,
    ask,
    longest_prefix,
    room_name,
)
from livebase.realtime.router import stamped

ROOM_MESSAGE = "room.message"
MAX_EVENT_LENGTH = 100
REFUSED_PREFIXES = ("user:", "collection:", "admin:")

# (socket, room, event, data) -> whether it may; may raise to refuse with a message.
BroadcastValidator = Callable[[SocketInfo, str, str, Any], bool | Awaitable[bool]]
Ack = dict[str, Any]


class Broadcasts:
    def __init__(self, publish: Callable[[ToRoom], None], rate: float) -> None:
        self._publish = publish
        self.rate = rate
        self._validators: dict[str, BroadcastValidator] = {}
        self.sent = 0  # /stats/realtime

    def register_validator(self, prefix: str, validator: BroadcastValidator) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("a broadcast validator needs a non-empty prefix")
        self._validators[prefix] = validator

    async def send(self, connection: Connection, raw: object) -> Ack:
        """Broadcast what ``raw`` asks (``{room, event, data}``), or say why not."""
        reason = "invalid"  # the metrics' label of a refusal, by the check that refused
        try:
            room, event, data = _request(raw)
            reason = "room"
            _check_room(connection, room)
            reason = "validator"
            await self._check_validator(connection, room, event, data)
        except RoomRefused as exc:
            BROADCASTS_REFUSED.labels(reason).inc()
            return {"success": False, "message": str(exc)}
        if not self._take(connection):
            BROADCASTS_REFUSED.labels("rate_limited").inc()
            return {"success": False, "message": "rate limited"}
        sender = {"userId": connection.user_id, "socketId": connection.sid}
        payload = stamped({"room": room, "event": event, "data": data, "from": sender})
        self._publish(ToRoom(room, ROOM_MESSAGE, payload, skip=connection.sid))
        self.sent += 1
        BROADCASTS.inc()
        return {"success": True, "room": room}

    def _take(self, connection: Connection) -> bool:
        """A token of the socket's bucket (``rate`` a second, as deep as ``rate``)."""
        now = time.monotonic()
        tokens = self.rate
        if connection.broadcast_at:
            tokens = min(
                tokens, connection.broadcast_tokens + (now - connection.broadcast_at) * tokens
            )
        connection.broadcast_at = now
        if tokens < 1:
            connection.broadcast_tokens = tokens
            return False
        connection.broadcast_tokens = tokens - 1
        return True

    async def _check_validator(
        self, connection: Connection, room: str, event: str, data: Any
    ) -> None:
        validator = longest_prefix(self._validators, room)
        if validator is not None:  # without one, members may broadcast
            await ask(validator, connection, room, f"broadcast to {room!r}", event, data)


def _request(raw: object) -> tuple[str, str, Any]:
    if not isinstance(raw, dict):
        raise RoomRefused("broadcast takes {room, event, data}")
    room = room_name(raw.get("room"))
    event = raw.get("event")
    if not isinstance(event, str) or not 1 <= len(event) <= MAX_EVENT_LENGTH:
        raise RoomRefused(f"event must be a string of 1 to {MAX_EVENT_LENGTH} characters")
    return room, event, raw.get("data")


def _check_room(connection: Connection, room: str) -> None:
    if room == PRESENCE or room.startswith(REFUSED_PREFIXES):
        raise RoomRefused(
            f"no broadcasts in {room!r}: "
            "user, collection, admin and presence rooms are the server's"
        )
    if room not in connection.rooms:
        raise RoomRefused(f"join {room!r} before broadcasting to it")
