"""POST /files: what is not the file (fields, other parts, framing) has a limit of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from livebase.api.uploads import MAX_FORM_BYTES
from tests.api.test_files import BOUNDARY, _multipart, _stored, _upload
from tests.helpers import Api

CHUNK = 64 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class CountingBody:
    """A request body streamed in chunks, counting how much the server asked for."""

    def __init__(self, head: bytes, filler: int, tail: bytes) -> None:
        self.head, self.filler, self.tail = head, filler, tail
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            self.sent += len(chunk)
            yield chunk

    def _chunks(self) -> Iterator[bytes]:
        yield self.head
        for _ in range(self.filler // CHUNK):
            yield b"x" * CHUNK
        yield self.tail

    @property
    def size(self) -> int:
        return len(self.head) + self.filler // CHUNK * CHUNK + len(self.tail)


async def _post(api: Api, body: CountingBody) -> tuple[int, str]:
    headers = {**api.admin, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    response = await api.client.post("/files", content=body, headers=headers)
    return response.status_code, response.json()["error"]["code"]


async def test_a_huge_unknown_field_is_refused_without_being_read_whole(
    api: Api, tmp_path: Path
) -> None:
    # 20 MB: over MAX_REQUEST_BODY_SIZE, from which POST /files is exempt.
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="junk"\r\n\r\n'.encode()
    tail = b"\r\n" + _multipart([("file", {"filename": "a.png", "type": "image/png"}, PNG)])
    body = CountingBody(head, 20 * 1024 * 1024, tail)
    assert await _post(api, body) == (413, "PAYLOAD_TOO_LARGE")
    assert body.sent < 4 * CHUNK < body.size
    assert _stored(tmp_path) == []
    assert (await api.ok("GET", "/files", headers=api.admin))["totalCount"] == 0


async def test_bytes_after_the_closing_boundary_count_too(api: Api, tmp_path: Path) -> None:
    upload = _multipart([("file", {"filename": "a.png", "type": "image/png"}, PNG)])
    body = CountingBody(upload, 20 * 1024 * 1024, b"")
    assert await _post(api, body) == (413, "PAYLOAD_TOO_LARGE")
    assert body.sent < 4 * CHUNK < body.size
    assert _stored(tmp_path) == []


async def test_many_small_fields_share_one_limit(api: Api, tmp_path: Path) -> None:
    fields = {f"extra{n}": "y" * 8000 for n in range(MAX_FORM_BYTES // 8000 + 1)}
    response = await _upload(api, **fields)
    assert response.status_code == 413, response.text
    assert _stored(tmp_path) == []


async def test_a_known_field_past_its_own_limit_is_too_large(api: Api, tmp_path: Path) -> None:
    response = await _upload(api, title="t" * 20_000)
    assert response.status_code == 413, response.text
    assert _stored(tmp_path) == []


async def test_a_file_bigger_than_the_form_limit_is_still_welcome(api: Api) -> None:
    content = PNG + b"\x00" * (4 * MAX_FORM_BYTES)
    response = await _upload(api, content=content, title="big", isPublic="true")
    assert response.status_code == 201, response.text
    assert response.json()["data"]["size"] == len(content)
