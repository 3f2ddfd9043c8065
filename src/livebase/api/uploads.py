"""Reading a multipart/form-data upload as a stream, without holding the file in memory."""

from __future__ import annotations

from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from livebase.services.errors import BadRequest, TooLarge
from livebase.services.files import FileRow, FileService, PendingUpload

MAX_PARTS = 20
MAX_FIELD_BYTES = 16 * 1024
# POST /files is exempt from MAX_REQUEST_BODY_SIZE: its file has its own limit
# (MAX_UPLOAD_FILE_SIZE). Everything else in the body - fields, parts we
# ignore, part headers, framing, anything after the closing boundary - shares
# this much, so the body as a whole is bounded too.
MAX_FORM_BYTES = 64 * 1024


class _Collector:
    """Turns python-multipart's synchronous callbacks into a queue of part events."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, Any]] = []
        self.finished = False
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        self.queue.append(("begin", self._headers))
        self._headers = {}

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.queue.append(("data", data[start:end]))

    def _on_part_end(self) -> None:
        self.queue.append(("end", None))

    def _on_end(self) -> None:
        self.finished = True


async def receive_upload(request: Request, files: FileService, who: Any) -> FileRow:
    """Stream the ``file`` part to storage; other parts (``title``, ``isPublic``) are fields."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise BadRequest("send multipart/form-data with a 'file' part", "NOT_MULTIPART")
    collector = _Collector()
    parser = MultipartParser(boundary, callbacks=collector.callbacks())  # type: ignore[arg-type]
    session = _Session(files, who)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            parser.write(chunk)
            await session.handle(collector.queue)
            collector.queue.clear()
            if received - session.file_bytes > MAX_FORM_BYTES:
                raise TooLarge(f"the form around the file is larger than {MAX_FORM_BYTES} bytes")
        parser.finalize()
        await session.handle(collector.queue)
        if not collector.finished:
            raise BadRequest("the upload ended before the multipart body did", "INCOMPLETE_UPLOAD")
        return await session.complete()
    except ClientDisconnect:
        await session.abort()
        raise BadRequest("the client went away during the upload", "INCOMPLETE_UPLOAD") from None
    except MultipartParseError as exc:
        await session.abort()
        raise BadRequest(f"malformed multipart body: {exc}", "BAD_MULTIPART") from None
    except BaseException:
        await session.abort()
        raise


class _Session:
    def __init__(self, files: FileService, who: Any) -> None:
        self._files = files
        self._who = who
        self._pending: PendingUpload | None = None
        self._done = False
        self._current: str | None = None  # "file", a field name, or None (ignored part)
        self._fields: dict[str, bytearray] = {}
        self._parts = 0
        self.file_bytes = 0

    async def handle(self, queue: list[tuple[str, Any]]) -> None:
        for kind, value in queue:
            if kind == "begin":
                await self._begin(value)
            elif kind == "data" and self._current == "file":
                assert self._pending is not None
                await self._files.write(self._pending, value)
                self.file_bytes += len(value)
            elif kind == "data" and self._current is not None:
                field = self._fields[self._current]
                field += value
                if len(field) > MAX_FIELD_BYTES:
                    too_long = f"field {self._current!r} is longer than {MAX_FIELD_BYTES} bytes"
                    raise TooLarge(too_long)
            elif kind == "end" and self._current == "file":
                self._done = True

    async def _begin(self, headers: dict[bytes, bytes]) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise BadRequest(f"at most {MAX_PARTS} form parts")
        _, disposition = parse_options_header(headers.get(b"content-disposition"))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            if self._pending is not None:
                raise BadRequest("one file per upload")
            filename = disposition.get(b"filename", b"").decode("utf-8", "replace")
            claimed = headers.get(b"content-type", b"").decode("latin-1") or None
            self._pending = await self._files.begin(self._who, filename, claimed)
            self._current = "file"
        elif name in ("title", "isPublic"):
            self._current = name
            self._fields[name] = bytearray()
        else:
            self._current = None

    async def complete(self) -> FileRow:
        if self._pending is None or not self._done:
            raise BadRequest("the form has no 'file' part", "FILE_MISSING")
        fields = {
            name: bytes(value).decode("utf-8", "replace") for name, value in self._fields.items()
        }
        pending, self._pending = self._pending, None
        return await self._files.complete(pending, fields)

    async def abort(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await self._files.abort(pending)
