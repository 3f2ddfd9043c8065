"""``GET /metrics``: Prometheus's text format, for administrators or ``METRICS_TOKEN``.

What the server already knows (sockets, queued bytes, live queries, the
change log) is read when scraped, not counted on the hot path: the sockets
of this process in one pass, the change log in one bounded query. Under
``serve --workers N`` each worker also writes its socket figures every
:data:`REFRESH_EVERY` seconds, so that a scrape answered by any worker
covers all of them (docs/operations.md, "Scraping").
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from livebase import metrics
from livebase.api.deps import ServicesDep
from livebase.services.accountability import require_admin
from livebase.services.container import Services
from livebase.services.errors import Unauthorized

router = APIRouter(tags=["operations"])
_log = logging.getLogger("livebase.api")

REFRESH_EVERY = 2.0  # seconds: how stale another worker's socket figures may be
CHANGE_LOG_WAIT = 2.0  # seconds a scrape waits for the change log's figures
_seen_transports: set[str] = set()
_seen_roles: set[str] = set()


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(request: Request, services: ServicesDep) -> Response:
    await _admit(request, services)
    set_socket_figures(request.app.state.realtime)
    await _set_change_log_figures(services)
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


async def _admit(request: Request, services: Services) -> None:
    """An administrator's token, or ``Bearer $METRICS_TOKEN`` when it is set."""
    header = request.headers.get("authorization")
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        if header is not None:
            raise Unauthorized("Authorization header must be 'Bearer <token>'", "INVALID_TOKEN")
        require_admin(await services.auth.authenticate(None))
        return
    wanted = services.settings.METRICS_TOKEN
    if wanted is not None and hmac.compare_digest(token.encode(), wanted.encode()):
        return
    require_admin(await services.auth.authenticate(token))


def set_socket_figures(realtime: Any) -> None:
    """This process's socket figures, into the gauges the next scrape reads."""
    figures = realtime.figures() if realtime is not None else None
    if figures is None:
        return
    metrics.set_labelled(metrics.SOCKETS_OPEN, figures.transports, _seen_transports)
    metrics.set_labelled(metrics.SOCKETS_BY_ROLE, figures.roles, _seen_roles)
    metrics.QUEUED_BYTES.set(figures.queued_bytes)
    metrics.LIVE_SUBSCRIPTIONS.set(figures.live_subscriptions)


async def _set_change_log_figures(services: Services) -> None:
    try:
        async with asyncio.timeout(CHANGE_LOG_WAIT):
            entries, lag = await services.relay.figures()
    except Exception as exc:  # the database away or slow: the other figures still go out
        _log.warning("reading the change log's figures for /metrics failed: %r", exc)
        return
    metrics.CHANGE_LOG_ENTRIES.set(entries)
    metrics.CHANGE_LOG_LAG.set(lag)


async def keep_figures_fresh(realtime: Any) -> None:
    """``serve --workers N``: this worker's socket figures, for scrapes other workers answer."""
    while True:
        try:
            set_socket_figures(realtime)
        except Exception:
            _log.exception("updating this worker's socket figures for /metrics failed")
        await asyncio.sleep(REFRESH_EVERY)
