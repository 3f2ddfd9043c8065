"""Room presence (docs/realtime.md, "Room presence"): presence.track / untrack /
list, presence.join / presence.leave, on one process and across a cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.realtime.conftest import Live
from tests.realtime.recovering import Recovering


async def test_tracking_announces_a_member_to_the_room_and_lists_it(live: Live) -> None:
    ann, bob = await live.in_room("board:1", "ann", "bob")
    ann_sid = ann.sio.get_sid("/")

    tracked = await ann.call("presence.track", {"room": "board:1", "state": {"color": "red"}})

    assert tracked == {"success": True, "room": "board:1"}
    for client in (ann, bob):  # the tracker too
        joined = await client.wait_for("presence.join")
        assert joined == {
            "room": "board:1",
            "key": ann_sid,
            "userId": joined["userId"],
            "state": {"color": "red"},
            "timestamp": joined["timestamp"],
        }
    listed = await bob.call("presence.list", {"room": "board:1"})
    assert listed["success"] is True
    assert [(m["key"], m["state"]) for m in listed["members"]] == [(ann_sid, {"color": "red"})]

    await ann.call("presence.track", {"room": "board:1", "state": {"color": "blue"}})
    await bob.wait_for("presence.join", lambda p: p["state"] == {"color": "blue"})
    assert (await ann.call("presence.untrack", {"room": "board:1"}))["success"] is True
    left = await bob.wait_for("presence.leave")
    assert left == {
        "room": "board:1",
        "key": ann_sid,
        "userId": left["userId"],
        "timestamp": left["timestamp"],
    }
    assert (await bob.call("presence.list", {"room": "board:1"}))["members"] == []


async def test_leaving_the_room_ends_the_membership(live: Live) -> None:
    ann, bob = await live.in_room("board:1", "ann", "bob")
    await ann.call("presence.track", {"room": "board:1", "state": {}})
    await bob.wait_for("presence.join")
    await ann.call("leave", "board:1")
    assert (await bob.wait_for("presence.leave"))["key"] == ann.sio.get_sid("/")
    assert (await bob.call("presence.list", {"room": "board:1"}))["members"] == []


@pytest.mark.parametrize("transport", ["websocket"])
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_PRESENCE_GRACE": 0.5}])
async def test_a_disconnect_ends_the_membership_after_the_grace(live: Live) -> None:
    ann, bob = await live.in_room("board:1", "ann", "bob")
    await ann.call("presence.track", {"room": "board:1", "state": {"n": 1}})
    await bob.wait_for("presence.join")
    gone_at = asyncio.get_running_loop().time()
    await ann.sio.disconnect()
    await bob.wait_for("presence.leave")
    assert asyncio.get_running_loop().time() - gone_at >= 0.4
    assert (await bob.call("presence.list", {"room": "board:1"}))["members"] == []


@pytest.mark.parametrize("transport", ["websocket"])
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_PRESENCE_GRACE": 2}])
async def test_a_recovered_socket_stays_a_member_without_a_word(live: Live) -> None:
    bob, *_ = await live.in_room("board:1", "bob")
    ann = Recovering(live.base_url)
    try:
        await ann.connect(live.api.admin_token)
        assert (await ann.sio.call("join", "board:1", timeout=10))["success"]
        await ann.sio.call("presence.track", {"room": "board:1", "state": {"x": 1}}, timeout=10)
        await bob.wait_for("presence.join")
        await ann.drop()
        assert (await ann.next_connected())["recovered"] is True
        await asyncio.sleep(2.5)  # past the grace
        await live.sentinel(bob)
        assert bob.received("presence.leave") == []
        listed = await bob.call("presence.list", {"room": "board:1"})
        assert [m["state"] for m in listed["members"]] == [{"x": 1}]
    finally:
        await ann.close()


@pytest.mark.parametrize("transport", ["websocket"])
async def test_presence_requests_are_refused_with_a_reason(live: Live) -> None:
    ann, *_ = await live.in_room("board:1", "ann")
    user_id = (await ann.wait_for("connected"))["userId"]
    await ann.call("join", "presence")
    refusals: list[tuple[str, Any, str]] = [
        ("presence.track", None, "room must be a string"),
        ("presence.track", {"room": "board:2", "state": {}}, "join 'board:2' first"),
        ("presence.track", {"room": "board:1", "state": [1]}, "state must be a JSON object"),
        ("presence.track", {"room": "board:1", "state": "x"}, "state must be a JSON object"),
        ("presence.track", {"room": "board:1", "state": {"a": "x" * 5000}}, "4096 bytes"),
        ("presence.track", {"room": f"user:{user_id}", "state": {}}, "server's room"),
        ("presence.track", {"room": "collection:users", "state": {}}, "server's room"),
        ("presence.track", {"room": "presence", "state": {}}, "server's room"),
        ("presence.untrack", {"room": "board:1"}, "not tracked"),
        ("presence.untrack", 5, "room must be a string"),
        ("presence.list", {"room": "board:2"}, "join 'board:2' first"),
        ("presence.list", {}, "room must be a string"),
    ]
    for event, request, message in refusals:
        answer = await ann.call(event, request)
        assert answer["success"] is False, (event, request)
        assert message in answer["message"], (event, request, answer)
    await live.sentinel(ann)
    assert ann.received("presence.join") == []


@pytest.mark.parametrize("transport", ["websocket"])
async def test_members_are_seen_from_every_process(live: Live) -> None:
    """In the cluster topology ``there`` is on the other node."""
    here, *_ = await live.in_room("board:1", "here")
    there = await live.connect_to_writer("there")
    assert (await there.call("join", "board:1"))["success"]
    await there.call("presence.track", {"room": "board:1", "state": {"who": "there"}})
    await here.wait_for("presence.join")
    await here.call("presence.track", {"room": "board:1", "state": {"who": "here"}})
    await there.wait_for("presence.join", lambda p: p["state"] == {"who": "here"})
    for client in (here, there):
        listed = await client.call("presence.list", {"room": "board:1"})
        assert sorted(m["state"]["who"] for m in listed["members"]) == ["here", "there"]
    await there.call("leave", "board:1")
    await here.wait_for("presence.leave")
    listed = await here.call("presence.list", {"room": "board:1"})
    assert [m["state"]["who"] for m in listed["members"]] == ["here"]


@pytest.mark.parametrize("transport", ["websocket"])
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_PRESENCE_GRACE": 0.3}])
async def test_a_socket_recovered_after_the_grace_joins_again(live: Live) -> None:
    bob, *_ = await live.in_room("board:1", "bob")
    ann = Recovering(live.base_url)
    try:
        await ann.connect(live.api.admin_token)
        assert (await ann.sio.call("join", "board:1", timeout=10))["success"]
        await ann.sio.call("presence.track", {"room": "board:1", "state": {"x": 2}}, timeout=10)
        await bob.wait_for("presence.join")
        await ann.drop(stay_away=True)
        await bob.wait_for("presence.leave")
        ann.gate.set()
        assert (await ann.next_connected())["recovered"] is True
        again = await bob.wait_for(
            "presence.join", lambda p: len(bob.received("presence.join")) == 2
        )
        assert again["state"] == {"x": 2}
        listed = await bob.call("presence.list", {"room": "board:1"})
        assert [m["state"] for m in listed["members"]] == [{"x": 2}]
    finally:
        await ann.close()
