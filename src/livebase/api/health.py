"""``/health``: is the database (and Redis, when configured) reachable."""

from __future__ import annotations

from fastapi import APIRouter

from livebase import __version__
from livebase.api.deps import ServicesDep
from livebase.api.responses import ORJSONResponse

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(services: ServicesDep) -> ORJSONResponse:
    database = "up" if await services.db.ping() else "down"
    redis = "not configured" if services.settings.redis_url is None else "unknown"
    status = "ok" if database == "up" else "degraded"
    body = {
        "status": status,
        "version": __version__,
        "database": {"status": database, "dialect": services.db.dialect},
        "redis": {"status": redis},
    }
    return ORJSONResponse({"data": body}, status_code=200 if status == "ok" else 503)
