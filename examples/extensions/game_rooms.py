"""Custom rooms and client events: a tiny multiplayer game channel.

* Rooms ``game:<id>`` may be joined by signed-in users only (a room validator).
* Clients send ``socket.emit('game:move', {game, move}, ack)``; the server
  checks the move, tells everyone in ``game:<game>`` with ``game:moved`` and
  answers the ack with ``{success: true}``.
"""


def only_signed_in(socket_info, room):
    return socket_info.user_id is not None


async def setup(services):
    socket = services.socket

    async def on_move(socket_info, payload):
        if not isinstance(payload, dict) or not isinstance(payload.get("game"), str):
            return {"success": False, "message": "send {game, move}"}
        await socket.emit_to_room(
            f"game:{payload['game']}",
            "game:moved",
            {"by": socket_info.user_id, "move": payload.get("move")},
        )
        return {"success": True}

    socket.register_room_validator("game:", only_signed_in)
    socket.register_event_handler("game:move", on_move)
