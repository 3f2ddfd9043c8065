"""``/stats/realtime``: connections, users and rooms of this node (administrator)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from livebase.api.deps import Who
from livebase.api.responses import ORJSONResponse
from livebase.services.accountability import require_admin

router = APIRouter(tags=["realtime"])


@router.get("/stats/realtime")
async def realtime_stats(request: Request, who: Who) -> ORJSONResponse:
    require_admin(who)
    realtime = request.app.state.realtime
    if realtime is None:
        return ORJSONResponse({"data": {"enabled": False}})
    services = request.app.state.services
    redis = "not configured" if services.settings.redis_url is None else "unknown"
    return ORJSONResponse({"data": {"enabled": True, **realtime.stats(), "redis": redis}})
