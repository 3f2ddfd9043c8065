"""Loaded into every node of the cluster tests: emits through that node's socket service.

``POST /probe/emit`` makes the node it is sent to emit, as a hook or an
endpoint of an extension would; an ``items.create.after`` hook on
``messages`` tells the addressee's sockets.
"""

from fastapi import APIRouter

router = APIRouter()
_services = None


def setup(services):
    global _services
    _services = services
    services.socket.register_room_validator("team:", lambda info, room: info.user_id is not None)


@router.post("/probe/emit")
async def emit(body: dict):
    socket = _services.socket
    if body["to"] == "user":
        await socket.emit_to_user(body["id"], body["event"], body["payload"])
    elif body["to"] == "room":
        await socket.emit_to_room(body["id"], body["event"], body["payload"])
    else:
        await socket.broadcast(body["event"], body["payload"])
    return {"data": {"sent": True}}


async def tell_addressee(data, context):
    payload = {"id": data["id"], "text": data["text"]}
    await context.services.socket.emit_to_user(data["to_user"], "message.for.you", payload)
    return data


hook = {
    "id": "cluster-probe",
    "events": [
        {"collection": "messages", "action": "items.create.after", "handler": tell_addressee},
    ],
}
