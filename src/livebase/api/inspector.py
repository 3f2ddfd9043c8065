"""The inspector page at ``/admin/``, while ``ADMIN_UI_ENABLED`` (docs/operations.md).

Static files from ``api/static/inspector`` and nothing else: the page signs in
through ``POST /auth/login`` and reads everything through the administrators'
API (``/stats/realtime/...``) and the Socket.IO room ``admin:inspector``, so
serving it gives nobody anything: a visitor who is not an administrator gets
the page and no data. Its Socket.IO client is the npm package's
``dist/socket.io.min.js`` the examples use, copied into ``vendor/`` by
``make demo-assets``; never from a CDN.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, RedirectResponse, Response

from livebase.api.deps import ServicesDep
from livebase.api.page_files import PAGE_FILES as _FILES
from livebase.api.page_files import VENDORED_CLIENT

PAGE_DIR = Path(__file__).resolve().parent / "static" / "inspector"
# The page holds an administrator's token in memory: never framed by another site,
# and no script but its own.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = PAGE_DIR / name
    if not path.is_file():
        if name == VENDORED_CLIENT:
            raise HTTPException(
                404, "the Socket.IO client is not vendored yet: run make demo-assets"
            )
        raise HTTPException(404, f"no such file in the inspector: {name}")
    return FileResponse(path, media_type=_FILES[name], headers=_HEADERS)


@router.get("/admin")
async def without_slash() -> RedirectResponse:
    return RedirectResponse("/admin/", status_code=308)


@router.get("/admin/config.js")
async def config(services: ServicesDep) -> Response:
    """Where the page finds the Socket.IO server, which settings may have moved."""
    settings = services.settings
    values = {"socketEnabled": settings.SOCKET_ENABLED, "socketPath": settings.SOCKET_PATH}
    body = b"window.livebaseConfig = " + orjson.dumps(values) + b";\n"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=_HEADERS)


# Literal paths, one per file: the name of what is served never comes from the request.
def _route(path: str, name: str) -> None:
    @router.get(path)
    async def serve() -> FileResponse:
        return _file(name)


_route("/admin/", "index.html")
for _name in _FILES:
    if _name != "index.html":
        _route(f"/admin/{_name}", _name)
