"""``/notifications``: the caller's own notifications, and sending them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from livebase.api.deps import ServicesDep, Who
from livebase.api.responses import ORJSONResponse
from livebase.services.query import parse_query

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("")
async def list_own(
    request: Request,
    who: Who,
    services: ServicesDep,
    filter: Annotated[str | None, Query(description="JSON filter")] = None,
    limit: Annotated[str | None, Query()] = None,
    page: Annotated[str | None, Query()] = None,
    offset: Annotated[str | None, Query()] = None,
) -> ORJSONResponse:
    rows, total = await services.notifications.own(who, parse_query(request.query_params))
    return ORJSONResponse({"data": rows, "totalCount": total})


@router.get("/unread/count")
async def unread_count(who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": {"count": await services.notifications.unread_count(who)}})


@router.post("/send", status_code=201)
async def send(
    body: Annotated[dict[str, Any], Body()], who: Who, services: ServicesDep
) -> ORJSONResponse:
    sent = await services.notifications.send(who, body)
    return ORJSONResponse({"data": sent, "totalCount": len(sent)}, status_code=201)


@router.post("/mark-seen")
async def mark_seen(
    who: Who, services: ServicesDep, body: Annotated[dict[str, Any] | None, Body()] = None
) -> ORJSONResponse:
    changed = await services.notifications.mark_seen(who, body)
    return ORJSONResponse({"data": {"count": len(changed), "ids": [n["id"] for n in changed]}})


@router.delete("/{notification_id}")
async def delete_own(notification_id: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    key = await services.notifications.delete(who, notification_id)
    return ORJSONResponse({"data": {"id": key}})
