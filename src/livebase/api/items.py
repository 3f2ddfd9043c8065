"""``/items/{collection}``: list, read, create, update, delete, and their bulk forms."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from starlette.responses import Response

from livebase.api import conditional
from livebase.api.deps import ServicesDep, Who
from livebase.api.responses import ORJSONResponse
from livebase.services.errors import BadRequest
from livebase.services.query import parse_query
from livebase.services.versions import Precondition, Versioned

router = APIRouter(prefix="/items", tags=["items"])

JsonObject = Annotated[dict[str, Any], Body(description="field values")]
JsonArray = Annotated[list[Any], Body(description="an array (see the route)")]
Fields = Annotated[str | None, Query(description='JSON list or comma list, e.g. ["id","title"]')]
# Declared for the OpenAPI document; read from the request (api/conditional.py), which
# also sees a header sent twice.
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='write only if the item is at one of these versions: "57", a list, or *;'
        " otherwise 412 PRECONDITION_FAILED and nothing written (docs/rest.md)",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="304 Not Modified, no body, if the item is still at one of these versions",
    ),
]
_ETAG = {"description": 'the item\'s version, e.g. "57"', "schema": {"type": "string"}}
_CONDITIONAL_WRITE: dict[int | str, dict[str, Any]] = {
    200: {"headers": {"ETag": _ETAG}},
    412: {
        "description": "If-Match names no current version: nothing written. The error"
        " carries `etag`, the current version, if the caller may read the item."
    },
}
_REFUSED_CONDITIONS: dict[int | str, dict[str, Any]] = {
    400: {"description": "among others: If-Match or If-None-Match, not honoured on bulk writes"}
}


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


@router.patch("/{collection}/bulk", responses=_REFUSED_CONDITIONS)
async def update_many(
    collection: str, body: JsonArray, request: Request, who: Who, services: ServicesDep
) -> ORJSONResponse:
    conditional.refuse_on_writes(request, "bulk writes: one request per item")
    return ORJSONResponse({"data": await services.items.update_many(collection, body, who)})


@router.delete("/{collection}/bulk", responses=_REFUSED_CONDITIONS)
async def delete_many(
    collection: str, body: JsonArray, request: Request, who: Who, services: ServicesDep
) -> ORJSONResponse:
    conditional.refuse_on_writes(request, "bulk writes: one request per item")
    return ORJSONResponse({"data": await services.items.delete_many(collection, body, who)})


@router.get(
    "/{collection}/{item_id}",
    responses={
        200: {"headers": {"ETag": _ETAG}},
        304: {"description": "If-None-Match names the current version", "headers": {"ETag": _ETAG}},
    },
)
async def read_item(
    collection: str,
    item_id: str,
    request: Request,
    who: Who,
    services: ServicesDep,
    fields: Fields = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    query = parse_query(request.query_params)
    read = await services.items.read_versioned(collection, item_id, who, query.fields)
    if read.version is None:
        return ORJSONResponse({"data": read.item})
    if not read.related and conditional.not_modified(request, read.version):
        return conditional.not_modified_response(read.version)
    headers = {"ETag": conditional.etag(read.version), **conditional.CACHING}
    return ORJSONResponse({"data": read.item}, headers=headers)


@router.post("/{collection}", status_code=201, responses={201: {"headers": {"ETag": _ETAG}}})
async def create_item(
    collection: str, body: JsonObject, who: Who, services: ServicesDep
) -> ORJSONResponse:
    created = await services.items.create_versioned(collection, body, who)
    return ORJSONResponse({"data": created.item}, status_code=201, headers=_etag(created))


@router.patch("/{collection}/{item_id}", responses=_CONDITIONAL_WRITE)
async def update_item(
    collection: str,
    item_id: str,
    body: JsonObject,
    request: Request,
    who: Who,
    services: ServicesDep,
    if_match: IfMatch = None,
) -> ORJSONResponse:
    precondition = _precondition(request)
    updated = await services.items.update_versioned(collection, item_id, body, who, precondition)
    return ORJSONResponse({"data": updated.item}, headers=_etag(updated))


@router.delete("/{collection}/{item_id}", responses=_CONDITIONAL_WRITE)
async def delete_item(
    collection: str,
    item_id: str,
    request: Request,
    who: Who,
    services: ServicesDep,
    if_match: IfMatch = None,
) -> ORJSONResponse:
    precondition = _precondition(request)
    key = await services.items.delete(collection, item_id, who, precondition)
    return ORJSONResponse({"data": {"id": key}})


def _precondition(request: Request) -> Precondition | None:
    if "If-None-Match" in request.headers:
        raise BadRequest("If-None-Match is honoured on GET only; a write takes If-Match")
    return conditional.if_match(request)


def _etag(versioned: Versioned) -> dict[str, str] | None:
    return None if versioned.version is None else {"ETag": conditional.etag(versioned.version)}
