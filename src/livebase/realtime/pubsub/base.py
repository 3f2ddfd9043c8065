"""The publish/subscribe interface the realtime manager sends cross-process messages through.

A backend carries opaque bytes between the nodes of a cluster, in the order
each node published them. Everything is published on a *topic*: ``None``
(every node hears it) or a collection name (only the nodes subscribed to it
hear it, so a node with no listeners for a collection never receives its
payloads). A backend never delivers a node's own messages back to it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable

Receive = Callable[[str, bytes], Awaitable[None]]  # (the node that sent it, the message)


class PubSub(ABC):
    """Carries messages between the nodes of a cluster.

    Attributes:
        alone: True when no other node can hear this one: the manager then
            builds no cross-process message at all.
    """

    alone: bool = False

    @abstractmethod
    async def start(self, receive: Receive) -> None:
        """Start publishing and receiving; ``receive`` is awaited once per message, in order.

        Returns once this node hears the ``None`` topic, or after a short
        wait if the backend is unreachable (it keeps trying by itself).
        """

    @abstractmethod
    async def stop(self) -> None:
        """Stop every task ``start`` began."""

    @abstractmethod
    def publish(
        self, topic: str | None, data: bytes, receivers: asyncio.Future[int] | None = None
    ) -> None:
        """Queue ``data`` for the nodes that hear ``topic``; never waits.

        Messages leave in the order they were queued. ``receivers``, if
        given, gets how many other nodes received the message (0 when it
        was dropped because the backend was unreachable).
        """

    @abstractmethod
    async def subscribe(self, topics: Iterable[str]) -> None:
        """Hear these topics from now on.

        Returns once the backend confirmed every one of them (bounded by a
        short wait), so that whoever asked gets every message published
        after this returns.
        """

    @abstractmethod
    async def unsubscribe(self, topics: Iterable[str]) -> None:
        """Stop hearing these topics."""

    @abstractmethod
    def counters(self) -> dict[str, int]:
        """``published``, ``dropped`` and ``channels`` (topics heard, ``None`` included)."""
