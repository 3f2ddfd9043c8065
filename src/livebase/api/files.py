"""``/files`` (metadata) and ``/assets/{id}`` (the bytes, with Range support)."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response, StreamingResponse

from livebase.api.deps import ServicesDep, Who
from livebase.api.responses import ORJSONResponse
from livebase.api.uploads import receive_upload
from livebase.services.query import parse_query
from livebase.services.sniffing import servable

router = APIRouter(tags=["files"])
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_INLINE = ("image/", "audio/", "video/", "text/plain", "application/pdf")


@router.post(
    "/files",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "title": {"type": "string"},
                            "isPublic": {"type": "boolean"},
                        },
                    }
                }
            },
        }
    },
)
async def upload(request: Request, who: Who, services: ServicesDep) -> ORJSONResponse:
    row = await receive_upload(request, services.files, who)
    return ORJSONResponse({"data": row}, status_code=201)


@router.get("/files")
async def list_files(
    request: Request,
    who: Who,
    services: ServicesDep,
    filter: Annotated[str | None, Query()] = None,
    limit: Annotated[str | None, Query()] = None,
    page: Annotated[str | None, Query()] = None,
) -> ORJSONResponse:
    rows, total = await services.files.find(who, parse_query(request.query_params))
    return ORJSONResponse({"data": rows, "totalCount": total})


@router.get("/files/{file_id}")
async def get_file(file_id: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.files.get(who, file_id)})


@router.patch("/files/{file_id}")
async def update_file(
    file_id: str, body: Annotated[dict[str, Any], Body()], who: Who, services: ServicesDep
) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.files.update(who, file_id, body)})


@router.delete("/files/{file_id}")
async def delete_file(file_id: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": {"id": await services.files.delete(who, file_id)}})


def _disposition(mimetype: str, filename: str) -> str:
    kind = "inline" if mimetype.startswith(_INLINE) else "attachment"
    fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) of one satisfiable range, None for the whole file.

    Raises ``ValueError`` when the range cannot be satisfied (416).
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges or another unit: answer the whole file, as RFC 9110 allows
    first, last = match.groups()
    if not first and not last:
        raise ValueError("empty range")
    if not first:
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ValueError("range outside the file")
    return start, end


@router.get("/assets/{file_id}")
async def asset(file_id: str, request: Request, who: Who, services: ServicesDep) -> Response:
    row = await services.files.asset(who, file_id)
    size = int(row["size"])
    mimetype = servable(row["mimetype"])
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(mimetype, row["filename"]),
        "X-Content-Type-Options": "nosniff",
        # Uploaded bytes never run as active content on this origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    try:
        wanted = _byte_range(request.headers.get("range"), size)
    except ValueError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = wanted if wanted else (0, size - 1)
    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if wanted:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        services.files.read_bytes(row, start, end),
        status_code=status,
        media_type=mimetype,
        headers=headers,
    )
