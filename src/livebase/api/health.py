"""``/health``: is the database (and Redis, when configured) reachable.

Redis being away makes the answer "degraded" but still 200: the process
keeps serving REST and its own sockets, so a load balancer should keep
sending it traffic. A database outage is a 503.
"""

from __future__ import annotations

from fastapi import APIRouter

from livebase import __version__
from livebase.api.deps import ServicesDep
from livebase.api.responses import ORJSONResponse
from livebase.services.container import Services

router = APIRouter(tags=["health"])


async def redis_status(services: Services) -> str:
    if services.redis is None:
        return "not configured"
    return "up" if await services.redis.ping() else "down"


@router.get("/health")
async def health(services: ServicesDep) -> ORJSONResponse:
    database = "up" if await services.db.ping() else "down"
    redis = await redis_status(services)
    status = "ok" if database == "up" and redis != "down" else "degraded"
    body = {
        "status": status,
        "version": __version__,
        "database": {"status": database, "dialect": services.db.dialect},
        "redis": {"status": redis},
    }
    return ORJSONResponse({"data": body}, status_code=200 if database == "up" else 503)
