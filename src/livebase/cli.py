"""The ``livebase`` command: ``serve`` and ``create-admin``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import os
import shutil
import sys
import tempfile
from typing import Any

from livebase import __version__
from livebase.extensions import ExtensionError
from livebase.internals import IncompatibleLibrary, check_internals
from livebase.logs import log_config
from livebase.realtime.websocket import WebSocketProtocol
from livebase.settings import (
    ConfigError,
    Settings,
    load_settings,
    prepare_filesystem,
    resolve_secret_key,
)

# The ASGI server's parts; tests run the same ones. Engine.IO has its own
# heartbeat, so uvicorn's websocket keepalive would only double the pings.
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "ws": WebSocketProtocol,  # uvicorn's "websockets-sansio", holding less per connection
    "ws_ping_interval": None,
    "ws_ping_timeout": None,
    # No permessage-deflate, as socket.io's own default since 3.0: events are
    # small JSON, and each compressing socket held ~50 KiB of zlib state.
    "ws_per_message_deflate": False,
    "lifespan": "on",
    # The app applies FORWARDED_ALLOW_IPS itself (app.create_asgi); uvicorn's
    # own rewriting trusts 127.0.0.1 unless told otherwise, so any local
    # client could name the address its login attempts count against.
    "proxy_headers": False,
}
# Every delivered message allocates a few short-lived objects per socket;
# with the default thresholds the collector ran full passes over all socket
# state often enough to cost 30 % (1k sockets) to 75 % (10k) of server CPU
# in bench/ (docs/performance-log.md, first pass).
GC_THRESHOLDS = (50_000, 20, 100)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from livebase.app import create_asgi

    check_internals()  # here too: before any worker process starts
    workers = args.workers
    if workers < 1:
        raise ConfigError(f"--workers: must be 1 or more, got {workers}")
    if workers > 1:
        _check_cluster(settings, workers)
    prepare_filesystem(settings)
    options: dict[str, Any] = {
        "host": args.host or settings.HOST,
        "port": args.port if args.port is not None else settings.PORT,
        "log_level": settings.LOG_LEVEL,
        "log_config": log_config(settings.LOG_LEVEL, settings.LOG_FORMAT),
        "access_log": settings.LOG_LEVEL == "debug",
        # Long-polling GETs stay open until the next heartbeat; do not wait that long to stop.
        "timeout_graceful_shutdown": 5,
        **SERVER_OPTIONS,
    }
    if workers == 1:
        gc.set_threshold(*GC_THRESHOLDS)
        uvicorn.run(create_asgi(settings), **options)
        return 0
    # Every worker must sign and check tokens with the same key.
    os.environ["SECRET_KEY"] = resolve_secret_key(settings)
    # The workers' metrics, in files any of them adds up when scraped
    # (prometheus-client's multiprocess mode, chosen when a worker imports it):
    # a fresh directory, so that no earlier run's counts are added in.
    shared = tempfile.mkdtemp(prefix="livebase-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
    try:
        uvicorn.run("livebase.cli:worker_asgi", factory=True, workers=workers, **options)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def _check_cluster(settings: Settings, workers: int) -> None:
    if settings.redis_url is None:
        raise ConfigError(
            f"--workers {workers}: several processes need Redis to act as one server; "
            "set CACHE_REDIS_URL (or SOCKET_REDIS_URL), or run one worker"
        )
    if not settings.DATABASE_URL.startswith("postgresql"):
        raise ConfigError(
            f"--workers {workers}: several processes need a PostgreSQL DATABASE_URL "
            "(SQLite serves one process)"
        )


def worker_asgi() -> Any:
    """One ``serve --workers N`` process: the same server, configured from the environment."""
    from livebase.app import create_asgi

    gc.set_threshold(*GC_THRESHOLDS)
    return create_asgi(load_settings())


async def _create_admin(settings: Settings, email: str, password: str) -> None:
    from livebase.services.container import build_services
    from livebase.services.users import create_admin

    services = build_services(settings, resolve_secret_key(settings))
    try:
        await services.start()
        user = await create_admin(services.db, email, password)
        print(f"created administrator {user['email']} (id {user['id']})")
    finally:
        await services.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livebase",
        description="Self-hosted backend-as-a-service with permission-aware realtime. "
        "Configuration comes from environment variables or a .env file (see README).",
    )
    parser.add_argument("--version", action="version", version=f"livebase {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the REST API and realtime server")
    serve.add_argument("--host", help="listen address (default: HOST)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port (more than 1 needs Redis and PostgreSQL)",
    )
    admin = commands.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="prompted for when omitted")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            return _serve(settings, args)
        password = args.password or getpass.getpass("password: ")
        prepare_filesystem(settings)
        asyncio.run(_create_admin(settings, args.email, password))
        return 0
    except ConfigError as exc:
        print(f"livebase: configuration error: {exc}", file=sys.stderr)
        return 2
    except (ExtensionError, IncompatibleLibrary) as exc:
        print(f"livebase: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a service error from create-admin, e.g. a taken e-mail
        message = getattr(exc, "message", None)
        if message is None:
            raise
        print(f"livebase: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
