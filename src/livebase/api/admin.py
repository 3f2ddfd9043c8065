"""Administration: ``/schemas``, ``/roles`` and ``/permissions``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from livebase.api.deps import ServicesDep, Who
from livebase.api.responses import ORJSONResponse

router = APIRouter(tags=["administration"])
JsonObject = Annotated[dict[str, Any], Body()]


@router.get("/schemas")
async def list_schemas(who: Who, services: ServicesDep) -> ORJSONResponse:
    schemas = await services.schemas.list(who)
    return ORJSONResponse({"data": schemas, "totalCount": len(schemas)})


@router.post("/schemas", status_code=201)
async def create_schema(body: JsonObject, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.schemas.create(who, body)}, status_code=201)


@router.get("/schemas/{collection}")
async def get_schema(collection: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.schemas.get(who, collection)})


@router.patch("/schemas/{collection}")
async def update_schema(
    collection: str, body: JsonObject, who: Who, services: ServicesDep
) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.schemas.update(who, collection, body)})


@router.delete("/schemas/{collection}")
async def delete_schema(collection: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    name = await services.schemas.delete(who, collection)
    return ORJSONResponse({"data": {"collectionName": name}})


@router.post("/schemas/{collection}/relationships", status_code=201)
async def create_relationship(
    collection: str, body: JsonObject, who: Who, services: ServicesDep
) -> ORJSONResponse:
    relation = await services.relationships.create(who, collection, body)
    return ORJSONResponse({"data": relation}, status_code=201)


@router.delete("/schemas/{collection}/relationships/{name}")
async def delete_relationship(
    collection: str, name: str, who: Who, services: ServicesDep
) -> ORJSONResponse:
    deleted = await services.relationships.delete(who, collection, name)
    return ORJSONResponse({"data": {"collectionName": collection, "name": deleted}})


@router.get("/roles")
async def list_roles(who: Who, services: ServicesDep) -> ORJSONResponse:
    roles = await services.roles.list(who)
    return ORJSONResponse({"data": roles, "totalCount": len(roles)})


@router.post("/roles", status_code=201)
async def create_role(body: JsonObject, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.roles.create(who, body)}, status_code=201)


@router.get("/roles/{name}")
async def get_role(name: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.roles.get(who, name)})


@router.get("/permissions")
async def list_permissions(
    who: Who, services: ServicesDep, role: str | None = None
) -> ORJSONResponse:
    rows = await services.permissions.list(who, role)
    return ORJSONResponse({"data": rows, "totalCount": len(rows)})


@router.post("/permissions", status_code=201)
async def create_permission(body: JsonObject, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.permissions.create(who, body)}, status_code=201)


@router.get("/permissions/{permission_id}")
async def get_permission(permission_id: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.permissions.get(who, permission_id)})


@router.patch("/permissions/{permission_id}")
async def update_permission(
    permission_id: str, body: JsonObject, who: Who, services: ServicesDep
) -> ORJSONResponse:
    row = await services.permissions.update(who, permission_id, body)
    return ORJSONResponse({"data": row})


@router.delete("/permissions/{permission_id}")
async def delete_permission(permission_id: str, who: Who, services: ServicesDep) -> ORJSONResponse:
    deleted = await services.permissions.delete(who, permission_id)
    return ORJSONResponse({"data": {"id": deleted}})
