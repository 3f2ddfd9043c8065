"""``/stats/realtime`` (administrator): connections, users and rooms, per node and cluster."""

from __future__ import annotations

from fastapi import APIRouter, Request

from livebase.api.deps import ServicesDep, Who
from livebase.api.health import redis_status
from livebase.api.responses import ORJSONResponse
from livebase.services.accountability import require_admin

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
