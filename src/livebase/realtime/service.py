"""``services.socket``: what extensions use to talk to sockets (docs/extensions.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from livebase.realtime.broadcasts import Broadcasts, BroadcastValidator
from livebase.realtime.rooms import RoomRules, RoomValidator, SocketInfo, user_room

__all__ = ["SocketInfo", "SocketService"]

EventHandler = Callable[[SocketInfo, Any], Any | Awaitable[Any]]


class Server(Protocol):
    """What the service needs of the realtime server (``server.Realtime``), and no more:
    naming the class itself would make the two modules import each other.
    """

    rules: RoomRules
    broadcasts: Broadcasts

    def publish_to_room(self, room: str, event: str, payload: Any) -> None: ...

    def publish_to_everyone(self, event: str, payload: Any) -> None: ...

    def register_client_event(self, event: str, handler: EventHandler) -> None: ...


class SocketService:
    """Emit to users, rooms or everyone, and extend what clients may do.

    Every emit goes through the realtime pipeline, like item events do.
    The camelCase aliases let code written against the BAASIX guide read
    the same.
    """

    def __init__(self, realtime: Server) -> None:
        self._realtime = realtime

    async def emit_to_user(self, user_id: str, event: str, payload: Any) -> None:
        """Send ``event`` to every socket of one user (the ``user:{id}`` room)."""
        self._realtime.publish_to_room(user_room(str(user_id)), event, payload)

    async def emit_to_room(self, room: str, event: str, payload: Any) -> None:
        """Send ``event`` to every socket in ``room``."""
        self._realtime.publish_to_room(room, event, payload)

    async def broadcast(self, event: str, payload: Any) -> None:
        """Send ``event`` to every connected socket."""
        self._realtime.publish_to_everyone(event, payload)

    def register_room_validator(self, prefix: str, validator: RoomValidator) -> None:
        """Decide who may join rooms starting with ``prefix``: ``fn(socket_info, room) -> bool``."""
        self._realtime.rules.register_validator(prefix, validator)

    def register_broadcast_validator(self, prefix: str, validator: BroadcastValidator) -> None:
        """Decide who may broadcast in rooms starting with ``prefix``:
        ``fn(socket_info, room, event, data) -> bool`` (raise to refuse with a message).
        Without one, any member of the room may."""
        self._realtime.broadcasts.register_validator(prefix, validator)

    def register_event_handler(self, event: str, handler: EventHandler) -> None:
        """Handle a client event: ``fn(socket_info, payload)`` returns the ack's value."""
        self._realtime.register_client_event(event, handler)

    emitToUser = emit_to_user
    emitToRoom = emit_to_room
    registerRoomValidator = register_room_validator
    registerBroadcastValidator = register_broadcast_validator
    registerEventHandler = register_event_handler
