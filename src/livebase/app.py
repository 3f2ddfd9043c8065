"""The ASGI application: REST routes and the Socket.IO server, one lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from livebase import __version__, metrics
from livebase.api import admin, auth, demo, files, health, inspector, items, notifications, stats
from livebase.api import metrics as metrics_api
from livebase.api.errors import install_error_handlers
from livebase.api.fast_create import ItemCreateFastPath
from livebase.api.limits import BodySizeLimit, JsonBodyGuard
from livebase.api.request_metrics import RequestMetrics
from livebase.api.responses import ORJSONResponse
from livebase.extensions import load_extensions, mount_routers, start_extensions
from livebase.internals import check_internals
from livebase.realtime.server import Realtime
from livebase.services.container import Services, build_services
from livebase.services.users import AdminBootstrap, ensure_admin
from livebase.settings import Settings, prepare_filesystem, resolve_secret_key

_log = logging.getLogger("livebase")


def _announce(settings: Settings, bootstrap: AdminBootstrap) -> None:
    if not bootstrap.created:
        return
    lines = [f"created the administrator {bootstrap.email}"]
    if bootstrap.generated_password:
        lines.append(f"  password (shown once): {bootstrap.generated_password}")
    else:
        lines.append("  password: the ADMIN_PASSWORD you set")
    base = f"http://{settings.HOST}:{settings.PORT}"
    lines.append(
        f"  log in: curl -X POST {base}/auth/login -H 'Content-Type: application/json' "
        f'-d \'{{"email": "{bootstrap.email}", "password": "..."}}\''
    )
    print("\n".join(lines), flush=True)


def create_app(settings: Settings) -> FastAPI:
    """Build the REST application; nothing touches the disk or database until start-up.

    With ``SOCKET_ENABLED`` its ``state.realtime`` holds the Socket.IO server,
    which :func:`create_asgi` mounts in front of it at ``SOCKET_PATH``.
    Raises :class:`livebase.internals.IncompatibleLibrary` if a library
    livebase patches is not the version, or not in the state, it expects.
    """
    check_internals()
    realtime = Realtime(settings) if settings.SOCKET_ENABLED else None
    extensions = load_extensions(settings.EXTENSIONS_PATH)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare_filesystem(settings)
        services = build_services(settings, resolve_secret_key(settings))
        try:
            await services.start()
            admin = await ensure_admin(services.db, settings.ADMIN_EMAIL, settings.ADMIN_PASSWORD)
            _announce(settings, admin)
            app.state.services = services
            if realtime is not None:
                await realtime.attach(services)
            await services.start_relay()
            await start_extensions(extensions, services, realtime.socket if realtime else None)
            async with _worker_figures(realtime):
                yield
        finally:
            if realtime is not None:
                await realtime.close()
            await services.stop()

    app = FastAPI(
        title="livebase",
        version=__version__,
        description="Self-hosted backend-as-a-service with permission-aware realtime.",
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
    )
    app.state.realtime = realtime
    install_error_handlers(app)
    for router in (
        health.router,
        auth.router,
        items.router,
        admin.router,
        notifications.router,
        files.router,
        stats.router,
        metrics_api.router,
    ):
        app.include_router(router)
    if settings.DEMO_ENABLED:
        app.include_router(demo.router)
    if settings.ADMIN_UI_ENABLED:
        app.include_router(inspector.router)
    mount_routers(app, extensions)
    # Inside the JSON guard and the body-size limit, which are added last and so run first.
    app.add_middleware(ItemCreateFastPath, state=app.state)
    app.add_middleware(JsonBodyGuard)
    app.add_middleware(
        BodySizeLimit, limit=settings.MAX_REQUEST_BODY_SIZE, exempt={("POST", "/files")}
    )
    # Outermost: requests refused before routing are counted too.
    app.add_middleware(RequestMetrics, routes=app.router.routes)
    return app


@asynccontextmanager
async def _worker_figures(realtime: Realtime | None) -> AsyncIterator[None]:
    """``serve --workers N``: keep this worker's socket figures where any worker's
    scrape reads them, and take them away when it stops."""
    if not metrics.MULTIPROCESS or realtime is None:
        yield
        return
    task = asyncio.create_task(metrics_api.keep_figures_fresh(realtime))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        metrics.forget_process(os.getpid())


def create_asgi(settings: Settings) -> Any:
    """The whole server: Socket.IO at ``SOCKET_PATH`` in front of the REST app."""
    app = create_app(settings)
    realtime: Realtime | None = app.state.realtime
    served = app if realtime is None else realtime.asgi(app)
    return _behind_proxies(served, settings.FORWARDED_ALLOW_IPS)


def _behind_proxies(app: Any, trusted: list[str]) -> Any:
    # Here, not in the ASGI server, so that one setting decides whoever serves
    # the app; livebase serve turns uvicorn's own rewriting off (cli.py).
    if not trusted:
        return app
    return ProxyHeadersMiddleware(app, trusted_hosts=trusted)


def services_of(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services
