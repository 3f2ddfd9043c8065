"""SPEC §6.3: file.uploaded / file.deleted reach the uploader and readers of that file only."""

from __future__ import annotations

from tests.api.test_files import BOUNDARY, PNG, _multipart
from tests.helpers import bearer
from tests.realtime.conftest import Live


async def test_file_events_reach_the_uploader_and_permitted_readers(live: Live) -> None:
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, _ = await live.api.user("bob@example.com")
    await live.api.allow("user", "files", "create")
    await live.api.allow("user", "files", "read", conditions={"isPublic": {"eq": True}})
    ann_socket = await live.connect(ann_token, "ann")
    bob_socket = await live.connect(bob_token, "bob")
    admin = await live.connect(live.api.admin_token, "admin")

    body = _multipart([("file", {"filename": "p.png", "type": "image/png"}, PNG)])
    headers = {**bearer(ann_token), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    uploaded = await live.api.ok("POST", "/files", 201, content=body, headers=headers)
    file_id = uploaded["data"]["id"]

    expected = {"id": file_id, "filename": "p.png", "size": len(PNG), "mimetype": "image/png"}
    for client in (ann_socket, admin):
        payload = await client.wait_for("file.uploaded")
        assert payload["file"] == expected
        assert payload["action"] == "uploaded" and payload["user"] == ann["id"]
        assert payload["timestamp"].endswith("Z")
    await live.sentinel(bob_socket)  # the file is private: bob may not read it
    assert bob_socket.received("file.uploaded") == []

    await live.api.ok("DELETE", f"/files/{file_id}", headers=live.api.admin)
    deleted = await ann_socket.wait_for("file.deleted")
    assert deleted["file"]["id"] == file_id and deleted["action"] == "deleted"
    await live.sentinel(bob_socket)
    assert bob_socket.received("file.deleted") == []
