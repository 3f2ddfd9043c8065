"""Every kind of event the realtime server handles, and its rule, in one table.

Each entry names the rule that handles the event on every process (who
gets it, through :class:`router.Router`, or which sockets' rights change,
through :class:`authorization.LiveAuthorization`), how it crosses to the
other processes (:mod:`messages`) and to which of them (:class:`Spread`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from livebase.realtime import messages
from livebase.realtime.authorization import LiveAuthorization
from livebase.realtime.connections import SocketTakenOver
from livebase.realtime.delivery import Delivery
from livebase.realtime.emits import ToEveryone, ToRoom, notification_emit
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.pipeline import EVERY_PROCESS_CONFIRMED, EventKind, Spread
from livebase.realtime.router import ITEM_EVENTS, Router
from livebase.services.events import (
    ChangeEvent,
    FileChanged,
    NotificationChanged,
    PermissionsChanged,
    SessionRevoked,
)
from livebase.services.registry import CollectionRegistry


def event_kinds(
    router: Router,
    live: LiveQueries,
    delivery: Delivery,
    authorization: LiveAuthorization,
    registry: CollectionRegistry,
    taken_over: Callable[[SocketTakenOver], None],
) -> list[EventKind[Any]]:
    deliver = delivery.deliver

    async def change(event: ChangeEvent) -> None:
        if await authorization.changed(event):
            deliver([*router.change(event), *(await live.change(event))], _committed(event))

    def to_room(emit: ToRoom, committed: float | None = None) -> None:
        envelopes = router.to_room(emit.room, emit.event, emit.payload, emit.position, emit.skip)
        deliver(envelopes, committed)

    return [
        EventKind(
            ChangeEvent,
            change,
            encode=messages.change,
            message=messages.CHANGE,
            decode=lambda message: messages.change_event(message, registry),
            spread=_change_spread,
            on_arrival=authorization.change_arrived,
            published_as=lambda event: ITEM_EVENTS[event.action],
        ),
        EventKind(
            FileChanged,
            lambda event: deliver(router.file(event), _committed(event)),
            encode=messages.file,
            message=messages.FILE,
            decode=lambda message: messages.file_event(message, registry),
            published_as=lambda event: f"file.{event.action}",
        ),
        EventKind(
            NotificationChanged,
            lambda event: to_room(notification_emit(event), _committed(event)),
            encode=messages.notification,
            message=messages.NOTIFICATION,
            decode=messages.notification_event,
            published_as=lambda event: f"notification.{event.action}",
        ),
        EventKind(
            ToRoom,
            to_room,
            encode=messages.room,
            message=messages.ROOM,
            decode=messages.room_emit,
            published_as=lambda emit: emit.event,
        ),
        EventKind(
            ToEveryone,
            lambda emit: deliver(router.to_everyone(emit.event, emit.payload)),
            encode=messages.everyone,
            message=messages.EVERYONE,
            decode=messages.everyone_emit,
            published_as=lambda emit: emit.event,
        ),
        EventKind(
            SessionRevoked,
            authorization.session_revoked,
            encode=messages.revoke,
            message=messages.REVOKE,
            decode=messages.revoke_event,
        ),
        EventKind(
            PermissionsChanged,
            authorization.permissions_changed,
            encode=messages.permissions,
            message=messages.PERMISSIONS,
            decode=messages.permissions_event,
            spread=lambda event: EVERY_PROCESS_CONFIRMED,
            on_arrival=authorization.permissions_arrived,
        ),
        EventKind(
            SocketTakenOver,
            taken_over,
            encode=messages.takeover,
            message=messages.TAKEOVER,
            decode=messages.takeover_event,
        ),
    ]


def _committed(event: ChangeEvent | FileChanged | NotificationChanged) -> float | None:
    """When a logged change was written (the change log's ``changed_at``)."""
    return event.timestamp.timestamp() if event.position is not None else None


def _change_spread(event: ChangeEvent) -> Spread:
    """Item changes go to the processes listening to their collection; changes to
    users and schemas to every process, and wait until each has applied them:
    they change sockets' rooms, so a process may have to subscribe to a
    collection before the next change of it is published."""
    if event.collection in ("schemas", "users"):
        return EVERY_PROCESS_CONFIRMED
    return Spread(event.collection)
