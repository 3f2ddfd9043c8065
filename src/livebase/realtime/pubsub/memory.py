"""The in-process backend: one node alone, or several nodes of one process on a shared hub.

Alone (no hub), nobody else can hear: :attr:`alone` is true and the
manager builds no cross-process message, so one process pays nothing for
clustering. On a shared :class:`Hub`, each published message is put on
every other member's inbox that hears its topic; each member handles its
inbox in order in one task, as a Redis subscriber would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from livebase.realtime.pubsub.base import PubSub, Receive


class Hub:
    """The nodes that hear each other (the in-memory stand-in for a Redis server)."""

    def __init__(self) -> None:
        self.members: list[MemoryPubSub] = []


class MemoryPubSub(PubSub):
    def __init__(self, node_id: str, hub: Hub | None = None) -> None:
        self.node_id = node_id
        self.alone = hub is None
        self._hub = hub
        self._topics: set[str] = set()
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    async def start(self, receive: Receive) -> None:
        if self._hub is None:
            return
        self._hub.members.append(self)
        self._task = asyncio.create_task(self._handle(receive), name="livebase-memory-pubsub")

    async def stop(self) -> None:
        if self._hub is not None and self in self._hub.members:
            self._hub.members.remove(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def publish(
        self, topic: str | None, data: bytes, receivers: asyncio.Future[int] | None = None
    ) -> None:
        count = 0
        for member in self._hub.members if self._hub is not None else ():
            if member is not self and (topic is None or topic in member._topics):
                member._inbox.put_nowait((self.node_id, data))
                count += 1
        self.published += 1
        if receivers is not None and not receivers.done():
            receivers.set_result(count)

    async def subscribe(self, topics: Iterable[str]) -> None:
        self._topics.update(topics)

    async def unsubscribe(self, topics: Iterable[str]) -> None:
        self._topics.difference_update(topics)

    def counters(self) -> dict[str, int]:
        return {"published": self.published, "dropped": 0, "channels": len(self._topics) + 1}

    async def _handle(self, receive: Receive) -> None:
        while True:
            sender, data = await self._inbox.get()
            await receive(sender, data)
