"""After-commit events that services publish and other layers (realtime) subscribe to.

Services never know who listens. Subscribers are awaited in registration
order, in the publishing task, so that an event is handed over before the
write's response is sent and events about one item keep commit order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from livebase.storage.types import utcnow

_log = logging.getLogger("livebase.events")

Action = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class ChangeEvent:
    """One item changed, after its transaction committed.

    ``item`` is the full stored state (new state for create/update, last
    state for delete), unfiltered: consumers apply permissions themselves.
    """

    collection: str
    action: Action
    key: Any
    item: dict[str, Any]
    previous: dict[str, Any] | None
    user_id: str | None
    timestamp: datetime = field(default_factory=utcnow)
    position: int | None = None  # in the change log; None before it is logged


@dataclass(frozen=True)
class SessionRevoked:
    session_id: str
    user_id: str


@dataclass(frozen=True)
class PermissionsChanged:
    """Permissions or a role changed; everything derived from them is stale."""

    role: str | None = None


@dataclass(frozen=True)
class NotificationChanged:
    """A notification was sent ("new"), marked "seen" or "deleted", after commit."""

    action: Literal["new", "seen", "deleted"]
    notification: dict[str, Any]
    timestamp: datetime = field(default_factory=utcnow)
    position: int | None = None  # in the change log


@dataclass(frozen=True)
class FileChanged:
    """A file was "uploaded" or "deleted", after commit; ``file`` is its row."""

    action: Literal["uploaded", "deleted"]
    file: dict[str, Any]
    user_id: str | None
    timestamp: datetime = field(default_factory=utcnow)
    position: int | None = None  # in the change log


Event = ChangeEvent | SessionRevoked | PermissionsChanged | NotificationChanged | FileChanged
Subscriber = Callable[[Event], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def publish(self, *events: Event) -> None:
        for event in events:
            for subscriber in list(self._subscribers):
                try:
                    await subscriber(event)
                except Exception:
                    # A broken subscriber must not undo or hide a committed write.
                    _log.exception("event subscriber %r failed on %r", subscriber, type(event))
