"""The examples in examples/extensions, loaded by a real server, with real socket clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.realtime.conftest import Live

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "extensions"
pytestmark = pytest.mark.parametrize("settings_overrides", [{"EXTENSIONS_PATH": EXAMPLES}])


async def test_the_guides_notification_hook(live: Live) -> None:
    fields = {
        "user_id": {"type": "UUID"},
        "message": {"type": "String"},
        "type": {"type": "String"},
    }
    await live.api.collection("alerts", fields)
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, _ = await live.api.user("bob@example.com")
    ann_socket, bob_socket = (
        await live.connect(ann_token, "ann"),
        await live.connect(bob_token, "bob"),
    )
    body = {"user_id": ann["id"], "message": "Your order shipped", "type": "info"}
    created = await live.api.ok("POST", "/items/alerts", 201, headers=live.api.admin, json=body)
    payload = await ann_socket.wait_for("notification.new")
    assert payload == {"id": created["data"]["id"], "message": "Your order shipped", "type": "info"}
    await live.sentinel(bob_socket)
    assert bob_socket.received("notification.new") == []


async def test_game_rooms_validator_and_client_event(live: Live) -> None:
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, _ = await live.api.user("bob@example.com")
    ann_socket, bob_socket = (
        await live.connect(ann_token, "ann"),
        await live.connect(bob_token, "bob"),
    )
    outsider, anonymous = (
        await live.connect(bob_token, "outsider"),
        await live.connect(None, "anon"),
    )
    refused = await anonymous.call("join", "game:1")
    assert refused["success"] is False
    for client in (ann_socket, bob_socket):
        assert await client.call("join", "game:1") == {"success": True, "room": "game:1"}
    assert await ann_socket.call("game:move", {"game": "1", "move": "e4"}) == {"success": True}
    for client in (ann_socket, bob_socket):
        assert await client.wait_for("game:moved") == {"by": ann["id"], "move": "e4"}
    bad = await ann_socket.call("game:move", "e4")
    assert bad["success"] is False
    await live.sentinel(outsider, anonymous)
    assert outsider.received("game:moved") == [] and anonymous.received("game:moved") == []


async def test_the_custom_endpoint(live: Live) -> None:
    hello = await live.api.ok("GET", "/hello")
    assert hello == {"data": {"message": "hello from an extension"}}
