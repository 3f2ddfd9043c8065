"""``GET /stats/realtime/trace``: why a user's sockets did (not) get one logged event
(SPEC §15, docs/operations.md "Delivery trace").

Each outcome and each reason with real sockets against a real server: the
trace's answer must agree with what the sockets actually received.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from livebase.realtime.history import TRAIL_EVENTS
from tests.api.test_files import BOUNDARY, PNG, _multipart
from tests.helpers import bearer
from tests.realtime.conftest import TIMEOUT, Client, Live
from tests.realtime.recovering import Recovering
from tests.realtime.test_slow_consumer import LONG_HEARTBEAT, Stuck

pytestmark = pytest.mark.timeout(90)
alone = pytest.mark.parametrize("topology", ["alone"])
websocket = pytest.mark.parametrize("transport", ["websocket"])


async def _trace(live: Live, offset: Any, user: str, status: int = 200) -> Any:
    body = await live.api.ok(
        "GET", "/stats/realtime/trace", status, headers=live.api.admin,
        params={"offset": str(offset), "user": user},
    )  # fmt: skip
    return body["data"] if status == 200 else body


async def _notes(live: Live) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``notes`` readable by users, their own only, without ``secret``: (Ann's token,
    Ann, the read permission)."""
    fields = {"text": {"type": "String"}, "owner": {"type": "String"}, "secret": {"type": "String"}}
    await live.api.collection("notes", fields)
    permission = await live.api.allow(
        "user", "notes", "read", fields=["text", "owner"],
        conditions={"owner": {"eq": "$CURRENT_USER"}},
    )  # fmt: skip
    token, ann = await live.api.user("ann@example.com")
    return token, ann, permission


async def _write(live: Live, collection: str, **fields: Any) -> int:
    """Create an item as the administrator; the offset of its log entry."""
    await live.api.ok("POST", f"/items/{collection}", 201, headers=live.api.admin, json=fields)
    return await live.services.relay.log.last_position()


def _only(answer: dict[str, Any], client: Client | Recovering) -> dict[str, Any]:
    sid = client.sio.get_sid("/")
    found = [s for s in answer["sockets"] if s["sid"] == sid]
    assert len(found) == 1, answer
    return found[0]


@alone
async def test_written_with_fields_cut_and_outside_the_read_conditions(live: Live) -> None:
    token, ann, permission = await _notes(live)
    client = await live.connect(token, "ann")
    mine = await _write(live, "notes", text="mine", owner=ann["id"], secret="s")
    got = await client.wait_for("item.created", lambda p: p["item"]["text"] == "mine")
    others = await _write(live, "notes", text="bob's", owner="someone else", secret="s")
    await live.sentinel(client)
    assert [p["item"]["text"] for p in client.received("item.created")] == ["mine"]

    answer = await _trace(live, mine, ann["id"])
    assert answer["entry"]["collection"] == "notes" and answer["entry"]["action"] == "create"
    assert answer["entry"]["offset"] == str(mine) and answer["events"] == ["item.created"]
    assert answer["note"]
    socket = _only(answer, client)
    assert socket["outcome"] == "written", socket
    # What the permission does not name is cut: the secret, and the bookkeeping dates.
    assert set(socket["fieldsCut"]) == {"secret", "createdAt", "updatedAt"}
    assert set(got["item"]) == {"id", "text", "owner"}
    assert socket["permission"]["id"] == permission["id"]
    assert "collection:notes" in socket["rooms"]
    assert socket["node"] == live.realtime.node_id and socket["transport"] == live.transport
    assert socket["disconnectedAt"] is None

    socket = _only(await _trace(live, others, ann["id"]), client)
    assert socket["outcome"] == "not delivered"
    assert socket["reason"].startswith("item outside the read conditions"), socket
    assert socket["permission"]["id"] == permission["id"]
    assert socket["permission"]["conditions"] == {"owner": {"eq": "$CURRENT_USER"}}


@alone
@websocket
async def test_notifications_and_files(live: Live) -> None:
    token, ann = await live.api.user("ann@example.com")
    _, bob = await live.api.user("bob@example.com")
    await live.api.allow("user", "files", "read", conditions={"isPublic": {"eq": True}})
    client = await live.connect(token, "ann")
    sent = []
    for user in (ann, bob):
        body = {"type": "info", "title": "Hi", "message": "m", "userIds": [user["id"]]}
        await live.api.ok("POST", "/notifications/send", 201, headers=live.api.admin, json=body)
        sent.append(await live.services.relay.log.last_position())
    await client.wait_for("notification.new")
    body = _multipart([("file", {"filename": "p.png", "type": "image/png"}, PNG)])
    headers = {**live.api.admin, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    await live.api.ok("POST", "/files", 201, content=body, headers=headers)
    upload = await live.services.relay.log.last_position()
    await live.sentinel(client)
    assert len(client.received("notification.new")) == 1
    assert client.received("file.uploaded") == []  # private, and not hers

    answer = await _trace(live, sent[0], ann["id"])
    assert answer["events"] == ["notification.new"]
    assert _only(answer, client)["outcome"] == "written"
    socket = _only(await _trace(live, sent[1], ann["id"]), client)
    assert socket["outcome"] == "not delivered"
    assert socket["reason"].startswith("the notification is for another user")
    answer = await _trace(live, upload, ann["id"])
    assert answer["events"] == ["file.uploaded"] and answer["entry"]["collection"] == "files"
    socket = _only(answer, client)
    assert socket["outcome"] == "not delivered"
    assert socket["reason"].startswith("not readable: its role may not read this file")
    assert socket["permission"]["conditions"] == {"isPublic": {"eq": True}}


@alone
@websocket
async def test_a_socket_connected_after_the_commit_was_not_connected(live: Live) -> None:
    token, ann, _ = await _notes(live)
    before = await live.connect(token, "before")
    offset = await _write(live, "notes", text="early", owner=ann["id"])
    await before.wait_for("item.created")
    after = await live.connect(token, "after")
    await live.sentinel(after)
    assert after.received("item.created") == []

    answer = await _trace(live, offset, ann["id"])
    assert len(answer["sockets"]) == 2
    assert _only(answer, before)["outcome"] == "written"
    late = _only(answer, after)
    assert late["outcome"] == "not delivered"
    assert late["reason"].startswith("not connected: connected after the commit"), late


@alone
@websocket
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_EXCLUDE_COLLECTIONS": "logs"}])
async def test_collections_it_may_not_read_excluded_or_not_realtime(live: Live) -> None:
    token, ann, _ = await _notes(live)
    await live.api.collection("secrets", {"text": {"type": "String"}})
    await live.api.collection("logs", {"line": {"type": "String"}})
    await live.api.allow("user", "logs", "read", fields=["*"])
    await live.api.collection("quiet", {"line": {"type": "String"}}, realtime=False)
    await live.api.allow("user", "quiet", "read", fields=["*"])
    client = await live.connect(token, "ann")
    secret = await _write(live, "secrets", text="classified")
    logged = await _write(live, "logs", line="x")
    quiet = await _write(live, "quiet", line="x")
    await live.sentinel(client)
    assert client.received("item.created") == []

    socket = _only(await _trace(live, secret, ann["id"]), client)
    assert socket["outcome"] == "not delivered"
    assert socket["reason"].startswith("not in a room that receives it: collection not readable")
    assert "role 'user' has no read permission on 'secrets'" in socket["reason"]
    socket = _only(await _trace(live, logged, ann["id"]), client)
    assert "SOCKET_EXCLUDE_COLLECTIONS" in socket["reason"], socket
    socket = _only(await _trace(live, quiet, ann["id"]), client)
    assert "realtime: false" in socket["reason"], socket


@alone
@websocket
async def test_a_socket_that_left_the_collection_room(live: Live) -> None:
    token, ann, _ = await _notes(live)
    client = await live.connect(token, "ann")
    assert (await client.call("leave", "collection:notes"))["success"] is True
    offset = await _write(live, "notes", text="gone", owner=ann["id"])
    await live.sentinel(client)
    assert client.received("item.created") == []

    socket = _only(await _trace(live, offset, ann["id"]), client)
    assert socket["outcome"] == "not delivered"
    assert socket["reason"].startswith("not in a room that receives it: it left collection:notes")
    assert "left on request" in socket["reason"]
    assert "collection:notes" not in socket["rooms"]
    # Joined again: the next event is written, and the trace tells the two apart.
    assert (await client.call("join", "collection:notes"))["success"] is True
    again = await _write(live, "notes", text="back", owner=ann["id"])
    await client.wait_for("item.created")
    assert _only(await _trace(live, again, ann["id"]), client)["outcome"] == "written"
    assert _only(await _trace(live, offset, ann["id"]), client)["outcome"] == "not delivered"


@alone
@websocket
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_AUTO_JOIN_COLLECTIONS": False}])
async def test_auto_join_off_and_a_room_joined_only_later(live: Live) -> None:
    token, ann, _ = await _notes(live)
    client = await live.connect(token, "ann")
    missed = await _write(live, "notes", text="missed", owner=ann["id"])
    await live.sentinel(client)
    socket = _only(await _trace(live, missed, ann["id"]), client)
    assert socket["outcome"] == "not delivered"
    assert "SOCKET_AUTO_JOIN_COLLECTIONS is false" in socket["reason"], socket

    assert (await client.call("join", "collection:notes"))["success"] is True
    socket = _only(await _trace(live, missed, ann["id"]), client)
    assert "it joined collection:notes only later (joined on request)" in socket["reason"]
    assert client.received("item.created") == []


@alone
@websocket
async def test_permissions_changed_since_the_commit_are_said_not_guessed(live: Live) -> None:
    token, ann, permission = await _notes(live)
    client = await live.connect(token, "ann")
    before = await _write(live, "notes", text="before", owner=ann["id"])
    await client.wait_for("item.created")
    await live.api.ok("DELETE", f"/permissions/{permission['id']}", headers=live.api.admin)
    after = await _write(live, "notes", text="after", owner=ann["id"])
    await live.sentinel(client)
    assert len(client.received("item.created")) == 1

    answer = await _trace(live, after, ann["id"])
    socket = _only(answer, client)
    assert socket["outcome"] == "not delivered"
    assert "it left collection:notes (its role 'user' lost read on it)" in socket["reason"]
    # Today's rules would say "not readable": the trace does not pretend to know.
    answer = await _trace(live, before, ann["id"])
    assert [c["role"] for c in answer["permissionsChangedSince"]] == ["user"]
    socket = _only(answer, client)
    assert socket["outcome"] == "unknown", socket
    assert socket["reason"].startswith("the permissions of role 'user' changed since")
    assert "collection:notes" in socket["rooms"]


@alone
@websocket
@pytest.mark.parametrize("settings_overrides", [{"SOCKET_MAX_QUEUE": 20, **LONG_HEARTBEAT}])
async def test_a_slow_consumer_dropped_before_the_frame_was_written(live: Live) -> None:
    await live.api.collection("blobs", {"blob": {"type": "Text"}})
    await live.api.allow("user", "blobs", "read", fields=["*"])
    token, ann = await live.api.user("ann@example.com")
    stuck = await Stuck.connect(live, token)
    offsets = []
    try:
        while stuck.sid in live.realtime.connections.by_sid:
            assert len(offsets) < 400, "the stuck socket was never dropped"
            offsets.append(await _write(live, "blobs", blob="x" * 100_000))
    finally:
        stuck.abort()

    answer = await _trace(live, offsets[-1], ann["id"])
    (socket,) = answer["sockets"]
    assert socket["sid"] == stuck.sid
    assert socket["outcome"] == "not delivered"
    assert socket["reason"].startswith("slow consumer disconnected before it was written")
    assert "slow consumer" in socket["disconnectReason"]
    (first,) = (await _trace(live, offsets[0], ann["id"]))["sockets"]
    assert first["outcome"] == "written", first


@alone
@websocket
@pytest.mark.parametrize(
    "settings_overrides", [{"SOCKET_MAX_QUEUE_BYTES": 1 << 30, **LONG_HEARTBEAT}]
)
async def test_a_frame_still_in_the_queue_of_a_socket_that_does_not_read(live: Live) -> None:
    await live.api.collection("blobs", {"blob": {"type": "Text"}})
    await live.api.allow("user", "blobs", "read", fields=["*"])
    token, ann = await live.api.user("ann@example.com")
    stuck = await Stuck.connect(live, token)
    session = live.realtime.sio.eio.sockets[stuck.eio_sid]
    offsets = []
    try:
        while not session.queue.qsize():  # the transport is full: the next ones queue
            assert len(offsets) < 400, "nothing was ever queued"
            offsets.append(await _write(live, "blobs", blob="x" * 100_000))
        (socket,) = (await _trace(live, offsets[-1], ann["id"]))["sockets"]
        assert socket["outcome"] == "queued", socket
        (socket,) = (await _trace(live, offsets[0], ann["id"]))["sockets"]
        assert socket["outcome"] == "written", socket
    finally:
        stuck.abort()


@alone
@websocket
async def test_history_past_its_bound_is_unknown_not_guessed(live: Live) -> None:
    token, ann, _ = await _notes(live)
    client = await live.connect(token, "ann")
    offset = await _write(live, "notes", text="early", owner=ann["id"])
    await client.wait_for("item.created")
    for n in range(TRAIL_EVENTS // 2 + 1):  # each a join and a leave
        await _write(live, "notes", text=f"n{n}", owner="someone else")
        assert (await client.call("join", "lobby"))["success"] is True
        assert (await client.call("leave", "lobby"))["success"] is True
    socket = _only(await _trace(live, offset, ann["id"]), client)
    assert socket["outcome"] == "unknown", socket
    assert "forgotten" in socket["reason"]
    assert len(socket["connections"][0]["changes"]) == TRAIL_EVENTS
    # Recent enough, it is known.
    recent = await _write(live, "notes", text="late", owner=ann["id"])
    await client.wait_for("item.created", lambda p: p["item"]["text"] == "late")
    assert _only(await _trace(live, recent, ann["id"]), client)["outcome"] == "written"


@alone
@websocket
async def test_an_event_missed_while_away_and_replayed_by_a_recovery(live: Live) -> None:
    token, ann, _ = await _notes(live)
    client = Recovering(live.base_url)
    try:
        assert (await client.connect(token))["recovered"] is False
        await client.drop(stay_away=True)
        offset = await _write(live, "notes", text="missed", owner=ann["id"])
        client.gate.set()
        assert (await client.next_connected())["recovered"] is True
        await client.wait(lambda: client.texts() == ["missed"])

        socket = _only(await _trace(live, offset, ann["id"]), client)
        assert socket["outcome"] == "replayed", socket
        assert socket["replay"]["until"] >= offset
        assert [c["generation"] for c in socket["connections"]] == [0, 1]
    finally:
        await client.close()


@alone
@websocket
async def test_a_refused_recovery(live: Live) -> None:
    token, ann, _ = await _notes(live)
    client = Recovering(live.base_url)
    try:
        await client.connect(token)
        await client.drop(stay_away=True)
        offset = await _write(live, "notes", text="missed", owner=ann["id"])
        client.sio.pid = "x" * 24  # a session this server never gave
        client.gate.set()
        assert (await client.next_connected())["recovered"] is False

        socket = _only(await _trace(live, offset, ann["id"]), client)
        assert socket["outcome"] == "not delivered"
        assert socket["reason"].startswith("recovery refused: unknown or expired session"), socket
        assert client.texts() == []
    finally:
        await client.close()


@alone
@websocket
@pytest.mark.parametrize("settings_overrides", [{"CHANGE_LOG_RETENTION": 0.05}])
async def test_bad_input_is_refused_and_a_pruned_offset_is_not_found(live: Live) -> None:
    token, ann, _ = await _notes(live)
    offset = await _write(live, "notes", text="one", owner=ann["id"])
    for query in (
        {"user": ann["id"]},
        {"offset": "abc", "user": ann["id"]},
        {"offset": "-1", "user": ann["id"]},
        {"offset": "0", "user": ann["id"]},
        {"offset": "9" * 40, "user": ann["id"]},
        {"offset": str(offset)},
        {"offset": str(offset), "user": "nobody"},
        {"offset": str(offset), "user": "x" * 5000},
    ):
        response = await live.api.client.get(
            "/stats/realtime/trace", params=query, headers=live.api.admin
        )
        assert response.status_code == 400, (query, response.text)
        assert response.json()["error"]["message"]
    unknown = {"offset": str(offset), "user": "00000000-0000-4000-8000-000000000001"}
    response = await live.api.client.get(
        "/stats/realtime/trace", params=unknown, headers=live.api.admin
    )
    assert response.status_code == 404
    asked = {"offset": str(offset), "user": ann["id"]}
    response = await live.api.client.get(
        "/stats/realtime/trace", params=asked, headers=bearer(token)
    )
    assert response.status_code == 403
    response = await live.api.client.get("/stats/realtime/trace", params=asked)
    assert response.status_code == 401
    never = await _trace(live, offset + 1000, ann["id"], status=404)
    assert "not in the change log" in never["error"]["message"]

    await _write(live, "notes", text="two", owner=ann["id"])  # pruning keeps the newest
    await asyncio.sleep(0.2)  # older than the retention, and the relay's cursor saved
    assert await live.services.relay.prune() >= 1
    pruned = await _trace(live, offset, ann["id"], status=404)
    assert "not in the change log" in pruned["error"]["message"]


@pytest.mark.parametrize("topology", ["cluster"])
@websocket
async def test_a_users_sockets_on_two_nodes_are_both_reported(live: Live) -> None:
    token, ann, _ = await _notes(live)
    here = await live.connect(token, "node-b")
    there = Client("node-a")
    live.clients.append(there)
    await there.sio.connect(
        str(live.api.client.base_url), socketio_path="/realtime", transports=["websocket"],
        auth={"token": token}, wait_timeout=TIMEOUT,
    )  # fmt: skip
    await there.wait_for("connected")
    offset = await _write(live, "notes", text="both", owner=ann["id"])
    await here.wait_for("item.created")
    await there.wait_for("item.created")

    answer = await _trace(live, offset, ann["id"])
    assert answer["nodes"]["clustered"] is True and answer["nodes"]["answered"] == 2
    b, a = _only(answer, here), _only(answer, there)
    assert b["node"] == live.realtime.node_id and a["node"] == live.writer.node_id
    assert b["outcome"] == a["outcome"] == "written"
