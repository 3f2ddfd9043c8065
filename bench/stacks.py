#!/usr/bin/env python3
"""Serve livebase on another ASGI server or WebSocket implementation, for bench/fanout.py.

    .venv/bin/python bench/stacks.py STACK   # configured from the environment, as `livebase serve`

``bench/fanout.py --server STACK`` starts this instead of ``livebase serve``,
with the same environment. Every stack serves the same application
(:func:`livebase.app.create_asgi`, or its parts for aiohttp) with the GC
thresholds of ``livebase serve``:

- ``uvicorn-sansio``: what ``livebase serve`` runs (uvicorn, uvloop, httptools,
  websockets' sans-I/O protocol); the only stack on which the delivery stage
  writes frames straight to the transport;
- ``uvicorn-sansio-queue``: the same, with the direct path turned off (a
  control: every packet takes the ASGI ``send``, as on the stacks below);
- ``uvicorn-websockets``: uvicorn's legacy ``websockets`` protocol (deprecated);
- ``uvicorn-wsproto``: uvicorn's ``wsproto`` protocol;
- ``granian``: granian's ASGI interface, one worker process (a child of this
  one), uvloop, websockets on;
- ``aiohttp``: python-socketio in ``aiohttp`` mode on an aiohttp server (uvloop),
  the REST app behind a minimal ASGI bridge written here.

All but the first send every packet through the ASGI ``send`` (python-engineio's
queue and writer task before the sessions of ``realtime/session.py``; a drain
task started when packets are waiting since).
Bench-only: granian and aiohttp come with the ``bench`` extra
(``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator
from typing import Any

from livebase.cli import GC_THRESHOLDS, SERVER_OPTIONS
from livebase.settings import Settings, load_settings, prepare_filesystem

UVICORN_WS = {
    "uvicorn-sansio": SERVER_OPTIONS["ws"],  # livebase's subclass of websockets-sansio
    "uvicorn-sansio-queue": SERVER_OPTIONS["ws"],
    "uvicorn-websockets": "websockets",
    "uvicorn-wsproto": "wsproto",
}
STACKS = (*UVICORN_WS, "granian", "aiohttp")


def serve_uvicorn(settings: Settings, ws: Any) -> None:
    """As ``livebase serve`` (cli._serve, one worker), with another ``ws`` implementation."""
    import uvicorn

    from livebase.app import create_asgi

    uvicorn.run(
        create_asgi(settings),
        host=settings.HOST,
        port=settings.PORT,
        log_level=settings.LOG_LEVEL,
        access_log=settings.LOG_LEVEL == "debug",
        timeout_graceful_shutdown=5,
        **{**SERVER_OPTIONS, "ws": ws},
    )


def serve_granian(settings: Settings) -> None:
    """granian, ASGI with lifespan, one worker process forked from this one."""
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    from livebase.app import create_asgi

    server = Server(
        "livebase",  # unused: the loader below builds the app in the worker
        address=settings.HOST,
        port=settings.PORT,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        websockets=True,
        # Default: backlog / workers = 1024 requests at once, and every open
        # WebSocket counts as one: the 1 025th socket would wait.
        backpressure=65_536,
        log_level=LogLevels(settings.LOG_LEVEL),
    )

    def load(*_: Any, **__: Any) -> Any:  # in the worker (fork: no pickling)
        gc.set_threshold(*GC_THRESHOLDS)
        return create_asgi(settings)

    server.serve(target_loader=load, wrap_loader=False)


def serve_aiohttp(settings: Settings) -> None:
    """python-socketio in aiohttp mode; every other path goes to the REST app over ASGI."""
    import uvloop
    from aiohttp import web

    import livebase.realtime.server as realtime_server
    from livebase.app import create_app

    class AiohttpServer(realtime_server.EngineWorkarounds):  # type: ignore[misc,name-defined]
        def __init__(self, **options: Any) -> None:
            super().__init__(**{**options, "async_mode": "aiohttp"})

    # livebase builds its Socket.IO server in ASGI mode; here the same class, in aiohttp mode.
    realtime_server.EngineWorkarounds = AiohttpServer  # type: ignore[attr-defined]
    rest = create_app(settings)
    aio = web.Application(client_max_size=settings.MAX_REQUEST_BODY_SIZE + 1)
    rest.state.realtime.sio.attach(aio, socketio_path=settings.SOCKET_PATH)
    aio.router.add_route("*", "/{tail:.*}", _asgi_handler(rest))
    aio.cleanup_ctx.append(lambda _: _lifespan(rest))
    web.run_app(
        aio,
        host=settings.HOST,
        port=settings.PORT,
        print=None,
        access_log=None,
        shutdown_timeout=5,
        loop=uvloop.new_event_loop(),
    )


def _asgi_handler(app: Any) -> Any:
    """One aiohttp request -> one ASGI HTTP call of ``app``, the response buffered."""
    from aiohttp import web
    from multidict import CIMultiDict

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": f"{request.version.major}.{request.version.minor}",
            "method": request.method,
            "scheme": request.scheme,
            "path": request.path,
            "raw_path": request.raw_path.split("?", 1)[0].encode(),
            "query_string": request.query_string.encode(),
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.raw_headers],
            "client": (request.remote or "", 0),
            "server": (request.host, 0),
        }
        answered = asyncio.Event()
        sent_body = False
        status, headers, chunks = 500, CIMultiDict[str](), []

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    key = name.decode("latin-1")
                    if key.lower() not in ("content-length", "transfer-encoding"):
                        headers.add(key, value.decode("latin-1"))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        await app(scope, receive, send)
        answered.set()
        return web.Response(status=status, body=b"".join(chunks), headers=headers)

    return handle


async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Drive ``app``'s ASGI lifespan: startup before serving, shutdown after."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, replies.put))
    await inbox.put({"type": "lifespan.startup"})
    reply = await replies.get()
    if reply["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup: {reply}")
    yield
    await inbox.put({"type": "lifespan.shutdown"})
    await replies.get()
    await task


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in STACKS:
        print(f"usage: {sys.argv[0]} {{{'|'.join(STACKS)}}}", file=sys.stderr)
        return 2
    stack = sys.argv[1]
    settings = load_settings()
    prepare_filesystem(settings)
    gc.set_threshold(*GC_THRESHOLDS)
    if stack == "uvicorn-sansio-queue":
        import livebase.realtime.session as session

        # No frame goes straight to a transport: every packet takes the ASGI send.
        session._writable_transport = lambda ws: None
    if stack in UVICORN_WS:
        serve_uvicorn(settings, UVICORN_WS[stack])
    elif stack == "granian":
        serve_granian(settings)
    else:
        serve_aiohttp(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
