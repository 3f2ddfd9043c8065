"""The same tests over every pub/sub backend: memory (a shared hub) and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from livebase.realtime.pubsub.base import PubSub
from livebase.realtime.pubsub.memory import Hub, MemoryPubSub
from livebase.realtime.pubsub.redis import RedisPubSub
from livebase.storage.redis import RedisLink
from tests.conftest import REDIS_TEST_URL


@dataclass
class Inbox:
    got: list[tuple[str, bytes]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self, sender: str, data: bytes) -> None:
        self.got.append((sender, data))
        self.changed.set()

    async def until(self, count: int) -> list[bytes]:
        async with asyncio.timeout(5):
            while len(self.got) < count:
                self.changed.clear()
                await self.changed.wait()
        return [data for _, data in self.got]


Make = Callable[[str], Awaitable[PubSub]]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """Makes nodes of one cluster on the parametrized backend (not yet started)."""
    links: list[RedisLink] = []
    hub = Hub()
    key = request.getfixturevalue("redis_key") if request.param == "redis" else ""

    async def node(node_id: str) -> PubSub:
        if request.param == "memory":
            return MemoryPubSub(node_id, hub)
        link = RedisLink(REDIS_TEST_URL, key)
        links.append(link)
        return RedisPubSub(link, key, node_id)

    yield node
    for link in links:
        await link.close()


@pytest.fixture
async def pair(make: Make) -> AsyncIterator[tuple[PubSub, PubSub, Inbox, Inbox]]:
    a, b = await make("a"), await make("b")
    inbox_a, inbox_b = Inbox(), Inbox()
    await a.start(inbox_a.receive)
    await b.start(inbox_b.receive)
    yield a, b, inbox_a, inbox_b
    await a.stop()
    await b.stop()


async def test_everything_arrives_in_order_from_its_sender_and_never_back(
    pair: tuple[PubSub, PubSub, Inbox, Inbox],
) -> None:
    a, b, inbox_a, inbox_b = pair
    assert not a.alone and not b.alone
    for n in range(100):
        a.publish(None, b"%d" % n)
    assert await inbox_b.until(100) == [b"%d" % n for n in range(100)]
    assert {sender for sender, _ in inbox_b.got} == {"a"}
    b.publish(None, b"back")
    assert await inbox_a.until(1) == [b"back"]
    assert inbox_a.got == [("b", b"back")]  # a never heard its own hundred
    assert a.counters()["published"] == 100 and a.counters()["dropped"] == 0


async def test_a_topic_reaches_only_its_subscribers(
    pair: tuple[PubSub, PubSub, Inbox, Inbox],
) -> None:
    a, b, _, inbox_b = pair
    sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    a.publish("posts", b"before", sent)  # queued: wait until it has left
    assert await asyncio.wait_for(sent, 5) == 0
    await b.subscribe(["posts"])
    assert b.counters()["channels"] == 2
    a.publish("posts", b"after")
    a.publish("other", b"not for b")
    a.publish(None, b"end")
    assert await inbox_b.until(2) == [b"after", b"end"]
    await b.unsubscribe(["posts"])
    a.publish("posts", b"gone")
    a.publish(None, b"end2")
    assert await inbox_b.until(3) == [b"after", b"end", b"end2"]


async def test_receivers_counts_the_other_nodes_only(
    pair: tuple[PubSub, PubSub, Inbox, Inbox],
) -> None:
    a, _, _, _ = pair
    loop = asyncio.get_running_loop()
    everyone: asyncio.Future[int] = loop.create_future()
    nobody: asyncio.Future[int] = loop.create_future()
    a.publish(None, b"x", everyone)
    a.publish("unheard", b"y", nobody)
    async with asyncio.timeout(5):
        assert await everyone == 1
        assert await nobody == 0


async def test_alone_is_only_an_in_memory_backend_without_a_hub() -> None:
    alone = MemoryPubSub("x")
    assert alone.alone
    inbox = Inbox()
    await alone.start(inbox.receive)
    alone.publish(None, b"x")
    await asyncio.sleep(0)
    assert inbox.got == []
    await alone.stop()
