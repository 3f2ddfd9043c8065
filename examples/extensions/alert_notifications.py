"""The BAASIX guide's notification hook, in Python.

When an item is created in the ``alerts`` collection (fields ``user_id``,
``message``, ``type``), the user it is for gets a ``notification.new`` event
on all their sockets at once. Create the collection first:

    POST /schemas {"collectionName": "alerts", "schema": {"fields": {
        "user_id": {"type": "UUID"}, "message": {"type": "String"},
        "type": {"type": "String"}}}}
"""


async def notify(data, context):
    await context.services.socket.emit_to_user(
        data["user_id"],
        "notification.new",
        {"id": data["id"], "message": data["message"], "type": data["type"]},
    )
    return data


hook = {
    "id": "notification-hook",
    "events": [
        {"collection": "alerts", "action": "items.create.after", "handler": notify},
    ],
}
