"""`services.socket` (docs/extensions.md): the extension API, pinned, and working end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from livebase.realtime import service
from livebase.realtime.rooms import SocketInfo
from livebase.realtime.server import Realtime
from livebase.realtime.service import SocketService
from tests.api.conftest import make_settings
from tests.realtime.conftest import Live


def test_the_public_surface_is_pinned() -> None:
    assert service.__all__ == ["SocketInfo", "SocketService"]
    public = sorted(name for name in vars(SocketService) if not name.startswith("_"))
    assert public == [
        "broadcast",
        "emitToRoom",
        "emitToUser",
        "emit_to_room",
        "emit_to_user",
        "registerBroadcastValidator",
        "registerEventHandler",
        "registerRoomValidator",
        "register_broadcast_validator",
        "register_event_handler",
        "register_room_validator",
    ]
    assert SocketService.emitToUser is SocketService.emit_to_user
    assert SocketService.registerEventHandler is SocketService.register_event_handler


async def test_emit_to_user_reaches_every_socket_of_that_user_only(live: Live) -> None:
    token, user = await live.api.user("ann@example.com")
    other_token, _ = await live.api.user("bob@example.com")
    phone, laptop = await live.connect(token, "phone"), await live.connect(token, "laptop")
    other = await live.connect(other_token, "other")
    await live.realtime.socket.emitToUser(user["id"], "notification.new", {"message": "hi"})
    for client in (phone, laptop):
        assert await client.wait_for("notification.new") == {"message": "hi"}
    await live.sentinel(other)
    assert other.received("notification.new") == []


async def test_emit_to_room_and_broadcast(live: Live) -> None:
    inside, outside = await live.connect(None, "inside"), await live.connect(None, "outside")
    assert (await inside.call("join", "game:42"))["success"] is True
    await live.realtime.socket.emit_to_room("game:42", "game:state", {"turn": 1})
    assert await inside.wait_for("game:state") == {"turn": 1}
    await live.sentinel(outside)
    assert outside.received("game:state") == []
    await live.realtime.socket.broadcast("maintenance", {"in": 5})
    for client in (inside, outside):
        assert await client.wait_for("maintenance") == {"in": 5}


async def test_client_events_with_registered_handlers_answer_the_ack(live: Live) -> None:
    seen: list[tuple[SocketInfo, Any]] = []

    def move(info: SocketInfo, payload: Any) -> dict[str, Any]:
        seen.append((info, payload))
        return {"success": True, "echo": payload}

    async def boom(info: SocketInfo, payload: Any) -> None:
        raise RuntimeError("broken handler")

    live.realtime.socket.register_event_handler("game:move", move)
    live.realtime.socket.registerEventHandler("game:boom", boom)
    token, user = await live.api.user("gamer@example.com")
    client = await live.connect(token)
    assert await client.call("game:move", {"x": 1}) == {"success": True, "echo": {"x": 1}}
    assert seen[0][0] == SocketInfo(sid=client.sio.get_sid(), user_id=user["id"], role="user")
    failed = await client.call("game:boom", {})
    assert failed["success"] is False
    unknown = await client.call("game:nothing", {})
    assert unknown["success"] is False and "unknown event" in unknown["message"]
    await client.sio.emit("game:nothing", {})  # without an ack: ignored
    await live.sentinel(client)


@pytest.mark.parametrize("name", ["join", "leave", "connect", "disconnect", "", "*"])
def test_reserved_event_names_cannot_be_taken(name: str, tmp_path: Path) -> None:
    realtime = Realtime(make_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path))
    with pytest.raises(ValueError, match="cannot register"):
        realtime.socket.register_event_handler(name, lambda info, payload: None)
