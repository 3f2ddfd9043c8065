"""The Redis backend: nodes of a cluster hear each other over Redis pub/sub.

- **A channel per topic**, as socket.io's sharded Redis adapter does:
  ``{key}#all`` for the ``None`` topic, ``{key}#c#{collection}`` for a
  collection, subscribed only while the manager asks for it.
- **One publisher task** sends queued messages in order, pipelined, so a
  write's response never waits for Redis and per-item order is kept.
- **Outages**: the listener reconnects by itself (backoff capped at one
  second) and resubscribes; the outage is logged once by ``RedisLink``.
  Messages published while Redis is away are dropped and counted: other
  nodes could not have received them anyway.
- Each message goes out as ``{node id}|{data}``: Redis echoes a node's
  messages back to it, and the receiver needs to know who sent it.
- **The listener only reads**; one handler task handles what it read, in
  order. Handling a message may subscribe to a channel and wait for Redis to
  confirm it (a user who may now read a collection), and only the listener
  can read that confirmation. At most :data:`INBOX` messages wait; past that
  the listener waits too, and Redis's output buffer limit takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from redis.exceptions import RedisError

from livebase.metrics import REDIS_PUBLISH_FAILURES
from livebase.realtime.pubsub.base import PubSub, Receive
from livebase.storage.redis import RedisLink

_log = logging.getLogger("livebase.cluster")
RETRY_MIN, RETRY_MAX = 0.1, 1.0  # seconds between reconnection attempts
SUBSCRIBE_WAIT = 1.0  # how long a subscription waits for Redis to confirm it
INBOX = 10_000  # messages read but not yet handled


class RedisPubSub(PubSub):
    def __init__(self, link: RedisLink, key: str, node_id: str) -> None:
        self._link = link
        self._key = key
        self._all = f"{key}#all"
        self._mark = node_id.encode() + b"|"  # prefixes every message we publish
        self._receive: Receive | None = None
        self._outbox: list[tuple[str, bytes, asyncio.Future[int] | None]] = []
        self._wake = asyncio.Event()
        self._pubsub: Any = None
        self._wanted: set[str] = set()  # collection channels the manager asked for
        self._confirmed: set[str] = set()  # channels Redis confirmed on the current connection
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(INBOX)
        self.published = self.dropped = 0

    def _channel(self, topic: str | None) -> str:
        return self._all if topic is None else f"{self._key}#c#{topic}"

    async def start(self, receive: Receive) -> None:
        self._receive = receive
        self._tasks = [
            asyncio.create_task(self._listen(), name="livebase-cluster-listen"),
            asyncio.create_task(self._handle(), name="livebase-cluster-handle"),
            asyncio.create_task(self._publish(), name="livebase-cluster-publish"),
        ]
        # Be listening before the process reports itself ready, unless Redis is away.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed(self._all), SUBSCRIBE_WAIT * 3)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- publishing ----------------------------------------------------------------------

    def publish(
        self, topic: str | None, data: bytes, receivers: asyncio.Future[int] | None = None
    ) -> None:
        self._outbox.append((self._channel(topic), self._mark + data, receivers))
        self._wake.set()

    async def _publish(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    async with self._link.client.pipeline(transaction=False) as pipe:
                        for channel, data, _ in batch:
                            pipe.publish(channel, data)
                        counts = await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._link.failed(exc)
                    self.dropped += len(batch)
                    REDIS_PUBLISH_FAILURES.inc(len(batch))
                    counts = [0] * len(batch)
                else:
                    self._link.recovered()
                    self.published += len(batch)
                for (channel, _, receivers), count in zip(batch, counts, strict=True):
                    if receivers is not None and not receivers.done():
                        # Redis counts this node too when it hears the channel.
                        itself = 1 if channel in self._confirmed and count else 0
                        receivers.set_result(int(count) - itself)

    # -- receiving ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = RETRY_MIN
        while True:
            pubsub = self._link.client.pubsub()
            try:
                await pubsub.subscribe(self._all, *self._wanted)
                self._pubsub = pubsub
                async for message in pubsub.listen():
                    kind = message["type"]
                    if kind == b"message" or kind == "message":
                        await self._inbox.put(message["data"])
                    elif kind in ("subscribe", b"subscribe"):
                        self._confirm(message["channel"])
                        if message["channel"] in (self._all, self._all.encode()):
                            self._link.recovered()
                            delay = RETRY_MIN
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._link.failed(exc)
            finally:
                self._pubsub = None
                self._confirmed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _handle(self) -> None:
        while True:
            data = await self._inbox.get()
            try:
                await self._dispatch(data)
            except Exception:
                _log.exception("a cluster message could not be handled")

    async def _dispatch(self, data: bytes) -> None:
        if data.startswith(self._mark):
            return  # our own message, echoed back by Redis
        assert self._receive is not None
        split = data.find(b"|")
        if split < 0:
            return  # not from a livebase node
        await self._receive(data[:split].decode(errors="replace"), data[split + 1 :])

    # -- subscriptions -----------------------------------------------------------------------

    def _confirm(self, channel: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        self._confirmed.add(name)
        waiting = self._waiting.pop(name, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _subscribed(self, channel: str) -> asyncio.Future[None]:
        if channel in self._confirmed:
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        if channel not in self._waiting:
            self._waiting[channel] = asyncio.get_running_loop().create_future()
        return self._waiting[channel]

    async def subscribe(self, topics: Iterable[str]) -> None:
        channels = {self._channel(topic) for topic in topics}
        missing = channels - self._wanted
        self._wanted |= missing
        pending = [self._subscribed(c) for c in channels if c not in self._confirmed]
        pubsub = self._pubsub
        if not pending or pubsub is None:
            return  # all confirmed already, or Redis is away: the listener subscribes later
        try:
            if missing:
                await pubsub.subscribe(*missing)
        except (RedisError, OSError):
            return  # the listener resubscribes everything wanted when it reconnects
        # asyncio.wait, not wait_for: other callers may be waiting on the same futures.
        await asyncio.wait(pending, timeout=SUBSCRIBE_WAIT)

    async def unsubscribe(self, topics: Iterable[str]) -> None:
        channels = [self._channel(topic) for topic in topics]
        for channel in channels:
            self._wanted.discard(channel)
            self._confirmed.discard(channel)
        pubsub = self._pubsub
        if channels and pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(*channels)

    def counters(self) -> dict[str, int]:
        return {
            "published": self.published,
            "dropped": self.dropped,
            "channels": len(self._wanted) + 1,
        }
