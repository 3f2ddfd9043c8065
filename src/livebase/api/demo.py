"""``/examples/live-feed/``: the live demo page, when ``DEMO_ENABLED``.

Static files from ``examples/live-feed`` in the source tree, and nothing else:
the page signs in and posts through the public REST API and listens over
Socket.IO like any other client. Its Socket.IO client script is the npm
package's ``dist/socket.io.min.js``, copied into ``vendor/`` by
``make demo-assets``; it is served from here, never from a CDN.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response

from livebase.api.deps import ServicesDep

PREFIX = "/examples/live-feed"
# src/livebase/api/demo.py -> the repository's examples/ (present in a source checkout).
DEMO_DIR = Path(__file__).resolve().parents[3] / "examples" / "live-feed"
VENDORED_CLIENT = "vendor/socket.io.min.js"

# Only these files are served: no directory listing, no path taken from the request.
_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    VENDORED_CLIENT: "text/javascript; charset=utf-8",
}
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = DEMO_DIR / name
    if name not in _FILES or not path.is_file():
        if name == VENDORED_CLIENT:
            raise HTTPException(
                404, "the Socket.IO client is not vendored yet: run make demo-assets"
            )
        raise HTTPException(404, f"no such file in the live demo: {name[:100]!r}")
    return FileResponse(path, media_type=_FILES[name], headers=_NO_CACHE)


@router.get("/")
async def index() -> FileResponse:
    return _file("index.html")


@router.get("/config.js")
async def config(services: ServicesDep) -> Response:
    """Where the page finds the Socket.IO server, which settings may have moved."""
    settings = services.settings
    values = {"socketEnabled": settings.SOCKET_ENABLED, "socketPath": settings.SOCKET_PATH}
    body = b"window.livebaseConfig = " + orjson.dumps(values) + b";\n"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=_NO_CACHE)


@router.get("/{name:path}")
async def asset(name: str) -> FileResponse:
    return _file(name)
