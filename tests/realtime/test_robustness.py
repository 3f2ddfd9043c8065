"""Malformed client messages get an error ack or are ignored (docs/realtime.md, Malformed input).

They never crash the socket, the process, or another client's delivery. After
each kind of abuse the test checks all three: the abusing socket still
answers a join, its events still arrive, and a bystander still gets item
events. Oversized messages are the one exception: they close that one
socket, as Engine.IO does, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.realtime.conftest import TIMEOUT, Client, Live

POSTS = {"title": {"type": "String"}}
# Tests that speak the protocol by hand, over a raw websocket, whatever the fixture's transport.
RAW_WEBSOCKET = pytest.mark.parametrize("transport", ["websocket"])


def assert_refused(ack: Any) -> str:
    assert isinstance(ack, dict) and set(ack) == {"success", "message"}, ack
    assert ack["success"] is False and isinstance(ack["message"], str) and ack["message"], ack
    return str(ack["message"])


async def still_fine(live: Live, abuser: Client, bystander: Client) -> None:
    """The abusing socket answers and receives; the bystander gets item events."""
    assert not abuser.disconnected.is_set() and abuser.sio.connected
    assert await abuser.call("join", "still-here") == {"success": True, "room": "still-here"}
    created = await live.api.ok(
        "POST", "/items/posts", 201, headers=live.api.admin, json={"title": "after"}
    )
    key = created["data"]["id"]
    await bystander.wait_for("item.created", lambda p: p["item"]["id"] == key)
    await live.sentinel(abuser, bystander)


async def _setup(live: Live) -> tuple[Client, Client]:
    await live.api.collection("posts", POSTS)
    token, _ = await live.api.user("abuser@example.com")
    abuser = await live.connect(token, "abuser")
    bystander = await live.connect(live.api.admin_token, "bystander")
    return abuser, bystander


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [f"{r.name}: {r.getMessage()}" for r in errors]


# -- wrong types and sizes -----------------------------------------------------------------


async def ignored(client: Client, event: str, *data: Any) -> None:
    """Send ``event`` without an ack; the socket must go on answering."""
    await client.sio.emit(event, data[0] if data else None)
    assert await client.call("join", "probe") == {"success": True, "room": "probe"}


async def test_wrong_room_types_and_huge_names_get_error_acks(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    abuser, bystander = await _setup(live)
    malformed: list[Any] = [
        12345,
        -1.5,
        False,
        None,
        [],
        ["a", "b"],
        {"rooms": "a"},
        {"room": ["a"]},
        {"room": {"room": "a"}},
        {"room": 7},
        {},
        "x" * 10_000,
        {"room": "x" * 10_000},
        "collection:" + "x" * 10_000,
    ]
    for value in malformed:
        for event in ("join", "leave"):
            assert_refused(await abuser.call(event, value))
            await ignored(abuser, event, value)
    rooms = live.realtime.stats()["rooms"]
    assert not any(len(name) > 200 for name in rooms)
    await still_fine(live, abuser, bystander)
    _no_errors_logged(caplog)


async def test_a_burst_of_ordinary_joins_is_answered(live: Live) -> None:
    """Twenty joins at once (a list view joining its items' rooms) is no flood.

    socket.io-client, like python-socketio's client, sends everything it has
    queued in one long-polling POST: each join must still get its ack.
    """
    socket = await live.connect(None, "list-view")
    rooms = [f"row:{i}" for i in range(20)]
    acks = await asyncio.gather(*(socket.sio.call("join", room, timeout=5) for room in rooms))
    assert acks == [{"success": True, "room": room} for room in rooms]


async def test_join_flood(live: Live) -> None:
    """1 000 joins emitted at once: each is answered correctly or ignored, and nothing breaks.

    400 of them name distinct valid rooms: the first ``SOCKET_MAX_ROOMS`` taken
    are joined, the others refused for the count.
    """
    abuser, bystander = await _setup(live)
    acks: list[tuple[Any, Any]] = []
    max_rooms = live.realtime.settings.SOCKET_MAX_ROOMS
    assert max_rooms < 400

    def room(i: int) -> Any:
        return [f"flood:{i}", 1000 + i, "", "collection:posts", {"room": f"flood:{i}"}][i % 5]

    def expected(i: int) -> Any:
        if i % 5 in (0, 4):
            return {"success": True, "room": f"flood:{i}"}
        return False  # refused: not a string, empty, or a collection the abuser cannot read

    started = asyncio.get_running_loop().time()
    for i in range(1000):
        await abuser.sio.emit("join", room(i), callback=lambda ack, i=i: acks.append((i, ack)))
    # Once the client has handed the flood to its transport, ask something else:
    # by the time that is answered, every join the server took has been answered.
    deadline = started + TIMEOUT
    while not abuser.sio.eio.queue.empty():
        assert asyncio.get_running_loop().time() < deadline, "the client never sent its flood"
        await asyncio.sleep(0.01)
    assert await abuser.call("leave", "after-flood") == {"success": True, "room": "after-flood"}
    took = asyncio.get_running_loop().time() - started

    for i, ack in acks:
        if expected(i) is False or not ack["success"]:
            assert_refused(ack)
        else:
            assert ack == expected(i), (i, ack)
    over = [a for i, a in acks if expected(i) is not False and not a["success"]]
    assert all(f"at most {max_rooms} rooms" in a["message"] for a in over), over[:3]
    flood_rooms = {name for name in live.realtime.stats()["rooms"] if name.startswith("flood:")}
    assert flood_rooms == {a["room"] for _, a in acks if a["success"]}
    assert len(flood_rooms) <= max_rooms
    if live.transport == "websocket":  # one frame per join: each is answered
        assert len(acks) == 1000 and len(flood_rooms) == max_rooms and len(over) == 400 - max_rooms
    assert took < TIMEOUT
    for left in sorted(flood_rooms)[:1]:  # room for still_fine's own join
        assert await abuser.call("leave", left) == {"success": True, "room": left}
    await still_fine(live, abuser, bystander)


# -- unknown events ------------------------------------------------------------------------


async def test_unknown_events_get_an_error_ack_or_are_ignored(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    abuser, bystander = await _setup(live)
    for event, data in [
        ("nope", None),
        ("nope", {"a": 1}),
        ("item.created", {"collection": "posts", "item": {"id": 1}}),
        ("message", "hi"),
        ("x" * 5_000, None),
        ("", None),
    ]:
        message = assert_refused(await abuser.call(event, data))
        assert "unknown event" in message and len(message) < 200
        await abuser.sio.emit(event, data)  # no ack: ignored
    # A client cannot make another client receive anything by emitting events.
    await live.sentinel(bystander)
    assert bystander.received("item.created") == []
    await still_fine(live, abuser, bystander)
    _no_errors_logged(caplog)


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_PRESENCE_GRACE": 0}])
@pytest.mark.parametrize("event", ["disconnect", "connect"])
async def test_client_cannot_trigger_the_servers_connect_or_disconnect_handler(
    live: Live, event: str
) -> None:
    """``connect`` and ``disconnect`` are lifecycle events, not requests a client may send.

    python-socketio dispatches an EVENT packet to whatever handler bears its
    name; a client emitting ``disconnect`` must not run the server's
    disconnect handler while its socket stays connected (the server would
    forget it, stop its delivery and announce its user offline).
    """
    token, user = await live.api.user("abuser@example.com")
    watcher = await live.connect(live.api.admin_token, "watcher")
    assert (await watcher.call("join", "presence"))["success"] is True
    abuser = await live.connect(token, "abuser")
    await watcher.wait_for("user.connected", lambda p: p["userId"] == user["id"])
    sid = abuser.sio.get_sid()

    await abuser.sio.emit(event)  # no ack
    await abuser.sio.emit(event, {"token": token})
    ack = await abuser.call(event, {"token": token})

    # The socket is connected, so the server still serves it as connected.
    assert await abuser.call("join", "still-here") == {"success": True, "room": "still-here"}
    assert sid in live.realtime.connections.by_sid
    assert live.realtime.stats()["users"] == 2
    await live.realtime.socket.emit_to_user(user["id"], "for.abuser", {"n": 1})
    await abuser.wait_for("for.abuser")
    await live.sentinel(watcher, abuser)
    assert watcher.received("user.disconnected") == []
    # And it was told, like for any other event it may not send.
    assert "unknown event" in assert_refused(ack)


# -- binary payloads ---------------------------------------------------------------------


async def test_binary_where_text_is_expected(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    abuser, bystander = await _setup(live)
    for value in (b"lobby", bytearray(b"\x00\xff"), {"room": b"lobby"}, [b"a", "b"]):
        for event in ("join", "leave"):
            assert_refused(await abuser.call(event, value))
            await abuser.sio.emit(event, value)
    assert "unknown event" in assert_refused(await abuser.call("upload", b"\x00" * 1000))
    await abuser.sio.emit("upload", b"\x00" * 1000)
    assert "lobby" not in live.realtime.stats()["rooms"]
    await still_fine(live, abuser, bystander)
    _no_errors_logged(caplog)


# -- oversized messages ------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_MAX_MESSAGE_SIZE": 2048}])
async def test_message_over_max_size_closes_that_socket_only(live: Live) -> None:
    abuser, bystander = await _setup(live)
    neighbour = await live.connect(None, "neighbour")
    assert (await neighbour.call("join", "shared"))["success"] is True
    sid = abuser.sio.get_sid()
    # Under the limit: an ordinary refusal.
    assert_refused(await abuser.call("join", "x" * 1_500))
    assert sid in live.realtime.connections.by_sid

    await abuser.sio.emit("join", "x" * 4_000)
    await asyncio.wait_for(abuser.disconnected.wait(), TIMEOUT)
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while sid in live.realtime.connections.by_sid:
        assert asyncio.get_running_loop().time() < deadline, "the server kept the socket"
        await asyncio.sleep(0.01)

    # Nobody else noticed.
    created = await live.api.ok(
        "POST", "/items/posts", 201, headers=live.api.admin, json={"title": "after"}
    )
    await bystander.wait_for("item.created", lambda p: p["item"]["id"] == created["data"]["id"])
    await live.realtime.socket.emit_to_room("shared", "room.ping", {"n": 1})
    await neighbour.wait_for("room.ping")
    await live.sentinel(bystander, neighbour)
    assert live.realtime.stats()["connections"] == 2


# -- malformed packets, by hand ----------------------------------------------------------


class Raw:
    """A websocket client speaking Engine.IO v4 / Socket.IO v5 by hand; answers pings."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[str | bytes] = []

    @classmethod
    async def connect(cls, live: Live, token: str | None = None) -> Raw:
        port = int(live.base_url.rsplit(":", 1)[1])
        ws = await connect(
            f"ws://127.0.0.1:{port}/realtime/?EIO=4&transport=websocket", compression=None
        )
        raw = cls(ws)
        opened = await raw.next(lambda m: True)
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        await ws.send("40" + (json.dumps({"token": token}) if token else ""))
        await raw.next(lambda m: isinstance(m, str) and m.startswith("40{"))
        await raw.next(lambda m: isinstance(m, str) and m.startswith('42["connected"'))
        return raw

    async def next(
        self, where: Callable[[str | bytes], bool], within: float = TIMEOUT
    ) -> str | bytes:
        """The next message satisfying ``where``; others are kept in ``inbox``."""
        async with asyncio.timeout(within):
            while True:
                message = await self.ws.recv()
                if message == "2":
                    await self.ws.send("3")
                elif where(message):
                    return message
                else:
                    self.inbox.append(message)

    async def call(self, ack_id: int, event: str, data: Any, within: float = TIMEOUT) -> Any:
        await self.ws.send(f"42{ack_id}" + json.dumps([event, data]))
        prefix = f"43{ack_id}["
        answer = await self.next(lambda m: isinstance(m, str) and m.startswith(prefix), within)
        assert isinstance(answer, str)
        return json.loads(answer[2 + len(str(ack_id)) :])[0]


MALFORMED_SOCKETIO = [
    "4",  # a MESSAGE with no Socket.IO packet in it
    "42",  # EVENT without data
    "42{}",
    "42[]",
    '42"join"',
    "42[1]",
    '42[[1],"room"]',
    '42[{"a":1},"room"]',
    "42[null]",
    '42["join"',  # broken JSON
    '42["join",' + "[" * 5_000 + "]" * 5_000 + "]",  # deep nesting
    "43[1]",  # an ACK nobody asked for
    '431["x"]',
    "49",  # no such Socket.IO packet type
    "40",  # CONNECT again, already connected
    "44{}",  # CONNECT_ERROR from a client
    b"\x00\x01\x02",  # binary where no attachment is expected
]


@RAW_WEBSOCKET
async def test_malformed_socketio_packets_are_ignored(live: Live) -> None:
    await live.api.collection("posts", POSTS)
    bystander = await live.connect(live.api.admin_token, "bystander")
    token, user = await live.api.user("raw@example.com")
    raw = await Raw.connect(live, token)
    assert live.realtime.stats()["connections"] == 2

    for i, packet in enumerate(MALFORMED_SOCKETIO):
        await raw.ws.send(packet)
        answer = await raw.call(i + 100, "join", f"probe-{i}")
        assert answer == {"success": True, "room": f"probe-{i}"}, (packet, answer)

    # Still one connection for that user, still receiving, bystander unaffected.
    stats = live.realtime.stats()
    assert stats["connections"] == 2 and stats["users"] == 2
    await live.realtime.socket.emit_to_user(user["id"], "for.raw", {"n": 1})
    await raw.next(lambda m: isinstance(m, str) and m.startswith('42["for.raw"'))
    created = await live.api.ok(
        "POST", "/items/posts", 201, headers=live.api.admin, json={"title": "x"}
    )
    await bystander.wait_for("item.created", lambda p: p["item"]["id"] == created["data"]["id"])
    await raw.ws.close()


@RAW_WEBSOCKET
async def test_binary_attachment_that_does_not_fit_does_not_wedge_the_socket(live: Live) -> None:
    """A BINARY_EVENT whose placeholder points past its attachments.

    The attachment is rejected; what the client sends next must be read as
    packets again, not as more attachments of the broken one.
    """
    token, _ = await live.api.user("raw@example.com")
    raw = await Raw.connect(live, token)
    await raw.ws.send('451-["join",{"_placeholder":true,"num":3}]')
    await raw.ws.send(b"lobby")
    try:
        answer = await raw.call(7, "join", "after-a-bad-attachment", within=3)
    except TimeoutError:
        pytest.fail("after a bad binary attachment, the socket answers nothing any more")
    finally:
        await raw.ws.close()
    assert answer == {"success": True, "room": "after-a-bad-attachment"}


@RAW_WEBSOCKET
async def test_garbage_engineio_frame_closes_at_most_that_socket(live: Live) -> None:
    """A frame that is not Engine.IO at all: the session closes that connection.

    That is Engine.IO's way with a parse error, and allowed; the session is
    forgotten at once (python-engineio's own session waited for the heartbeat).
    """
    await live.api.collection("posts", POSTS)
    bystander = await live.connect(live.api.admin_token, "bystander")
    raw = await Raw.connect(live, None)
    sid = next(s for s in live.realtime.connections.by_sid if s != bystander.sio.get_sid())
    await raw.ws.send("hello, not engine.io")
    try:
        answer = await raw.call(1, "join", "probe")
    except ConnectionClosed:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while sid in live.realtime.connections.by_sid:
            assert asyncio.get_running_loop().time() < deadline, "closed socket still counted"
            await asyncio.sleep(0.01)
    else:  # or ignored, which is fine too
        assert answer == {"success": True, "room": "probe"}
        await raw.ws.close()
    created = await live.api.ok(
        "POST", "/items/posts", 201, headers=live.api.admin, json={"title": "x"}
    )
    await bystander.wait_for("item.created", lambda p: p["item"]["id"] == created["data"]["id"])
    assert live.realtime.stats()["connections"] == 1
