"""Events the server sends to rooms or to everyone, as opposed to item or file changes.

``services.socket``, presence and notifications produce these; they go
through the same pipeline as every other event (:mod:`pipeline`), so they
reach every process of a cluster and meet the same delivery bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livebase.realtime.rooms import user_room
from livebase.services.events import NotificationChanged

NOTIFICATION_FIELDS = ("id", "type", "title", "message", "data", "seen", "userId", "createdAt")


@dataclass(frozen=True)
class ToRoom:
    """``event`` with ``payload`` for every socket in ``room``."""

    room: str
    event: str
    payload: Any
    position: int | None = None  # the change log entry it tells of (notifications)
    skip: str | None = None  # a socket of the room that does not get it (a broadcast's sender)


@dataclass(frozen=True)
class ToEveryone:
    """``event`` with ``payload`` for every connected socket."""

    event: str
    payload: Any


def notification_emit(event: NotificationChanged) -> ToRoom:
    """``notification.{action}`` for the sockets of the notification's owner."""
    note = event.notification
    payload = {
        "notification": {name: note.get(name) for name in NOTIFICATION_FIELDS},
        "timestamp": event.timestamp,
    }
    return ToRoom(
        user_room(note["userId"]), f"notification.{event.action}", payload, event.position
    )
