"""python-socketio client managers: one process alone, or many over Redis pub/sub.

:class:`LocalManager` is python-socketio's in-memory manager with synchronous
room bookkeeping and a hook for "this socket is now fully connected".

:class:`ClusterManager` subclasses python-socketio's ``AsyncRedisManager``
and keeps its Redis connection handling (URLs, TLS, Sentinel, Valkey), its
``host_id`` and its cross-host ``disconnect``. What it changes, and why:

- **One message per event, not per recipient.** The pipeline sends each
  change once, unfiltered; every process filters and projects it for its own
  sockets (``realtime/router.py``), exactly as for a local write.
- **A channel per collection**, as socket.io's sharded Redis adapter does:
  a process subscribes to ``{key}#c#{collection}`` only while some local
  socket listens to that collection, so a process with no listeners never
  receives (or decodes) those payloads. Rooms, broadcasts and bookkeeping
  (sessions, permissions, schemas) share ``{key}#all``.
- **One publisher task** sends queued messages in order, pipelined, so a
  write's response never waits for Redis and per-item order is kept.
- **Outages**: the listener reconnects by itself (backoff capped at one
  second) and resubscribes; the outage is logged once by ``RedisLink``.
  Messages published while Redis is away are dropped and counted: other
  processes could not have received them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import socketio
from redis.exceptions import RedisError

from livebase import encoding
from livebase.storage.redis import RedisLink

if TYPE_CHECKING:
    from livebase.realtime.server import Realtime

_log = logging.getLogger("livebase.cluster")
NAMESPACE = "/"
RETRY_MIN, RETRY_MAX = 0.1, 1.0  # seconds between reconnection attempts
SUBSCRIBE_WAIT = 1.0  # how long a connect or join waits for Redis to confirm a subscription
UNUSED_AFTER = 10.0  # seconds a collection channel stays subscribed after its last listener
CONFIRM_WAIT = 2.0  # how long a change of rules waits for the other processes to apply it

Receive = Callable[[dict[str, Any]], Awaitable[None]]


class LocalManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's manager, telling us when a socket is fully connected.

    ``connect`` runs after the CONNECT packet went out, so rooms joined and
    events sent from here can never reach the client before it is connected.
    """

    realtime: Realtime | None = None
    clustered = False

    # Room membership is local bookkeeping; synchronous versions let the
    # pipeline change rooms without yielding to the event loop.
    def join(self, sid: str, room: str) -> None:
        self.basic_enter_room(sid, NAMESPACE, room)

    def part(self, sid: str, room: str) -> None:
        self.basic_leave_room(sid, NAMESPACE, room)

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        if self.realtime is not None and namespace == NAMESPACE:
            await self.realtime.on_connected(sid)
        return result

    # -- what the cluster adds; nothing to do for one process --------------------------

    async def start(self, link: RedisLink | None, receive: Receive) -> None:
        pass

    async def stop(self) -> None:
        pass

    def send(self, message: dict[str, Any], collection: str | None = None) -> None:
        pass

    async def send_confirmed(self, message: dict[str, Any]) -> None:
        pass

    async def want(self, collections: Iterable[str]) -> None:
        pass

    async def keep_only(self, collections: set[str]) -> None:
        pass

    def counters(self) -> dict[str, int]:
        return {}


class ClusterManager(LocalManager, socketio.AsyncRedisManager):  # type: ignore[misc]
    clustered = True

    def __init__(self, url: str, key: str, node_id: str) -> None:
        super().__init__(url=url, channel=key)
        self.host_id = node_id
        self._mark = node_id.encode() + b"|"  # prefixes every message we publish
        self._key = key
        self._all = f"{key}#all"
        self._link: RedisLink | None = None
        self._receive: Receive | None = None
        self._outbox: list[tuple[str, bytes, asyncio.Future[int] | None]] = []
        self._confirmations: dict[str, _Confirmation] = {}
        self._wake = asyncio.Event()
        self._pubsub: Any = None
        self._wanted: dict[str, float] = {}  # channel -> when a local listener last asked
        self._confirmed: set[str] = set()
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.published = self.received = self.dropped = 0

    def initialize(self) -> None:
        # python-socketio starts its listener at the first connection; ours runs from start().
        socketio.AsyncManager.initialize(self)

    def channel_for(self, collection: str | None) -> str:
        return self._all if collection is None else f"{self._key}#c#{collection}"

    async def start(self, link: RedisLink | None, receive: Receive) -> None:
        assert link is not None, "a cluster needs Redis"
        self._link, self._receive = link, receive
        self._tasks = [
            asyncio.create_task(self._listen(), name="livebase-cluster-listen"),
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

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        message: dict[str, Any],
        collection: str | None = None,
        published: asyncio.Future[int] | None = None,
    ) -> None:
        """Queue ``message`` for the other processes (in order, without waiting)."""
        data = self._mark + encoding.dumps(message)
        self._outbox.append((self.channel_for(collection), data, published))
        self._wake.set()

    async def send_confirmed(self, message: dict[str, Any]) -> None:
        """Send ``message`` and wait until every other process has handled it.

        For changes of rules (permissions, schemas): when the request that
        made one returns, every process already applies it. Bounded by
        ``CONFIRM_WAIT``; a process that does not answer in time (or Redis
        being away) does not fail the request.
        """
        ident = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        published: asyncio.Future[int] = loop.create_future()
        confirmation = self._confirmations[ident] = _Confirmation(loop.create_future())
        self.send({**message, "ack": ident}, published=published)
        try:
            async with asyncio.timeout(CONFIRM_WAIT):
                receivers = await published  # Redis says how many subscribers got it
                confirmation.expect(receivers - (1 if self._all in self._confirmed else 0))
                await confirmation.done
        except TimeoutError:
            _log.warning("not every process confirmed a change of rules within %s s", CONFIRM_WAIT)
        finally:
            del self._confirmations[ident]

    async def _publish(self) -> None:
        assert self._link is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    async with self._link.client.pipeline(transaction=False) as pipe:
                        for channel, data, _ in batch:
                            pipe.publish(channel, data)
                        receivers = await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._link.failed(exc)
                    self.dropped += len(batch)
                    receivers = [0] * len(batch)
                else:
                    self._link.recovered()
                    self.published += len(batch)
                for (_, _, published), count in zip(batch, receivers, strict=True):
                    if published is not None and not published.done():
                        published.set_result(int(count))

    # -- receiving ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        assert self._link is not None and self._receive is not None
        delay = RETRY_MIN
        while True:
            pubsub = self._link.client.pubsub()
            try:
                await pubsub.subscribe(self._all, *self._wanted)
                self._pubsub = pubsub
                async for message in pubsub.listen():
                    kind = message["type"]
                    if kind == b"message" or kind == "message":
                        await self._dispatch(message["data"])
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

    async def _dispatch(self, data: bytes) -> None:
        if data.startswith(self._mark):
            return  # our own message, echoed back by Redis
        assert self._receive is not None
        try:
            split = data.index(b"|")
            message = encoding.loads(data[split + 1 :])
            self.received += 1
            if message["m"] == "ack":
                if message["to"] == self.host_id and message["i"] in self._confirmations:
                    self._confirmations[message["i"]].acknowledged()
                return
            await self._receive(message)
            if "ack" in message:
                origin = data[:split].decode()
                self.send({"m": "ack", "i": message["ack"], "to": origin})
        except Exception:
            _log.exception("ignored a cluster message that could not be handled")

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

    async def want(self, collections: Iterable[str]) -> None:
        """Receive these collections' events from now on.

        Returns once Redis confirmed the subscriptions (at most
        ``SUBSCRIBE_WAIT``), so that a client told "connected" or "joined"
        gets every change made after that, wherever it is made.
        """
        now = time.monotonic()
        missing = []
        for collection in collections:
            channel = self.channel_for(collection)
            if channel not in self._wanted:
                missing.append(channel)
            self._wanted[channel] = now
        pending = [self._subscribed(c) for c in self._wanted if c not in self._confirmed]
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

    async def keep_only(self, collections: set[str]) -> None:
        """Stop receiving collections nobody here has listened to for a while."""
        keep = {self.channel_for(c) for c in collections}
        stale_before = time.monotonic() - UNUSED_AFTER
        unused = [c for c, asked in self._wanted.items() if c not in keep and asked < stale_before]
        for channel in keep:
            if channel in self._wanted:
                self._wanted[channel] = time.monotonic()
        if not unused:
            return
        for channel in unused:
            del self._wanted[channel]
            self._confirmed.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(*unused)

    def counters(self) -> dict[str, int]:
        return {
            "published": self.published,
            "received": self.received,
            "dropped": self.dropped,
            "channels": len(self._wanted) + 1,
        }


class _Confirmation:
    """Acknowledgements of one confirmed message, until as many as expected arrived."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self._acks = 0
        self._expected: int | None = None

    def acknowledged(self) -> None:
        self._acks += 1
        self._check()

    def expect(self, count: int) -> None:
        self._expected = count
        self._check()

    def _check(self) -> None:
        if self._expected is not None and self._acks >= self._expected and not self.done.done():
            self.done.set_result(None)
