"""Files: streamed uploads with a size limit, sniffed types, assets with Range."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Api, bearer

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
BOUNDARY = "livebase-test-boundary"


def _multipart(parts: list[tuple[str, dict[str, str], bytes]], close: bool = True) -> bytes:
    body = b""
    for name, extra, content in parts:
        disposition = f'form-data; name="{name}"'
        if "filename" in extra:
            disposition += f'; filename="{extra["filename"]}"'
        headers = f"Content-Disposition: {disposition}\r\n"
        if "type" in extra:
            headers += f"Content-Type: {extra['type']}\r\n"
        body += f"--{BOUNDARY}\r\n{headers}\r\n".encode() + content + b"\r\n"
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


async def _upload(api: Api, content: bytes = PNG, headers: Any = None, **extra: str) -> Any:
    filename = extra.pop("filename", "photo.png")
    claimed = extra.pop("type", "text/plain")
    fields = [(k, {}, v.encode()) for k, v in extra.items()]
    body = _multipart([("file", {"filename": filename, "type": claimed}, content), *fields])
    return await api.client.post(
        "/files",
        content=body,
        headers={
            **(headers or api.admin),
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )


def _stored(tmp_path: Path) -> list[str]:
    folder = tmp_path / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_upload_read_range_patch_delete(api: Api, tmp_path: Path) -> None:
    response = await _upload(api, title="Holiday")
    assert response.status_code == 201, response.text
    row = response.json()["data"]
    assert row["mimetype"] == "image/png"  # the bytes win over the claimed text/plain
    assert (row["filename"], row["size"], row["title"], row["isPublic"]) == (
        "photo.png",
        len(PNG),
        "Holiday",
        False,
    )
    assert row["uploadedBy"] is not None and "storageKey" not in row
    assert (await api.ok("GET", f"/files/{row['id']}", headers=api.admin))["data"] == row

    asset = await api.client.get(f"/assets/{row['id']}", headers=api.admin)
    assert asset.status_code == 200 and asset.content == PNG
    assert asset.headers["content-type"] == "image/png"
    assert asset.headers["content-disposition"].startswith('inline; filename="photo.png"')
    assert asset.headers["accept-ranges"] == "bytes"
    first = await api.client.get(
        f"/assets/{row['id']}", headers={**api.admin, "Range": "bytes=0-7"}
    )
    assert first.status_code == 206 and first.content == PNG[:8]
    assert first.headers["content-range"] == f"bytes 0-7/{len(PNG)}"
    last = await api.client.get(f"/assets/{row['id']}", headers={**api.admin, "Range": "bytes=-3"})
    assert last.status_code == 206 and last.content == PNG[-3:]
    beyond = await api.client.get(
        f"/assets/{row['id']}", headers={**api.admin, "Range": "bytes=99999-"}
    )
    assert beyond.status_code == 416

    patched = await api.ok(
        "PATCH", f"/files/{row['id']}", headers=api.admin, json={"title": "New", "isPublic": True}
    )
    assert patched["data"]["title"] == "New" and patched["data"]["isPublic"] is True
    listed = await api.ok("GET", "/files", headers=api.admin)
    assert listed["totalCount"] == 1
    assert len(_stored(tmp_path)) == 1
    await api.ok("DELETE", f"/files/{row['id']}", headers=api.admin)
    assert (await api.client.get(f"/files/{row['id']}", headers=api.admin)).status_code == 404
    assert _stored(tmp_path) == []


async def test_public_files_need_no_token_private_ones_do(api: Api) -> None:
    public = (await _upload(api, isPublic="true")).json()["data"]
    private = (await _upload(api)).json()["data"]
    assert (await api.client.get(f"/assets/{public['id']}")).status_code == 200
    assert (await api.client.get(f"/assets/{private['id']}")).status_code == 404


@pytest.mark.parametrize("settings_overrides", [{"MAX_UPLOAD_FILE_SIZE": 0.001}])
async def test_the_size_limit_is_enforced_while_streaming(api: Api, tmp_path: Path) -> None:
    response = await _upload(api, content=b"x" * 5000)
    assert response.status_code == 413
    assert _stored(tmp_path) == []
    assert (await api.ok("GET", "/files", headers=api.admin))["totalCount"] == 0
    assert (await _upload(api, content=b"x" * 500)).status_code == 201


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\\\windows\\\\system.ini", "system.ini"),
        ("evil\u0000name.txt", "evil_name.txt"),
        ("café.txt", "café.txt"),
        ("", "file"),
    ],
)
async def test_file_names_are_made_safe(api: Api, filename: str, expected: str) -> None:
    response = await _upload(api, content=b"hello", filename=filename)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["filename"] == expected


async def test_long_names_are_cut_keeping_their_extension(api: Api, tmp_path: Path) -> None:
    row = (await _upload(api, content=b"hello", filename="a" * 600 + ".txt")).json()["data"]
    assert len(row["filename"]) == 255 and row["filename"].endswith(".txt")
    # 10 000 characters overflow the multipart header limit: refused, nothing kept.
    huge = await _upload(api, content=b"hello", filename="a" * 10_000 + ".txt")
    assert huge.status_code == 400 and "multipart" in huge.json()["error"]["message"]
    assert len(_stored(tmp_path)) == 1


@pytest.mark.parametrize(
    ("content", "claimed", "expected"),
    [
        (b"just text", "image/png", "text/plain"),
        (b"<html><script>alert(1)</script>", "text/html", "text/plain"),
        (b'{"a": 1}', "application/json", "application/json"),
        (b"\x00\x01\x02binary", "image/png", "application/octet-stream"),
        (b"%PDF-1.7 ...", "application/octet-stream", "application/pdf"),
    ],
)
async def test_a_lying_content_type_is_not_believed(
    api: Api, content: bytes, claimed: str, expected: str
) -> None:
    row = (await _upload(api, content=content, type=claimed)).json()["data"]
    assert row["mimetype"] == expected


async def test_bad_uploads_are_4xx_and_leave_nothing(api: Api, tmp_path: Path) -> None:
    multipart = {**api.admin, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    cases = [
        (_multipart([("title", {}, b"no file")]), multipart, 400),
        (_multipart([("file", {"filename": "empty.txt"}, b"")]), multipart, 400),
        (_multipart([("file", {"filename": "cut.bin"}, b"x" * 1000)], close=False), multipart, 400),
        (b"not multipart", {**api.admin, "Content-Type": "application/json"}, 400),
        (
            _multipart([("file", {"filename": "a"}, b"1"), ("file", {"filename": "b"}, b"2")]),
            multipart,
            400,
        ),
        (
            _multipart([("file", {"filename": "a"}, b"1"), ("isPublic", {}, b"maybe")]),
            multipart,
            400,
        ),
    ]
    for body, headers, status in cases:
        response = await api.client.post("/files", content=body, headers=headers)
        assert response.status_code == status, (body[:60], response.text)
        assert set(response.json()["error"]) == {"message", "code"}
    assert _stored(tmp_path) == []
    assert (await api.ok("GET", "/files", headers=api.admin))["totalCount"] == 0


async def test_file_permissions(api: Api) -> None:
    ann_token, _ = await api.user("ann@example.com")
    bob_token, _ = await api.user("bob@example.com")
    assert (await _upload(api, headers=bearer(ann_token))).status_code == 403
    own = {"uploadedBy": {"eq": "$CURRENT_USER"}}
    await api.allow("user", "files", "create")
    await api.allow("user", "files", "read", conditions=own)
    await api.allow("user", "files", "delete", conditions=own)
    anns = (await _upload(api, headers=bearer(ann_token))).json()["data"]
    assert (await api.ok("GET", "/files", headers=bearer(bob_token)))["totalCount"] == 0
    for method, url in (
        ("GET", f"/files/{anns['id']}"),
        ("GET", f"/assets/{anns['id']}"),
        ("DELETE", f"/files/{anns['id']}"),
    ):
        assert (await api.client.request(method, url, headers=bearer(bob_token))).status_code == 404
    assert (
        await api.client.patch(
            f"/files/{anns['id']}", headers=bearer(ann_token), json={"title": "x"}
        )
    ).status_code == 403
    assert (await api.client.get(f"/assets/{anns['id']}", headers=bearer(ann_token))).content == PNG
    await api.ok("DELETE", f"/files/{anns['id']}", headers=bearer(ann_token))


@pytest.mark.parametrize(
    "params",
    [
        {"filter": json.dumps({"filename": {"startsWith": "s"}})},
        {"filter": json.dumps({"OR": [{"id": {"isNull": True}}, {"size": {"gt": 10}}]})},
        {"filter": json.dumps({"uploadedBy": {"isNotNull": True}})},
        {"sort": "filename"},
        {"sort": json.dumps({"size": "desc"})},
        {"sort": "-uploadedBy"},
        {"fields": "id,filename"},
    ],
)
async def test_a_field_the_caller_may_not_read_is_403_in_a_file_query(
    api: Api, params: dict[str, str]
) -> None:
    await _upload(api, filename="secret-plan.png", isPublic="true")
    token, _ = await api.user("id-only@example.com")
    await api.allow("user", "files", "read", fields=["id"])

    listed = await api.ok("GET", "/files", headers=bearer(token))
    assert [set(row) for row in listed["data"]] == [{"id"}]
    refused = await api.client.get("/files", headers=bearer(token), params=params)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    assert "secret" not in refused.text


async def test_file_lists_take_the_items_query_parameters(api: Api) -> None:
    await _upload(api, filename="b.png", title="Beta")
    await _upload(api, filename="a.png", title="Alpha")
    await _upload(api, filename="c.png", title="Gamma")
    by_name = await api.ok("GET", "/files", headers=api.admin, params={"sort": "filename"})
    assert [row["filename"] for row in by_name["data"]] == ["a.png", "b.png", "c.png"]
    found = await api.ok(
        "GET", "/files", headers=api.admin, params={"search": "gam", "fields": "title"}
    )
    assert found["data"] == [{"id": found["data"][0]["id"], "title": "Gamma"}]
    params = {"sort": "-filename", "limit": "1", "offset": "1"}
    paged = await api.ok("GET", "/files", headers=api.admin, params=params)
    assert [row["filename"] for row in paged["data"]] == ["b.png"] and paged["totalCount"] == 3
