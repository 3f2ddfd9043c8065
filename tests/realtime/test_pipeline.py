"""The event pipeline's table: every event kind is handled where it happened, then on the
other processes by the same rule, sent to the processes its spread names.

Two pipelines share an in-memory hub, as two processes share Redis. The
router, delivery and live authorization are stood in for by a recorder,
so what is checked is the table and the pipeline, not the rules behind them
(the realtime and cluster suites check those with real sockets).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from livebase.realtime import messages
from livebase.realtime.cluster import Manager
from livebase.realtime.connections import SocketTakenOver
from livebase.realtime.emits import ToEveryone, ToRoom
from livebase.realtime.event_kinds import event_kinds
from livebase.realtime.offsets import Progress
from livebase.realtime.pipeline import Pipeline
from livebase.realtime.pubsub.memory import Hub, MemoryPubSub
from livebase.services.events import (
    ChangeEvent,
    Event,
    FileChanged,
    NotificationChanged,
    PermissionsChanged,
    SessionRevoked,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def change(collection: str, key: Any = 1) -> ChangeEvent:
    item = {"id": key, "title": "t"}
    return ChangeEvent(collection, "update", key, item, None, "u1", WHEN)


NOTE = {"id": 5, "type": "info", "title": "hi", "userId": "u2", "seen": False}
EVENTS: dict[str, Any] = {
    "item change": change("posts"),
    "user change": change("users", "u1"),
    "file": FileChanged("uploaded", {"id": "f1", "size": 3}, "u1", WHEN),
    "notification": NotificationChanged("new", NOTE, WHEN),
    "room emit": ToRoom("team:red", "news", {"n": 1}),
    "broadcast": ToEveryone("news", [1, "two"]),
    "session revoked": SessionRevoked("s1", "u1"),
    "permissions": PermissionsChanged("editor"),
    "socket taken over": SocketTakenOver("sid-1"),
}


class Recorder:
    """Stands in for the router, delivery and live authorization, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    # Router: one "envelope" per call, handed to deliver().
    def change(self, event: ChangeEvent) -> list[tuple[Any, ...]]:
        return [("item", event.collection, event.key)]

    def file(self, event: FileChanged) -> list[tuple[Any, ...]]:
        return [("file", event.file["id"])]

    def to_room(
        self,
        room: str,
        event: str,
        payload: Any,
        position: int | None = None,
        skip: str | None = None,
    ) -> list[tuple[Any, ...]]:
        return [("room", room, event)]

    def to_everyone(self, event: str, payload: Any) -> list[tuple[Any, ...]]:
        return [("everyone", event)]

    # Delivery.
    def deliver(self, envelopes: list[tuple[Any, ...]], committed: float | None = None) -> None:
        self.calls.extend(envelopes)

    # Live authorization.
    async def changed(self, event: ChangeEvent) -> bool:
        self.calls.append(("bookkeeping", event.collection))
        return event.collection != "schemas"

    async def session_revoked(self, event: SessionRevoked) -> None:
        self.calls.append(("revoked", event.session_id))

    async def permissions_changed(self, event: PermissionsChanged) -> None:
        self.calls.append(("permissions", event.role))

    async def change_arrived(self, event: ChangeEvent) -> None:
        self.calls.append(("arrived", event.collection))

    async def permissions_arrived(self, event: PermissionsChanged) -> None:
        self.calls.append(("arrived", "permissions"))

    # The sockets' lifecycle.
    def taken_over(self, event: SocketTakenOver) -> None:
        self.calls.append(("taken over", event.sid))


class NoCollections:
    def peek(self, name: str) -> None:
        return None


class NoLiveQueries:
    async def change(self, event: ChangeEvent) -> list[tuple[Any, ...]]:
        return []


def table(recorder: Recorder) -> Any:
    stand_in: Any = recorder
    registry: Any = NoCollections()
    live: Any = NoLiveQueries()
    return event_kinds(stand_in, live, stand_in, stand_in, registry, recorder.taken_over)


Node = tuple[Pipeline, Manager, Recorder]


@pytest.fixture
async def processes() -> AsyncIterator[tuple[Node, Node]]:
    hub = Hub()
    nodes = []
    for name in ("node-a", "node-b"):
        manager, recorder = Manager(name), Recorder()
        pipeline = Pipeline(table(recorder), manager, Progress())
        await manager.start(MemoryPubSub(name, hub), pipeline.receive)
        nodes.append((pipeline, manager, recorder))
    yield nodes[0], nodes[1]
    for _, manager, _ in nodes:
        await manager.stop()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_every_event_has_exactly_one_kind_and_every_event_message_one_reader() -> None:
    kinds = table(Recorder())
    types = [kind.type for kind in kinds]
    assert len(types) == len(set(types))
    assert set(get_args(Event)) | {ToRoom, ToEveryone, SocketTakenOver} == set(types)
    read = [kind.message for kind in kinds if kind.message is not None]
    assert len(read) == len(set(read))
    written = {
        value
        for name, value in vars(messages).items()
        if name.isupper() and isinstance(value, str) and name != "VERSION"
    }
    cluster_own = {messages.ACK, messages.QUESTION, messages.ANSWER} | messages.SOCKETIO
    assert set(read) == written - cluster_own
    assert all(kind.decode is not None for kind in kinds if kind.message is not None)


@pytest.mark.parametrize("name", list(EVENTS))
async def test_each_kind_is_handled_here_then_on_the_other_process_by_the_same_rule(
    processes: tuple[Node, Node], name: str
) -> None:
    (pipeline_a, _, here), (_, manager_b, there) = processes
    await manager_b.want(["posts"])
    event = EVENTS[name]
    if isinstance(event, ToRoom | ToEveryone | SocketTakenOver):
        pipeline_a.publish_now(event)
    else:
        await pipeline_a.publish(event)
    assert here.calls, "handled here before anything is shared"
    await settle()
    arrived = [call for call in there.calls if call[0] == "arrived"]
    assert [call for call in there.calls if call[0] != "arrived"] == here.calls
    assert arrived == {
        "item change": [("arrived", "posts")],
        "user change": [("arrived", "users")],
        "permissions": [("arrived", "permissions")],
    }.get(name, [])


async def test_a_notification_reaches_its_owner_room_on_every_process(
    processes: tuple[Node, Node],
) -> None:
    (pipeline_a, _, here), (_, _, there) = processes
    await pipeline_a.publish(EVENTS["notification"])
    await settle()
    assert here.calls == there.calls == [("room", "user:u2", "notification.new")]


async def test_an_event_of_a_change_log_position_already_handled_is_dropped(
    processes: tuple[Node, Node],
) -> None:
    (pipeline_a, manager_a, here), (pipeline_b, manager_b, there) = processes
    await manager_a.want(["posts"])
    await manager_b.want(["posts"])
    first, second = (replace(change("posts", key), position=p) for key, p in ((1, 5), (2, 6)))
    await pipeline_a.publish(first)
    await pipeline_a.publish(second)
    await pipeline_a.publish(first)  # published again, as after a relay's crash
    await settle()
    # Another process taking over publishing starts again from an older position.
    await pipeline_b.publish(first)
    await pipeline_b.publish(second)
    await pipeline_b.publish(replace(change("posts", 3), position=7))
    await settle()
    items = [call for call in here.calls if call[0] == "item"]
    assert items == [("item", "posts", 1), ("item", "posts", 2), ("item", "posts", 3)]
    assert [call for call in there.calls if call[0] == "item"] == items


async def test_an_item_change_goes_only_to_processes_listening_to_its_collection(
    processes: tuple[Node, Node],
) -> None:
    (pipeline_a, _, here), (_, manager_b, there) = processes
    await manager_b.want(["comments"])
    await pipeline_a.publish(change("posts"))
    await pipeline_a.publish(change("users", "u1"))  # users: every process, listening or not
    await pipeline_a.publish(change("comments", 9))
    await settle()
    assert ("item", "posts", 1) in here.calls
    assert [call for call in there.calls if call[0] != "arrived"] == [
        ("bookkeeping", "users"),
        ("item", "users", "u1"),
        ("bookkeeping", "comments"),
        ("item", "comments", 9),
    ]


@pytest.mark.parametrize("event", [change("schemas", "posts"), PermissionsChanged("editor")])
async def test_a_change_of_rules_returns_once_every_process_applied_it(
    processes: tuple[Node, Node], event: Any
) -> None:
    (pipeline_a, _, _), (_, _, there) = processes
    async with asyncio.timeout(1):  # well under the confirmation's own bound
        await pipeline_a.publish(event)
    # No settling: publishing returned only after the other process caught up and applied it.
    assert there.calls[0][0] == "arrived" and len(there.calls) == 2
    if isinstance(event, ChangeEvent):
        assert ("item", "schemas", "posts") not in there.calls  # bookkeeping, not an item event
