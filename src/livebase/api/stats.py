"""``/stats/realtime`` (administrator): connections, users and rooms, per node and cluster;
``/stats/realtime/sockets``: every node's sockets (the inspector's list)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from livebase.api.deps import ServicesDep, Who
from livebase.api.health import redis_status
from livebase.api.responses import ORJSONResponse
from livebase.services.accountability import require_admin
from livebase.services.errors import BadRequest

router = APIRouter(tags=["realtime"])


@router.get("/stats/realtime")
async def realtime_stats(request: Request, who: Who, services: ServicesDep) -> ORJSONResponse:
    require_admin(who)
    realtime = request.app.state.realtime
    change_log = await services.relay.status()
    if realtime is None:
        return ORJSONResponse({"data": {"enabled": False, "changeLog": change_log}})
    body = {
        "enabled": True,
        **realtime.stats(),
        "redis": await redis_status(services),
        "changeLog": change_log,
    }
    cluster = await realtime.cluster_stats()
    if cluster is not None:
        body["cluster"] = cluster
    return ORJSONResponse({"data": body})


@router.get("/stats/realtime/sockets")
async def realtime_sockets(request: Request, who: Who) -> ORJSONResponse:
    require_admin(who)
    raw = request.query_params.get("limit")
    limit = None
    if raw is not None:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
            raise BadRequest("limit must be a positive number")
        limit = int(raw)
    realtime = request.app.state.realtime
    if realtime is None:
        body = {"enabled": False, "sockets": [], "total": 0}
        return ORJSONResponse({"data": body})
    # The realtime layer holds the bound (at most 500: 400 past it).
    return ORJSONResponse({"data": {"enabled": True, **await realtime.sockets(limit)}})
