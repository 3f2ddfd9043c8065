"""Broadcast (docs/realtime.md, "Broadcast"): a socket's message to the other
sockets of a room it is in, as ``room.message``, on every process; refusals
with a reason, nothing sent.

Alone (SQLite, PostgreSQL) and as a two-node cluster: clients on node B,
and, where a test needs a socket on node A, ``live.connect_to_writer``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.realtime.conftest import Live
from tests.realtime.recovering import Recovering


async def test_a_broadcast_reaches_the_other_sockets_of_the_room_only(live: Live) -> None:
    ann, bob = await live.in_room("board:1", "ann", "bob")
    outsider = await live.connect(live.api.admin_token, "outsider")
    await outsider.call("join", "board:2")

    answer = await ann.call("broadcast", {"room": "board:1", "event": "cursor", "data": [3, 4]})

    assert answer == {"success": True, "room": "board:1"}
    message = await bob.wait_for("room.message")
    assert message == {
        "room": "board:1",
        "event": "cursor",
        "data": [3, 4],
        "from": {"userId": message["from"]["userId"], "socketId": ann.sio.get_sid("/")},
        "timestamp": message["timestamp"],
    }
    assert message["from"]["userId"] and message["timestamp"].endswith("Z")
    await live.sentinel(ann, bob, outsider)
    assert ann.received("room.message") == []  # not the sender
    assert outsider.received("room.message") == []
    assert bob.received("cursor") == []  # the client's event name never arrives as itself


async def test_item_rooms_take_broadcasts_from_their_members(live: Live) -> None:
    await live.api.collection("notes", {"text": {"type": "String"}})
    note = await live.api.ok(
        "POST", "/items/notes", 201, headers=live.api.admin, json={"text": "x"}
    )
    room = f"item:notes:{note['data']['id']}"
    ann, bob = await live.in_room(room, "ann", "bob")
    assert (await ann.call("broadcast", {"room": room, "event": "typing", "data": None}))["success"]
    assert (await bob.wait_for("room.message"))["event"] == "typing"


@pytest.mark.parametrize("transport", ["websocket"])
async def test_broadcasts_are_refused_with_a_reason_and_send_nothing(live: Live) -> None:
    ann, bob = await live.in_room("board:1", "ann", "bob")
    await ann.call("join", "presence")
    user_id = (await ann.wait_for("connected"))["userId"]
    refusals: list[tuple[Any, str]] = [
        (None, "broadcast takes"),
        ("board:1", "broadcast takes"),
        ({"event": "x"}, "room must be a string"),
        ({"room": "", "event": "x"}, "1 to 200"),
        ({"room": "board:1"}, "event must be"),
        ({"room": "board:1", "event": ""}, "event must be"),
        ({"room": "board:1", "event": "x" * 101}, "event must be"),
        ({"room": "board:1", "event": 5}, "event must be"),
        ({"room": "board:2", "event": "x"}, "join 'board:2' before"),
        ({"room": f"user:{user_id}", "event": "x"}, "no broadcasts in"),
        ({"room": "collection:users", "event": "x"}, "no broadcasts in"),
        ({"room": "presence", "event": "x"}, "no broadcasts in"),
        ({"room": bob.sio.get_sid("/"), "event": "x"}, "own room"),
    ]
    for request, message in refusals:
        answer = await ann.call("broadcast", request)
        assert answer["success"] is False, request
        assert message in answer["message"], (request, answer)
    await ann.sio.emit("broadcast", {"room": "board:1", "event": "no ack asked"})
    await bob.wait_for("room.message")
    await live.sentinel(ann, bob)
    assert [m["event"] for m in bob.received("room.message")] == ["no ack asked"]


@pytest.mark.parametrize("transport", ["websocket"])
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_BROADCAST_RATE": 5}])
async def test_past_socket_broadcast_rate_the_ack_says_rate_limited(live: Live) -> None:
    ann, bob = await live.in_room("board:1", "ann", "bob")
    answers = [
        await ann.call("broadcast", {"room": "board:1", "event": "tick", "data": n})
        for n in range(8)
    ]
    sent = [a for a in answers if a["success"]]
    limited = [a for a in answers if not a["success"]]
    assert 5 <= len(sent) < 8
    assert limited and all(a["message"] == "rate limited" for a in limited)
    await live.sentinel(bob)
    assert len(bob.received("room.message")) == len(sent)
    # Another socket has its own allowance.
    assert (await bob.call("broadcast", {"room": "board:1", "event": "tock"}))["success"]


@pytest.mark.parametrize("transport", ["websocket"])
async def test_an_extensions_validator_decides_who_broadcasts_where(live: Live) -> None:
    seen: list[tuple[Any, ...]] = []

    def only_cursors(socket: Any, room: str, event: str, data: Any) -> bool:
        seen.append((socket.role, room, event, data))
        if event == "boom":
            raise ValueError("no explosions")
        return event == "cursor"

    for node in {id(live.realtime): live.realtime, id(live.writer): live.writer}.values():
        node.socket.register_broadcast_validator("board:", only_cursors)
    ann, bob = await live.in_room("board:1", "ann", "bob")
    assert (await ann.call("broadcast", {"room": "board:1", "event": "cursor", "data": 1}))[
        "success"
    ]
    refused = await ann.call("broadcast", {"room": "board:1", "event": "chat", "data": 2})
    assert refused == {"success": False, "message": "not allowed to broadcast to 'board:1'"}
    raised = await ann.call("broadcast", {"room": "board:1", "event": "boom"})
    assert raised["success"] is False and "no explosions" in raised["message"]
    assert seen[0] == ("administrator", "board:1", "cursor", 1)
    await live.sentinel(bob)
    assert [m["event"] for m in bob.received("room.message")] == ["cursor"]


@pytest.mark.parametrize("transport", ["websocket"])
async def test_a_broadcast_reaches_the_room_on_every_process(live: Live) -> None:
    """In the cluster topology ``there`` is on the other node (the writer's)."""
    here, *_ = await live.in_room("board:1", "here")
    there = await live.connect_to_writer("there")
    assert (await there.call("join", "board:1"))["success"] is True

    assert (await here.call("broadcast", {"room": "board:1", "event": "hi", "data": 1}))["success"]
    assert (await there.wait_for("room.message"))["data"] == 1
    assert (await there.call("broadcast", {"room": "board:1", "event": "hi", "data": 2}))["success"]
    assert (await here.wait_for("room.message"))["data"] == 2
    await live.sentinel(here, there)
    assert len(here.received("room.message")) == len(there.received("room.message")) == 1


async def test_broadcasts_are_neither_logged_nor_replayed(live: Live) -> None:
    """SPEC §13: a socket that recovers its session gets the items it missed, never the
    broadcasts; and a broadcast adds nothing to the change log."""

    async def last_position() -> int:
        stats = await live.api.ok("GET", "/stats/realtime", headers=live.api.admin)
        return int(stats["data"]["changeLog"]["lastPosition"])

    (bob,) = await live.in_room("board:1", "bob")
    ann = Recovering(live.base_url)
    try:
        await ann.connect(live.api.admin_token)
        assert (await ann.sio.call("join", "board:1", timeout=10))["success"] is True
        before = await last_position()
        await ann.drop(stay_away=True)
        sent = await bob.call("broadcast", {"room": "board:1", "event": "while-away"})
        assert sent["success"] is True
        assert await last_position() == before
        ann.gate.set()
        assert (await ann.next_connected())["recovered"] is True
        await bob.call("broadcast", {"room": "board:1", "event": "after"})
        await ann.wait(lambda: any(n == "room.message" for n, _ in ann.events))
        assert [p["event"] for n, p in ann.events if n == "room.message"] == ["after"]
    finally:
        await ann.close()
