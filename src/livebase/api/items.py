"""``/items/{collection}``: list, read, create, update, delete, and their bulk forms."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from livebase.api.deps import ServicesDep, Who
from livebase.api.responses import ORJSONResponse
from livebase.services.query import parse_query

router = APIRouter(prefix="/items", tags=["items"])

JsonObject = Annotated[dict[str, Any], Body(description="field values")]
JsonArray = Annotated[list[Any], Body(description="an array (see the route)")]
Fields = Annotated[str | None, Query(description='JSON list or comma list, e.g. ["id","title"]')]


@router.get("/{collection}")
async def list_items(
    collection: str,
    request: Request,
    who: Who,
    services: ServicesDep,
    filter: Annotated[
        str | None, Query(description='JSON filter, e.g. {"title":{"eq":"x"}}')
    ] = None,
    fields: Fields = None,
    sort: Annotated[str | None, Query(description='["-createdAt"] or {"createdAt":"desc"}')] = None,
    limit: Annotated[str | None, Query(description="default 100, -1 for all")] = None,
    page: Annotated[str | None, Query()] = None,
    offset: Annotated[str | None, Query()] = None,
    search: Annotated[str | None, Query()] = None,
) -> ORJSONResponse:
    query = parse_query(request.query_params)
    items, total = await services.items.read_many(collection, query, who)
    return ORJSONResponse({"data": items, "totalCount": total})


@router.post("/{collection}/bulk", status_code=201)
async def create_many(
    collection: str, body: JsonArray, who: Who, services: ServicesDep
) -> ORJSONResponse:
    items = await services.items.create_many(collection, body, who)
    return ORJSONResponse({"data": items}, status_code=201)


@router.patch("/{collection}/bulk")
async def update_many(
    collection: str, body: JsonArray, who: Who, services: ServicesDep
) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.items.update_many(collection, body, who)})


@router.delete("/{collection}/bulk")
async def delete_many(
    collection: str, body: JsonArray, who: Who, services: ServicesDep
) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.items.delete_many(collection, body, who)})


@router.get("/{collection}/{item_id}")
async def read_item(
    collection: str,
    item_id: str,
    request: Request,
    who: Who,
    services: ServicesDep,
    fields: Fields = None,
) -> ORJSONResponse:
    query = parse_query(request.query_params)
    item = await services.items.read_one(collection, item_id, who, query.fields)
    return ORJSONResponse({"data": item})


@router.post("/{collection}", status_code=201)
async def create_item(
    collection: str, body: JsonObject, who: Who, services: ServicesDep
) -> ORJSONResponse:
    item = await services.items.create(collection, body, who)
    return ORJSONResponse({"data": item}, status_code=201)


@router.patch("/{collection}/{item_id}")
async def update_item(
    collection: str, item_id: str, body: JsonObject, who: Who, services: ServicesDep
) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.items.update(collection, item_id, body, who)})


@router.delete("/{collection}/{item_id}")
async def delete_item(
    collection: str, item_id: str, who: Who, services: ServicesDep
) -> ORJSONResponse:
    key = await services.items.delete(collection, item_id, who)
    return ORJSONResponse({"data": {"id": key}})
