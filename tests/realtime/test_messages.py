"""Cross-process messages: each type survives build → encode → decode → handle,
and a message of another version is refused loudly and changes nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from livebase import encoding
from livebase.realtime import messages
from livebase.realtime.cluster import Manager
from livebase.realtime.connections import SocketTakenOver
from livebase.realtime.emits import ToEveryone, ToRoom
from livebase.realtime.pubsub.memory import Hub, MemoryPubSub
from livebase.services.events import (
    ChangeEvent,
    FileChanged,
    NotificationChanged,
    PermissionsChanged,
    SessionRevoked,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CHANGE = ChangeEvent(
    collection="posts",
    action="update",
    key=7,
    item={"id": 7, "title": "t"},
    previous={"id": 7, "title": "s"},
    user_id="u1",
    timestamp=WHEN,
    position=41,
)
FILE = FileChanged("uploaded", {"id": "f1", "size": 3}, user_id="u1", timestamp=WHEN, position=42)
NOTE = NotificationChanged("seen", {"id": "n1", "userId": "u2", "seen": True}, WHEN, position=43)
REVOKED = SessionRevoked(session_id="s1", user_id="u1")
PERMISSIONS = PermissionsChanged(role="editor")
ROOM = ToRoom("team:red", "news", {"n": 1})
EVERYONE = ToEveryone("news", [1, "two"])


class NoCollections:
    """The registry as ``messages`` reads it: no typed fields to restore."""

    def peek(self, name: str) -> None:
        return None


EVERY_MESSAGE = {
    messages.CHANGE: messages.change(CHANGE),
    messages.FILE: messages.file(FILE),
    messages.NOTIFICATION: messages.notification(NOTE),
    messages.ROOM: messages.room(ROOM),
    messages.EVERYONE: messages.everyone(EVERYONE),
    messages.REVOKE: messages.revoke(REVOKED),
    messages.PERMISSIONS: messages.permissions(PERMISSIONS),
    messages.TAKEOVER: messages.takeover(SocketTakenOver("sid-1")),
    messages.ACK: messages.ack("abc", "node-a"),
    messages.QUESTION: messages.question("trace", {"position": 7, "user": "u1"}, "abc"),
    messages.ANSWER: messages.answer("abc", "node-a", "node-b", [{"sid": "s1"}]),
    messages.EMIT: messages.emit("news", [{"n": 1}, "x"], "/", ["r1", "r2"], "sid-1"),
    messages.ENTER_ROOM: messages.enter_room("sid-1", "team:red", "/"),
    messages.LEAVE_ROOM: messages.leave_room("sid-1", "team:red", "/"),
    messages.CLOSE_ROOM: messages.close_room("team:red", "/"),
    messages.DISCONNECT: messages.disconnect("sid-1", "/"),
}


def test_every_message_type_is_built_here_with_a_version_and_readable_keys() -> None:
    kinds = {
        value
        for name, value in vars(messages).items()
        if name.isupper() and isinstance(value, str) and name != "VERSION"
    }
    assert kinds == set(EVERY_MESSAGE)
    for kind, message in EVERY_MESSAGE.items():
        assert message["v"] == messages.VERSION and message["type"] == kind
        assert all(key == "v" or len(key) > 1 for key in message)
        assert messages.decode(messages.encode(message)) == encoding.loads(encoding.dumps(message))


def test_events_come_back_as_they_left() -> None:
    registry: Any = NoCollections()

    def through(message: messages.Message) -> messages.Message:
        return messages.decode(messages.encode(message))

    assert messages.change_event(through(messages.change(CHANGE)), registry) == CHANGE
    assert messages.file_event(through(messages.file(FILE)), registry) == FILE
    assert messages.notification_event(through(messages.notification(NOTE))) == NOTE
    assert messages.revoke_event(through(messages.revoke(REVOKED))) == REVOKED
    assert messages.permissions_event(through(messages.permissions(PERMISSIONS))) == PERMISSIONS
    assert messages.room_emit(through(messages.room(ROOM))) == ROOM
    assert messages.everyone_emit(through(messages.everyone(EVERYONE))) == EVERYONE


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Manager, Manager, list[messages.Message]]]:
    """Two managers on one in-memory hub; what B's server is handed, in order."""
    hub = Hub()
    a, b = Manager("node-a"), Manager("node-b")
    handed: list[messages.Message] = []

    async def nothing(message: messages.Message) -> None:
        pass

    async def record(message: messages.Message) -> None:
        handed.append(message)

    await a.start(MemoryPubSub("node-a", hub), nothing)
    await b.start(MemoryPubSub("node-b", hub), record)
    yield a, b, handed
    await a.stop()
    await b.stop()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "kind", [messages.CHANGE, messages.FILE, messages.ROOM, messages.EVERYONE, messages.REVOKE]
)
async def test_each_event_message_reaches_the_other_servers_handler(
    nodes: tuple[Manager, Manager, list[messages.Message]], kind: str
) -> None:
    a, b, handed = nodes
    message = EVERY_MESSAGE[kind]
    a.send(message)
    await settle()
    assert handed == [encoding.loads(encoding.dumps(message))]
    assert b.counters()["received"] == 1


async def test_a_confirmed_message_returns_once_the_other_node_handled_it(
    nodes: tuple[Manager, Manager, list[messages.Message]],
) -> None:
    a, b, handed = nodes
    async with asyncio.timeout(0.5):  # far below CONFIRM_WAIT: the ack came back
        await a.send_confirmed(EVERY_MESSAGE[messages.PERMISSIONS])
    assert [m["type"] for m in handed] == [messages.PERMISSIONS]
    assert b.counters()["received"] == 1 and a.counters()["received"] == 1  # the ack


async def test_a_message_of_another_version_is_refused_once_per_peer_and_changes_nothing(
    nodes: tuple[Manager, Manager, list[messages.Message]], caplog: pytest.LogCaptureFixture
) -> None:
    a, b, handed = nodes
    newer = {**messages.room(ROOM), "v": messages.VERSION + 1}
    older = {"m": "room", "r": "team:red", "e": "news", "p": {"n": 1}}  # before versions: 1
    pubsub = a._pubsub
    with caplog.at_level(logging.ERROR, logger="livebase.cluster"):
        for message in (newer, newer, older, older, newer):
            pubsub.publish(None, encoding.dumps(message))
        await settle()
    assert handed == [] and b.counters()["received"] == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "livebase.cluster"]
    assert len(lines) == 2, lines
    for line, version in zip(lines, (messages.VERSION + 1, 1), strict=True):
        assert "node-a" in line and f"version {version}" in line
        assert f"version {messages.VERSION}" in line
    a.send(messages.room(ToRoom("team:red", "news", {"n": 2})))  # still heard
    await settle()
    assert [m["payload"] for m in handed] == [{"n": 2}]


async def test_alone_nothing_is_built_nor_subscribed() -> None:
    manager = Manager("alone")

    async def nothing(message: messages.Message) -> None:
        raise AssertionError("nobody else exists")

    await manager.start(MemoryPubSub("alone"), nothing)
    assert not manager.clustered
    await manager.want(["posts"])
    assert manager.counters() == {"published": 0, "dropped": 0, "channels": 1, "received": 0}
    await manager.stop()
