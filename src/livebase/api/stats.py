"""``/stats/realtime`` (administrator): connections, users and rooms, per node and cluster;
``/stats/realtime/trace``: why a user's sockets did (not) get one logged event;
``/stats/realtime/sockets``: every node's sockets (the inspector's list)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from livebase.api.deps import ServicesDep, Who
from livebase.api.health import redis_status
from livebase.api.responses import ORJSONResponse
from livebase.services.accountability import require_admin
from livebase.services.errors import BadRequest, NotFound

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


@router.get("/stats/realtime/trace")
async def realtime_trace(request: Request, who: Who, services: ServicesDep) -> ORJSONResponse:
    require_admin(who)
    raw_offset = request.query_params.get("offset") or ""
    user = request.query_params.get("user")
    # An offset is the digits of a position (realtime.offsets), as clients get them.
    digits = raw_offset.isascii() and raw_offset.isdigit() and len(raw_offset) <= 18
    position = int(raw_offset) if digits else 0
    if position == 0:
        raise BadRequest("offset must be a change log offset (the digits of a positive number)")
    if not user or not _is_uuid(user):
        raise BadRequest("user must be a user id")
    await services.items.read_one("users", user, who)  # 404 for a user that does not exist
    realtime = request.app.state.realtime
    if realtime is None:
        raise NotFound("realtime is disabled (SOCKET_ENABLED=false): nothing was delivered")
    answer = await realtime.trace(position, user)
    if answer is None:
        raise NotFound(f"offset {position} is not in the change log (pruned, or never written)")
    return ORJSONResponse({"data": answer})


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


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
