"""Rooms (docs/realtime.md): who may join which, the join/leave acks, what membership delivers.

Every refusal is checked twice: the ack says so, and the socket really is
not in the room (an emit to it, then a sentinel, reaches nobody refused).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from livebase.realtime.rooms import SocketInfo
from tests.helpers import bearer
from tests.realtime.conftest import TIMEOUT, Client, Live

POSTS = {"title": {"type": "String"}, "owner": {"type": "UUID"}}


def ok(room: str) -> dict[str, Any]:
    return {"success": True, "room": room}


def assert_refused(ack: Any) -> str:
    """A refusal ack: ``{success: false, message}`` with a non-empty message; returns it."""
    assert isinstance(ack, dict) and set(ack) == {"success", "message"}, ack
    assert ack["success"] is False and isinstance(ack["message"], str) and ack["message"], ack
    return str(ack["message"])


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``check()`` holds: for server-side state with no event to wait on."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


async def emit_to_room_reaches(
    live: Live, room: str, *, to: list[Client], not_to: list[Client]
) -> None:
    """Emit a unique marker to ``room``: every client in ``to`` gets it, none in ``not_to`` does."""
    mark = uuid.uuid4().hex
    await live.realtime.socket.emit_to_room(room, "room.ping", {"room": room, "mark": mark})
    for client in to:
        await client.wait_for("room.ping", lambda p: p["mark"] == mark)
    await live.sentinel(*not_to)
    for client in not_to:
        assert [p for p in client.received("room.ping") if p["mark"] == mark] == [], client.name


async def _posts(live: Live) -> None:
    await live.api.collection("posts", POSTS)


async def _create(live: Live, collection: str, token: str | None = None, **body: Any) -> Any:
    headers = bearer(token) if token else live.api.admin
    created = await live.api.ok("POST", f"/items/{collection}", 201, headers=headers, json=body)
    return created["data"]


# -- user rooms ------------------------------------------------------------------------------


async def test_own_user_room_ok_another_users_refused(live: Live) -> None:
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, bob = await live.api.user("bob@example.com")
    ann_socket = await live.connect(ann_token, "ann")
    bob_socket = await live.connect(bob_token, "bob")
    anonymous = await live.connect(None, "anonymous")

    assert await ann_socket.call("join", f"user:{ann['id']}") == ok(f"user:{ann['id']}")
    assert "another user" in assert_refused(await ann_socket.call("join", f"user:{bob['id']}"))
    assert_refused(await anonymous.call("join", f"user:{bob['id']}"))
    assert_refused(await anonymous.call("join", {"room": f"user:{ann['id']}"}))

    # Nothing else happened: bob's user room still holds bob's socket only.
    await emit_to_room_reaches(
        live, f"user:{bob['id']}", to=[bob_socket], not_to=[ann_socket, anonymous]
    )
    await live.realtime.socket.emit_to_user(ann["id"], "for.ann", {"n": 1})
    await ann_socket.wait_for("for.ann")
    await live.sentinel(bob_socket, anonymous)
    assert bob_socket.received("for.ann") == [] and anonymous.received("for.ann") == []


async def test_leaving_own_user_room_is_refused(live: Live) -> None:
    token, user = await live.api.user("ann@example.com")
    socket = await live.connect(token, "ann")
    room = f"user:{user['id']}"
    assert "own user room" in assert_refused(await socket.call("leave", room))
    assert_refused(await socket.call("leave", {"room": room}))
    # Still in it.
    await emit_to_room_reaches(live, room, to=[socket], not_to=[])


# -- collection rooms ------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_AUTO_JOIN_COLLECTIONS": False}])
async def test_collection_rooms_follow_read_permission(live: Live) -> None:
    await _posts(live)
    await live.api.collection("drafts", {"title": {"type": "String"}})
    token, _ = await live.api.user("ann@example.com")
    await live.api.allow("user", "posts", "read", fields=["title"])
    socket = await live.connect(token, "ann")

    assert await socket.call("join", "collection:posts") == ok("collection:posts")
    unreadable = assert_refused(await socket.call("join", "collection:drafts"))
    unknown = assert_refused(await socket.call("join", "collection:does_not_exist"))
    # Unknown and unreadable are refused alike, so collection names do not leak.
    assert unreadable.replace("drafts", "X") == unknown.replace("does_not_exist", "X")
    assert_refused(await (await live.connect(None, "anonymous")).call("join", "collection:posts"))

    post = await _create(live, "posts", title="p")
    await _create(live, "drafts", title="d")
    assert (await socket.wait_for("item.created"))["item"] == {"id": post["id"], "title": "p"}
    await live.sentinel(socket)
    assert [p["collection"] for p in socket.received("item.created")] == ["posts"]

    assert await socket.call("leave", "collection:posts") == ok("collection:posts")
    await _create(live, "posts", title="after leaving")
    await live.sentinel(socket)
    assert len(socket.received("item.created")) == 1


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_AUTO_JOIN_COLLECTIONS": False}])
async def test_without_auto_join_item_events_need_a_join(live: Live) -> None:
    await _posts(live)
    token, _ = await live.api.user("ann@example.com")
    await live.api.allow("user", "posts", "read", fields=["title"])
    user = await live.connect(token, "ann")
    admin = await live.connect(live.api.admin_token, "admin")

    before = await _create(live, "posts", title="before")
    await live.sentinel(user, admin)
    assert user.received("item.created") == [] and admin.received("item.created") == []

    assert await user.call("join", "collection:posts") == ok("collection:posts")
    assert await admin.call("join", {"room": "collection:posts"}) == ok("collection:posts")
    after = await _create(live, "posts", title="after")
    assert (await user.wait_for("item.created"))["item"] == {"id": after["id"], "title": "after"}
    assert (await admin.wait_for("item.created"))["item"]["id"] == after["id"]
    await live.api.ok(
        "PATCH", f"/items/posts/{before['id']}", headers=live.api.admin, json={"title": "b2"}
    )
    assert (await user.wait_for("item.updated"))["item"] == {"id": before["id"], "title": "b2"}
    await live.sentinel(user, admin)
    assert [p["item"]["id"] for p in user.received("item.created")] == [after["id"]]


# -- item rooms ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_AUTO_JOIN_COLLECTIONS": False}])
async def test_item_rooms_follow_item_permission(live: Live) -> None:
    await _posts(live)
    await live.api.collection("drafts", {"title": {"type": "String"}})
    ann_token, ann = await live.api.user("ann@example.com")
    _, bob = await live.api.user("bob@example.com")
    await live.api.allow(
        "user", "posts", "read", fields=["title"], conditions={"owner": {"eq": "$CURRENT_USER"}}
    )
    mine = await _create(live, "posts", title="ann's", owner=ann["id"])
    theirs = await _create(live, "posts", title="bob's", owner=bob["id"])
    draft = await _create(live, "drafts", title="d")
    socket = await live.connect(ann_token, "ann")

    room = f"item:posts:{mine['id']}"
    assert await socket.call("join", room) == ok(room)
    assert_refused(await socket.call("join", f"item:posts:{theirs['id']}"))
    missing = str(uuid.uuid4()) if isinstance(mine["id"], str) else 10**9
    assert_refused(await socket.call("join", f"item:posts:{missing}"))
    assert_refused(await socket.call("join", "item:posts:not-an-id"))
    assert_refused(await socket.call("join", "item:posts"))
    assert_refused(await socket.call("join", f"item:drafts:{draft['id']}"))
    assert_refused(await socket.call("join", f"item:nowhere:{mine['id']}"))

    # Only the joined item's events arrive (no collection room here).
    for item in (mine, theirs):
        await live.api.ok(
            "PATCH", f"/items/posts/{item['id']}", headers=live.api.admin, json={"title": "new"}
        )
    assert (await socket.wait_for("item.updated"))["item"] == {"id": mine["id"], "title": "new"}
    await live.sentinel(socket)
    assert [p["item"]["id"] for p in socket.received("item.updated")] == [mine["id"]]


# -- presence --------------------------------------------------------------------------------


async def test_presence_needs_read_permission_on_users(live: Live) -> None:
    token, _ = await live.api.user("ann@example.com")
    user = await live.connect(token, "ann")
    admin = await live.connect(live.api.admin_token, "admin")
    anonymous = await live.connect(None, "anonymous")

    assert "users" in assert_refused(await user.call("join", "presence"))
    assert_refused(await anonymous.call("join", "presence"))
    assert await admin.call("join", "presence") == ok("presence")
    await emit_to_room_reaches(live, "presence", to=[admin], not_to=[user, anonymous])

    await live.api.allow("user", "users", "read", fields=["id"])
    assert await user.call("join", "presence") == ok("presence")
    await emit_to_room_reaches(live, "presence", to=[admin, user], not_to=[anonymous])
    assert await user.call("leave", "presence") == ok("presence")
    await emit_to_room_reaches(live, "presence", to=[admin], not_to=[user])


# -- custom rooms and validators -------------------------------------------------------------


async def test_custom_room_without_validator_is_open_to_any_socket(live: Live) -> None:
    token, _ = await live.api.user("ann@example.com")
    user = await live.connect(token, "ann")
    anonymous = await live.connect(None, "anonymous")
    admin = await live.connect(live.api.admin_token, "admin")
    for client in (user, anonymous):
        assert await client.call("join", "lobby") == ok("lobby")
    await emit_to_room_reaches(live, "lobby", to=[user, anonymous], not_to=[admin])

    assert await anonymous.call("leave", "lobby") == ok("lobby")
    await emit_to_room_reaches(live, "lobby", to=[user], not_to=[anonymous, admin])
    # Leaving a room one is not in is not an error.
    assert await anonymous.call("leave", "lobby") == ok("lobby")


async def test_socket_id_rooms_cannot_be_joined_or_left(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """python-socketio keeps each socket in a room named by its id: those rooms are not requests.

    Joining another socket's room would receive what is meant for that socket
    (python-socketio refuses it with an exception, which left the client without
    an ack); leaving one's own would stop delivery to it. Ids of sockets gone,
    or connected to another process, are refused the same way.
    """
    ann = await live.connect(None, "ann")
    bob = await live.connect(None, "bob")
    gone = await live.connect(None, "gone")
    old_sid = gone.sio.get_sid()
    await gone.sio.disconnect()
    await eventually(lambda: old_sid not in live.realtime.connections.by_sid, "gone is gone")

    for sid in (bob.sio.get_sid(), ann.sio.get_sid(), old_sid):
        for request in ("join", "leave"):
            assert "socket" in assert_refused(await ann.call(request, sid))
            assert "socket" in assert_refused(await ann.call(request, {"room": sid}))
    await emit_to_room_reaches(live, str(bob.sio.get_sid()), to=[bob], not_to=[ann])
    await emit_to_room_reaches(live, str(ann.sio.get_sid()), to=[ann], not_to=[bob])
    assert old_sid not in live.realtime.stats()["rooms"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_room_validators_sync_and_async(live: Live) -> None:
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, _ = await live.api.user("bob@example.com")
    seen: list[tuple[SocketInfo, str]] = []

    def team(info: SocketInfo, room: str) -> bool:
        seen.append((info, room))
        return room == f"team:{info.role}"

    async def private(info: SocketInfo, room: str) -> bool:
        await asyncio.sleep(0)
        return info.user_id is not None and room == f"private:{info.user_id}"

    def broken(info: SocketInfo, room: str) -> bool:
        raise RuntimeError("validator exploded")

    live.realtime.socket.register_room_validator("team:", team)
    live.realtime.socket.register_room_validator("private:", private)
    live.realtime.socket.register_room_validator("broken:", broken)
    ann_socket = await live.connect(ann_token, "ann")
    bob_socket = await live.connect(bob_token, "bob")

    assert await ann_socket.call("join", "team:user") == ok("team:user")
    assert_refused(await ann_socket.call("join", "team:administrator"))
    info, room = seen[-1]
    assert room == "team:administrator"
    assert (info.sid, info.user_id, info.role) == (ann_socket.sio.get_sid(), ann["id"], "user")

    mine = f"private:{ann['id']}"
    assert await ann_socket.call("join", {"room": mine}) == ok(mine)
    assert_refused(await bob_socket.call("join", mine))
    assert_refused(await bob_socket.call("join", "broken:x"))
    # A prefix with no validator stays open; the validators' rooms hold only those let in.
    assert await bob_socket.call("join", "teams") == ok("teams")
    await emit_to_room_reaches(live, mine, to=[ann_socket], not_to=[bob_socket])
    await emit_to_room_reaches(live, "team:administrator", to=[], not_to=[ann_socket])


# -- the argument's form ---------------------------------------------------------------------


async def test_room_as_object_and_invalid_names(live: Live) -> None:
    socket = await live.connect(None, "anonymous")
    assert await socket.call("join", {"room": "by-object"}) == ok("by-object")
    assert await socket.call("leave", {"room": "by-object"}) == ok("by-object")
    longest = "r" * 200
    assert await socket.call("join", longest) == ok(longest)
    assert await socket.call("join", "x") == ok("x")

    invalid: list[Any] = [
        123,
        1.5,
        True,
        None,
        ["lobby"],
        {},
        {"room": 5},
        {"room": None},
        {"name": "lobby"},
        "",
        {"room": ""},
        "r" * 201,
        {"room": "r" * 201},
    ]
    for value in invalid:
        assert_refused(await socket.call("join", value))
        assert_refused(await socket.call("leave", value))
    assert_refused(await socket.call("join"))
    assert_refused(await socket.call("leave"))
    # The refusals joined nothing.
    rooms = live.realtime.stats()["rooms"]
    assert "r" * 201 not in rooms and "" not in rooms and "lobby" not in rooms


async def test_join_and_leave_without_ack_do_not_error(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    socket = await live.connect(None, "anonymous")
    other = await live.connect(None, "other")
    # 12 packets in a row: under the 16 that one long-polling POST may carry
    # (test_robustness.py::test_a_burst_of_ordinary_joins_is_answered).
    await socket.sio.emit("join", "quiet")
    await socket.sio.emit("join", {"room": "quiet-too"})
    for bad in (123, "", "r" * 201, {"room": None}):
        await socket.sio.emit("join", bad)
        await socket.sio.emit("leave", bad)
    await socket.sio.emit("join")
    await socket.sio.emit("leave")
    await eventually(
        lambda: {"quiet", "quiet-too"} <= set(live.realtime.stats()["rooms"]), "quiet rooms joined"
    )
    await emit_to_room_reaches(live, "quiet", to=[socket], not_to=[other])
    await socket.sio.emit("leave", "quiet")
    await eventually(lambda: "quiet" not in live.realtime.stats()["rooms"], "quiet room left")
    await emit_to_room_reaches(live, "quiet", to=[], not_to=[socket])
    # The socket still works both ways.
    await live.sentinel(socket, other)
    assert await socket.call("join", "after") == ok("after")
    assert not socket.disconnected.is_set()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# -- emit_to_room ----------------------------------------------------------------------------


async def test_emit_to_room_reaches_members_and_not_those_who_left(live: Live) -> None:
    token, _ = await live.api.user("ann@example.com")
    ann = await live.connect(token, "ann")
    anonymous = await live.connect(None, "anonymous")
    outsider = await live.connect(live.api.admin_token, "outsider")
    for client in (ann, anonymous):
        assert await client.call("join", "chat:1") == ok("chat:1")

    await live.realtime.socket.emit_to_room("chat:1", "chat.message", {"text": "hello"})
    for client in (ann, anonymous):
        assert await client.wait_for("chat.message") == {"text": "hello"}

    assert await anonymous.call("leave", "chat:1") == ok("chat:1")
    await live.realtime.socket.emit_to_room("chat:1", "chat.message", {"text": "second"})
    await ann.wait_for("chat.message", lambda p: p["text"] == "second")
    await live.sentinel(anonymous, outsider)
    assert anonymous.received("chat.message") == [{"text": "hello"}]
    assert outsider.received("chat.message") == []
    # The camelCase alias goes the same way.
    await live.realtime.socket.emitToRoom("chat:1", "chat.message", {"text": "third"})
    await ann.wait_for("chat.message", lambda p: p["text"] == "third")
    await live.sentinel(anonymous)
    assert len(anonymous.received("chat.message")) == 1


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_MAX_ROOMS": 3}])
async def test_a_socket_joins_at_most_socket_max_rooms_besides_its_own(live: Live) -> None:
    """Each room a socket is in costs server memory, so requested rooms are counted."""
    await _posts(live)
    token, user = await live.api.user("ann@example.com")
    ann = await live.connect(token, "ann")
    for n in range(3):
        assert await ann.call("join", f"chat-{n}") == ok(f"chat-{n}")
    # Rejoining, its own user room and collection rooms add nothing to the count.
    assert await ann.call("join", "chat-0") == ok("chat-0")
    assert await ann.call("join", f"user:{user['id']}") == ok(f"user:{user['id']}")
    assert "3 rooms" in assert_refused(await ann.call("join", "chat-3"))
    await emit_to_room_reaches(live, "chat-3", to=[], not_to=[ann])
    # Leaving one makes room for another.
    assert await ann.call("leave", "chat-1") == ok("chat-1")
    assert await ann.call("join", "chat-3") == ok("chat-3")
    await emit_to_room_reaches(live, "chat-3", to=[ann], not_to=[])
