"""Recovery: a client that drops its connection gets its session back and every
event it missed, in order, once (docs/realtime.md, "Reconnecting without losing events").

Clients are :class:`livebase.client.LivebaseClient`, which reconnects by
itself as socket.io-client does; a "drop" closes its WebSocket without a
goodbye, as a lost network would. The official JavaScript client's tests
are in ``tests/js/recovery.test.mjs``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from livebase.realtime.recovery import Recovery
from tests.realtime.conftest import TIMEOUT, Live
from tests.realtime.recovering import Recovering

pytestmark = pytest.mark.parametrize("transport", ["websocket"])


@pytest.fixture
async def clients() -> Any:
    made: list[Recovering] = []

    def make(live: Live, url: str | None = None) -> Recovering:
        client = Recovering(url or live.base_url)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def _notes(live: Live) -> None:
    await live.api.collection("notes", {"text": {"type": "String"}, "owner": {"type": "String"}})


async def _write(live: Live, text: str, **fields: Any) -> None:
    await live.api.ok(
        "POST", "/items/notes", 201, headers=live.api.admin, json={"text": text, **fields}
    )


async def test_a_dropped_client_gets_what_it_missed_in_order_with_the_same_sid(
    live: Live, clients: Any
) -> None:
    await _notes(live)
    client = clients(live)
    hello = await client.connect(live.api.admin_token)
    assert hello["recovered"] is False
    sid, pid = client.sio.get_sid("/"), client.sio.pid
    assert isinstance(pid, str) and len(pid) >= 22  # ≥ 128 random bits
    await _write(live, "before")
    await client.wait(lambda: client.texts() == ["before"])

    await client.drop(stay_away=True)
    for n in range(5):
        await _write(live, f"missed {n}")
    client.gate.set()
    again = await client.next_connected()

    assert again == {
        "userId": again["userId"],
        "role": "administrator",
        "recovered": True,
        "missed": 5,
    }
    assert client.sio.recovered and client.sio.get_sid("/") == sid and client.sio.pid == pid
    await client.wait(lambda: len(client.texts()) == 6)
    assert client.texts() == ["before", *(f"missed {n}" for n in range(5))]
    assert live.realtime.stats()["recovery"] == {"recovered": 1, "refused": 0, "replayed": 5}
    # Live events follow the replay, once each.
    await _write(live, "after")
    await client.wait(lambda: client.texts()[-1:] == ["after"])
    await live.sentinel()
    assert client.texts().count("after") == 1


async def test_recovery_with_no_event_received_and_twice_in_a_row(live: Live, clients: Any) -> None:
    await _notes(live)
    client = clients(live)
    await client.connect(live.api.admin_token)
    sid = client.sio.get_sid("/")
    await client.drop()  # it had received nothing but ``connected``
    first = await client.next_connected()
    assert first["recovered"] is True and first["missed"] == 0
    await client.drop()  # again, with no event between
    second = await client.next_connected()
    assert second["recovered"] is True and second["missed"] == 0
    assert client.sio.get_sid("/") == sid
    await _write(live, "still live")
    await client.wait(lambda: client.texts() == ["still live"])


async def test_custom_rooms_come_back(live: Live, clients: Any) -> None:
    client = clients(live)
    await client.connect(live.api.admin_token)
    joined = await client.sio.call("join", "team:red", timeout=TIMEOUT)
    assert joined == {"success": True, "room": "team:red"}
    await client.drop()
    assert (await client.next_connected())["recovered"] is True
    await live.writer.socket.emit_to_room("team:red", "news", {"n": 1})
    await client.wait(lambda: ("news", {"n": 1}) in client.events)


async def test_a_collection_room_it_left_stays_left(live: Live, clients: Any) -> None:
    """Joining collection rooms automatically brings back none the socket left: not
    its recovery, not a change of permissions."""
    await _notes(live)
    token, _ = await live.api.user("leaver@example.com")
    rule = await live.api.allow("user", "notes", "read", fields=["*"])
    client = clients(live)
    await client.connect(token)
    left = await client.sio.call("leave", "collection:notes", timeout=TIMEOUT)
    assert left == {"success": True, "room": "collection:notes"}
    await client.drop(stay_away=True)
    await _write(live, "while away")
    client.gate.set()
    again = await client.next_connected()
    assert again["recovered"] is True and again["missed"] == 0
    await live.api.ok(  # a refresh of the role's sockets
        "PATCH", f"/permissions/{rule['id']}", headers=live.api.admin, json={"fields": ["text"]}
    )
    await _write(live, "after")
    await live.writer.socket.emit_to_room("user:" + again["userId"], "marker", {})
    await client.wait(lambda: any(name == "marker" for name, _ in client.events))
    assert client.texts() == []
    joined = await client.sio.call("join", "collection:notes", timeout=TIMEOUT)
    assert joined["success"] is True
    await _write(live, "joined again")
    await client.wait(lambda: client.texts() == ["joined again"])


async def test_what_it_may_no_longer_read_is_not_replayed(live: Live, clients: Any) -> None:
    await _notes(live)
    token, _user = await live.api.user("ann@example.com")
    rule = await live.api.allow("user", "notes", "read", fields=["*"])
    client = clients(live)
    await client.connect(token)
    await client.drop(stay_away=True)
    await _write(live, "while away")
    await live.api.ok("DELETE", f"/permissions/{rule['id']}", headers=live.api.admin)
    client.gate.set()
    again = await client.next_connected()
    assert again["recovered"] is True and again["missed"] == 0
    await live.sentinel()
    assert client.texts() == []


async def test_a_session_is_only_its_users(live: Live, clients: Any) -> None:
    token, _ = await live.api.user("ann@example.com")
    ann = clients(live)
    await ann.connect(token)
    thief = clients(live)
    hello = await thief.connect(live.api.admin_token, pid=ann.sio.pid, offset=ann.sio.offset)
    assert hello["recovered"] is False
    assert thief.sio.get_sid("/") != ann.sio.get_sid("/") and thief.sio.pid != ann.sio.pid
    # Ann's own session is still hers to recover.
    await ann.drop()
    assert (await ann.next_connected())["recovered"] is True


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_RECOVERY_WINDOW": 0.5}])
async def test_past_the_window_it_is_a_new_session(live: Live, clients: Any) -> None:
    await _notes(live)
    client = clients(live)
    await client.connect(live.api.admin_token)
    pid = client.sio.pid
    client.sio.reconnection = False
    await client.drop()
    await asyncio.sleep(1.0)
    late = clients(live)
    hello = await late.connect(live.api.admin_token, pid=pid, offset=client.sio.offset)
    assert hello["recovered"] is False and late.sio.pid != pid


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_RECOVERY_MAX_EVENTS": 3}])
async def test_more_missed_events_than_the_bound_is_a_new_session(live: Live, clients: Any) -> None:
    await _notes(live)
    client = clients(live)
    await client.connect(live.api.admin_token)
    client.sio.reconnection = False
    await client.drop()
    for n in range(4):
        await _write(live, f"missed {n}")
    late = clients(live)
    hello = await late.connect(live.api.admin_token, pid=client.sio.pid, offset=client.sio.offset)
    assert hello["recovered"] is False
    await live.sentinel()
    assert late.texts() == []  # nothing replayed partially


async def test_a_reconnect_before_the_server_noticed_takes_over_quietly(
    live: Live, clients: Any
) -> None:
    token, _user = await live.api.user("ann@example.com")
    await live.api.allow("user", "users", "read", fields=["id"])
    old = clients(live)
    await old.connect(token)
    old.sio.reconnection = False  # it stands for a connection that is dead already
    watcher = await live.connect(live.api.admin_token, name="watcher")
    assert (await watcher.call("join", "presence"))["success"] is True
    new = clients(live)
    # Another connection presents the session while the first one is still up.
    old_sid = old.sio.get_sid("/")
    hello = await new.connect(token, pid=old.sio.pid, offset=old.sio.offset)
    assert hello["recovered"] is True and new.sio.get_sid("/") == old_sid
    await old.wait(lambda: not old.sio.connected or old.sio.eio.state != "connected")
    await live.sentinel(watcher)
    assert watcher.received("user.disconnected") == []
    assert watcher.received("user.connected") == []


@pytest.mark.parametrize(
    "auth",
    [
        {"pid": 12, "offset": "1"},
        {"pid": "x" * 24, "offset": "1"},
        {"pid": "x" * 10_000, "offset": "1"},
        {"pid": None, "offset": None},
        {"pid": "x" * 24, "offset": "-1"},
        {"pid": "x" * 24, "offset": "1e9"},
        {"pid": "x" * 24, "offset": ["1"]},
        {"pid": "x" * 24, "offset": "9" * 400},
    ],
)
async def test_a_bad_pid_or_offset_is_a_new_session(
    live: Live, clients: Any, auth: dict[str, Any]
) -> None:
    client = clients(live)
    hello = await client.connect(live.api.admin_token, **auth)
    assert hello["recovered"] is False
    assert client.sio.connected and isinstance(client.sio.pid, str)


async def test_opting_out_gives_no_pid_and_no_offsets(live: Live) -> None:
    client = await live.connect(
        live.api.admin_token, auth={"token": live.api.admin_token, "recovery": False}
    )
    assert client.received("connected") == [
        {"userId": client.received("connected")[0]["userId"], "role": "administrator"}
    ]
    seen: list[tuple[Any, ...]] = []

    async def on_news(*args: Any) -> None:
        seen.append(args)

    client.sio.on("news", on_news)
    await live.writer.socket.broadcast("news", {"n": 1})
    await live.sentinel(client)
    assert seen == [({"n": 1},)]


async def test_a_revoked_token_cannot_recover(live: Live, clients: Any) -> None:
    token, _ = await live.api.user("ann@example.com")
    client = clients(live)
    await client.connect(token)
    client.sio.reconnection = False
    await client.drop()
    await live.api.ok("POST", "/auth/logout", headers={"Authorization": f"Bearer {token}"})
    late = clients(live)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await late.connect(token, pid=client.sio.pid, offset=client.sio.offset)
    assert late.events == [("connect_error", {"message": "session revoked (logged out)"})]


@pytest.mark.parametrize("settings_overrides", [{"SOCKET_RECOVERY_WINDOW": 0}])
async def test_a_window_of_zero_turns_recovery_off(live: Live, clients: Any) -> None:
    client = clients(live)
    hello = await client.connect(live.api.admin_token)
    assert "recovered" not in hello and client.sio.pid is None
    seen: list[tuple[Any, ...]] = []

    async def on_news(*args: Any) -> None:
        seen.append(args)

    plain = await live.connect(live.api.admin_token, name="plain")
    plain.sio.on("news", on_news)
    await live.writer.socket.broadcast("news", {"n": 1})
    await live.sentinel(plain)
    assert seen == [({"n": 1},)]  # no offset argument
    await client.drop()
    again = await client.next_connected()
    assert "recovered" not in again and not client.sio.recovered


def _recovery_of(live: Live) -> Recovery:
    recovery = live.realtime._lifecycle._recovery
    assert recovery is not None
    return recovery


async def test_past_what_all_recoveries_may_hold_it_is_a_new_session(
    live: Live, clients: Any
) -> None:
    # (Many sockets recovering at once with many missed events: stood in for here.)
    recovery = _recovery_of(live)
    await _notes(live)
    client = clients(live)
    await client.connect(live.api.admin_token)
    await client.drop(stay_away=True)
    await _write(live, "missed")
    recovery.holding = 20 * 10_000
    try:
        client.gate.set()
        hello = await client.next_connected()
    finally:
        recovery.holding = 0
    assert hello["recovered"] is False
    await live.sentinel()
    assert client.texts() == []
    assert live.realtime.stats()["recovery"]["refused"] == 1


async def test_the_events_a_recovery_held_are_let_go(live: Live, clients: Any) -> None:
    recovery = _recovery_of(live)
    await _notes(live)
    client = clients(live)
    await client.connect(live.api.admin_token)
    await client.drop(stay_away=True)
    for n in range(3):
        await _write(live, f"missed {n}")
    client.gate.set()
    assert (await client.next_connected())["missed"] == 3
    await client.wait(lambda: len(client.texts()) == 3)
    assert recovery.holding == 0
