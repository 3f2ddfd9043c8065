"""The example clients under ``/examples/``, when ``DEMO_ENABLED``.

``/examples/live-feed/`` (the live demo page) and ``/examples/collab-board/``
(the collaborative board, SPEC §13): static files from ``examples/<name>`` in
the source tree, and nothing else. The pages sign in and write through the
public REST API and listen over Socket.IO like any other client. Their
Socket.IO client script is the npm package's ``dist/socket.io.min.js``,
copied into each page's ``vendor/`` by ``make demo-assets``; it is served
from here, never from a CDN.

``/examples/react-live-feed/`` and ``/examples/vue-live-feed/``: the Vite builds
of the React and Vue examples (``examples/<name>/dist``, made by
``make examples``). Same origin as the API, so they need no CORS.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response

from livebase.api.deps import ServicesDep
from livebase.api.page_files import PAGE_FILES as _FILES
from livebase.api.page_files import VENDORED_CLIENT

# src/livebase/api/demo.py -> the repository's examples/ (present in a source checkout).
EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
STATIC_EXAMPLES = {"live-feed": "the live demo", "collab-board": "the collaborative board"}
BUILT_EXAMPLES = ("react-live-feed", "vue-live-feed")
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(prefix="/examples", include_in_schema=False)


def _file(example: str, name: str) -> FileResponse:
    """One of the fixed files of a static example; the request only picks among them."""
    path = EXAMPLES_DIR / example / name
    if name not in _FILES or not path.is_file():
        if name == VENDORED_CLIENT:
            raise HTTPException(
                404, "the Socket.IO client is not vendored yet: run make demo-assets"
            )
        raise HTTPException(404, f"no such file in {STATIC_EXAMPLES[example]}: {name[:100]!r}")
    return FileResponse(path, media_type=_FILES[name], headers=_NO_CACHE)


def _static_routes(example: str) -> None:
    # Literal paths per example (not a path parameter for the example's name), so
    # that the name never comes from the request either.
    @router.get(f"/{example}/")
    async def index() -> FileResponse:
        return _file(example, "index.html")

    @router.get(f"/{example}/config.js")
    async def config(services: ServicesDep) -> Response:
        """Where the page finds the Socket.IO server, which settings may have moved."""
        settings = services.settings
        values = {"socketEnabled": settings.SOCKET_ENABLED, "socketPath": settings.SOCKET_PATH}
        body = b"window.livebaseConfig = " + orjson.dumps(values) + b";\n"
        return Response(body, media_type="text/javascript; charset=utf-8", headers=_NO_CACHE)

    @router.get(f"/{example}/{{name:path}}")
    async def asset(name: str) -> FileResponse:
        return _file(example, name)


for _example in STATIC_EXAMPLES:
    _static_routes(_example)


def _built_file(example: str, name: str) -> FileResponse:
    """A file of the example's Vite build; the path must stay inside ``dist/``."""
    dist = (EXAMPLES_DIR / example / "dist").resolve()
    if not (dist / "index.html").is_file():
        raise HTTPException(404, f"the {example} example is not built yet: run make examples")
    missing = HTTPException(404, f"no such file in the {example} build: {name[:100]!r}")
    # No hidden files, and nothing that resolves (through "..", "\\" or a link) out of dist/.
    if any(part.startswith(".") for part in name.replace("\\", "/").split("/")):
        raise missing
    try:
        path = (dist / (name or "index.html")).resolve()
    except (OSError, ValueError):  # e.g. a NUL byte
        raise missing from None
    if not path.is_relative_to(dist) or not path.is_file():
        raise missing
    # Vite puts a content hash in every asset's name; only index.html changes in place.
    immutable = path.parent == dist / "assets"
    headers = {"Cache-Control": "public, max-age=31536000, immutable"} if immutable else _NO_CACHE
    return FileResponse(path, headers=headers)


@router.get("/{example}/{name:path}")
async def built_asset(example: str, name: str) -> FileResponse:
    if example not in BUILT_EXAMPLES:
        raise HTTPException(404, f"no such example: {example[:100]!r}")
    return _built_file(example, name)
