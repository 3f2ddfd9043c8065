"""The event pipeline: every event's way to the sockets of every process.

An event of this process (from the services' event bus, or an emit of
``services.socket``, presence or notifications) is handled here first, by
its kind's rule (:mod:`event_kinds`: who gets it, or what it changes), then
shared with the other processes of a cluster. An event of another process
arrives as a message (:mod:`messages`), catches up whatever it changed there
(caches of permissions and schemas), and is handled by the same rule.

Dispatch is one table: each :class:`EventKind` says how its events are
handled, how they cross between processes and to which of them. Adding an
event kind is one entry there plus the rule that picks its audience.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from livebase.metrics import EVENTS_PUBLISHED, ByEventType
from livebase.realtime.cluster import Manager
from livebase.realtime.messages import Message
from livebase.realtime.offsets import Progress

_log = logging.getLogger("livebase.realtime")
E = TypeVar("E")


class Spread(NamedTuple):
    """Which processes an event goes to, and whether its sender waits for them."""

    channel: str | None  # a collection: only processes with listeners for it; None: all
    confirmed: bool = False  # wait until every process handled it (changes of rules)


EVERY_PROCESS = Spread(None)
EVERY_PROCESS_CONFIRMED = Spread(None, confirmed=True)


def _everywhere(event: Any) -> Spread:
    return EVERY_PROCESS


@dataclass(frozen=True)
class EventKind(Generic[E]):
    """One kind of event and everything the pipeline does with it."""

    type: type[E]
    # On every process that has the event: send it to its audience, or change
    # sockets and caches. Synchronous handlers may be published without awaiting.
    handle: Callable[[E], Awaitable[None] | None]
    # How it crosses to the other processes; None: it stays where it happened.
    encode: Callable[[E], Message] | None = None
    # The message type it is read back from; None: it never arrives as itself.
    message: str | None = None
    decode: Callable[[Message], E] | None = None
    spread: Callable[[E], Spread] = _everywhere
    # On the other processes, before ``handle``: catch up what the event changed.
    on_arrival: Callable[[E], Awaitable[None]] | None = None
    # The client event it becomes, counted where it is published (the metrics'
    # ``type``); None: a change of rules or sockets, which no client receives as such.
    published_as: Callable[[E], str] | None = None


class Pipeline:
    def __init__(
        self, kinds: Iterable[EventKind[Any]], manager: Manager, progress: Progress
    ) -> None:
        self._manager = manager
        self._position = 0  # the last change log position taken up here
        self._progress = progress  # ... and the last one handled to the end
        self._by_type: dict[type, EventKind[Any]] = {}
        self._by_message: dict[str, EventKind[Any]] = {}
        self._published = ByEventType(EVENTS_PUBLISHED)
        for kind in kinds:
            self._by_type[kind.type] = kind
            if kind.message is not None:
                self._by_message[kind.message] = kind

    async def publish(self, event: Any) -> None:
        """An event of this process: handle it here, then tell the other processes."""
        if self._seen(event):
            return
        kind = self._by_type[type(event)]
        self._count(kind, event)
        await self._handle(kind, event)
        if kind.encode is None or not self._manager.clustered:
            return
        spread = kind.spread(event)
        if spread.confirmed:
            await self._manager.send_confirmed(kind.encode(event))
        else:
            self._manager.send(kind.encode(event), spread.channel)

    def publish_now(self, event: Any) -> None:
        """:meth:`publish` for kinds handled synchronously and shared unconfirmed
        (emits to rooms and to everyone): callable from code that cannot await.
        """
        kind = self._by_type[type(event)]
        self._count(kind, event)
        handled = kind.handle(event)
        assert handled is None, f"{kind.type.__name__} is handled asynchronously"
        if kind.encode is not None and self._manager.clustered:
            spread = kind.spread(event)
            assert not spread.confirmed, f"{kind.type.__name__} waits for confirmations"
            self._manager.send(kind.encode(event), spread.channel)

    async def receive(self, message: Message) -> None:
        """An event of another process, in the order that process sent it."""
        kind = self._by_message.get(message["type"])
        if kind is None or kind.decode is None:
            _log.warning("ignored a cluster message of unknown type %r", message["type"])
            return
        event = kind.decode(message)
        if self._seen(event):
            return
        if kind.on_arrival is not None:
            await kind.on_arrival(event)
        await self._handle(kind, event)

    def start_at(self, position: int) -> None:
        """Positions up to ``position`` were handled before this process started."""
        self._position = max(self._position, position)
        self._progress.position = max(self._progress.position, position)

    def _count(self, kind: EventKind[Any], event: Any) -> None:
        if kind.published_as is not None:
            self._published(kind.published_as(event)).inc()

    async def _handle(self, kind: EventKind[Any], event: Any) -> None:
        handled = kind.handle(event)
        if handled is not None:
            await handled
        position = getattr(event, "position", None)
        if position is not None:
            # No await between the last write and this: an event sent to a
            # socket meanwhile carries the offset before this one.
            self._progress.position = position

    def _seen(self, event: Any) -> bool:
        """Whether ``event`` comes from a change log position already handled here.

        The relay publishes positions in order, once; after a crash, or when
        another process takes over publishing, the entries of the last moment
        may come again (services/relay.py), and are dropped here.
        """
        position = getattr(event, "position", None)
        if position is None:
            return False
        if position <= self._position:
            return True
        self._position = position
        return False
