"""file.uploaded / file.deleted reach the uploader and readers of that file only."""

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


async def test_file_events_are_cut_to_the_fields_each_socket_may_read(live: Live) -> None:
    """Delivery rule 2 for files: nobody receives a field GET /files would not return them.

    The uploader's sockets get, on upload, what the upload's response gave
    them (the whole record), and later what their role may read, at least the
    id. Who wrote (``user``) follows ``uploadedBy``, as ``userId`` of item
    events follows ``userUpdated``.
    """
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, _ = await live.api.user("bob@example.com")
    await live.api.allow("user", "files", "create")
    await live.api.allow("user", "files", "read", fields=["id"])
    ann_socket = await live.connect(ann_token, "ann")
    bob_socket = await live.connect(bob_token, "bob")
    anonymous = await live.connect(None, "anonymous")
    admin = await live.connect(live.api.admin_token, "admin")
    admin_id = admin.received("connected")[0]["userId"]

    body = _multipart([("file", {"filename": "p.png", "type": "image/png"}, PNG)])
    headers = {**bearer(ann_token), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    uploaded = await live.api.ok("POST", "/files", 201, content=body, headers=headers)
    file_id = uploaded["data"]["id"]
    shown = await live.api.ok("GET", f"/files/{file_id}", headers=bearer(bob_token))
    assert shown["data"] == {"id": file_id}

    whole = {"id": file_id, "filename": "p.png", "size": len(PNG), "mimetype": "image/png"}
    expected = {
        ann_socket: (whole, ann["id"]),
        bob_socket: ({"id": file_id}, None),
        admin: (whole, ann["id"]),
    }
    for client, (file, user) in expected.items():
        payload = await client.wait_for("file.uploaded")
        assert (payload["file"], payload["user"]) == (file, user), client.name
    await live.sentinel(anonymous)
    assert anonymous.received("file.uploaded") == []

    await live.api.ok("DELETE", f"/files/{file_id}", headers=live.api.admin)
    expected = {
        ann_socket: ({"id": file_id}, None),
        bob_socket: ({"id": file_id}, None),
        admin: (whole, admin_id),
    }
    for client, (file, user) in expected.items():
        payload = await client.wait_for("file.deleted")
        assert (payload["file"], payload["user"]) == (file, user), client.name
    await live.sentinel(anonymous, ann_socket, bob_socket, admin)
    assert anonymous.received("file.deleted") == []
    for client in expected:
        assert len(client.received("file.uploaded")) == len(client.received("file.deleted")) == 1
