"""Defining collections at run time: create, change and drop their tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.services.accountability import Accountability, require_admin
from livebase.services.definitions import Definition, check_written, parse_definition
from livebase.services.errors import BadRequest, Conflict, object_with
from livebase.services.events import ChangeEvent, EventBus, PermissionsChanged
from livebase.services.names import check_new_collection_name
from livebase.services.permissions import PermissionService
from livebase.services.registry import CollectionRegistry, make_collection
from livebase.services.relations import RelationGraph, described, junction_keys
from livebase.storage import capture, system, tables
from livebase.storage.database import Database
from livebase.storage.model import Collection, FieldSpec
from livebase.storage.types import utcnow

_STRUCTURAL = ("kind", "length", "precision", "scale", "primary_key")


def _describe(collection: Collection, graph: RelationGraph) -> dict[str, Any]:
    """A collection as /schemas answers it: its stored schema (``schema.relationships``
    holds the relations stored on it) and ``relationships``, every relation that
    starts from it, the reverses of other collections' relations included."""
    relationships = [described(r) for r in graph.of(collection.name).values()]
    if collection.system:
        fields = {
            f.name: {"type": f.kind.value, "allowNull": f.allow_null}
            for f in collection.fields.values()
            if not f.hidden
        }
        schema: dict[str, Any] = {"system": True, "fields": fields}
    else:
        schema = collection.definition
    return {"collectionName": collection.name, "schema": schema, "relationships": relationships}


class SchemaService:
    def __init__(
        self,
        db: Database,
        registry: CollectionRegistry,
        permissions: PermissionService,
        events: EventBus,
    ) -> None:
        self._db = db
        self._registry = registry
        self._permissions = permissions
        self._events = events

    async def list(self, who: Accountability) -> list[dict[str, Any]]:
        require_admin(who)
        await self._registry.load()
        return [self.describe(c) for c in self._registry.user_collections()]

    async def get(self, who: Accountability, name: str) -> dict[str, Any]:
        require_admin(who)
        return self.describe(await self._registry.get(name))

    def describe(self, collection: Collection) -> dict[str, Any]:
        return _describe(collection, self._registry.relations)

    async def create(self, who: Accountability, body: object) -> dict[str, Any]:
        require_admin(who)
        body = object_with(body, {"collectionName", "schema"}, "body")
        name = check_new_collection_name(body.get("collectionName"))
        if self._registry.taken(name):
            await self._registry.load()
        if self._registry.taken(name):
            raise Conflict(
                f"collection {name!r} already exists or is reserved", "COLLECTION_EXISTS"
            )
        _no_relationships(body.get("schema"))
        definition = parse_definition(body.get("schema", {}))
        check_written(definition, definition.fields)
        collection = make_collection(name, definition)
        now = utcnow()
        try:
            async with self._db.transaction() as conn:
                await tables.create_table(conn, collection.table)
                await capture.capture(conn, collection)
                await conn.execute(
                    insert(system.schemas).values(
                        collectionName=name,
                        schema=collection.definition,
                        createdAt=now,
                        updatedAt=now,
                    )
                )
        except IntegrityError:
            raise Conflict(f"collection {name!r} already exists", "COLLECTION_EXISTS") from None
        self._registry.put(collection)
        await self.published("create", collection)
        return self.describe(collection)

    async def update(self, who: Accountability, name: str, body: object) -> dict[str, Any]:
        """Merge a partial schema.

        Options replace the old ones; ``fields`` entries add or change a field,
        and a ``null`` entry drops it.
        """
        require_admin(who)
        current = await self._registry.get(name)
        if current.system:
            raise BadRequest(f"{name} is a system collection; its schema is fixed")
        _not_a_junction(current, "changed")
        if (
            isinstance(body, dict)
            and "schema" in body
            and set(body) <= {"schema", "collectionName"}
        ):
            body = body["schema"]
        if not isinstance(body, dict):
            raise BadRequest("body must be a (partial) schema object")
        _no_relationships(body)
        merged = {**current.definition, **{k: v for k, v in body.items() if k != "fields"}}
        changes = body.get("fields", {})
        if not isinstance(changes, dict):
            raise BadRequest("schema.fields must be an object")
        fields = {**current.definition.get("fields", {})}
        for field_name, spec in changes.items():
            if spec is None:
                if fields.pop(field_name, None) is None:
                    raise BadRequest(f"{name} has no field {field_name!r} to drop")
            else:
                fields[field_name] = spec
        merged["fields"] = fields
        self._keep_relations(current, changes)
        definition = parse_definition(merged)
        check_written(definition, changes, current.fields)
        updated = make_collection(name, definition)
        async with self._db.transaction() as conn:
            # SQLite refuses to drop or retype a column its triggers name.
            await capture.release(conn, current)
            await self._alter(conn, current, definition, updated)
            await capture.capture(conn, updated)
            await conn.execute(
                update(system.schemas)
                .where(system.schemas.c.collectionName == name)
                .values(schema=updated.definition, updatedAt=utcnow())
            )
        self._registry.put(updated)
        await self.published("update", updated)
        return self.describe(updated)

    def _keep_relations(self, current: Collection, changes: dict[str, Any]) -> None:
        """A relation's key field changes with its relation only; relation names are taken."""
        keys = {key.parent.name for key in current.table.foreign_keys}
        relations = {name.lower(): name for name in self._registry.relations.of(current.name)}
        for field_name in changes:
            if field_name in keys:
                raise BadRequest(
                    f"field {field_name!r} is the key of a relation: delete the relation "
                    f"(DELETE /schemas/{current.name}/relationships/...) to drop it",
                    "RELATION_FIELD",
                )
            if field_name.lower() in relations:
                raise BadRequest(
                    f"{field_name!r} is the name of relation "
                    f"{relations[field_name.lower()]!r} of {current.name}",
                    "RELATION_NAME_TAKEN",
                )

    async def _alter(
        self, conn: AsyncConnection, current: Collection, new: Definition, updated: Collection
    ) -> None:
        old_fields, new_fields = current.fields, new.fields
        for name in old_fields.keys() - new_fields.keys():
            if old_fields[name].primary_key:
                raise BadRequest("the primary key cannot be dropped")
            if old_fields[name].unique:
                await tables.drop_unique_index(conn, current.table, name)
            await tables.drop_column(conn, current.table, name)
        for name in new_fields.keys() - old_fields.keys():
            await tables.add_column(conn, updated.table, new_fields[name])
            if new_fields[name].unique:
                await self._add_unique(conn, updated, name)
        for name in new_fields.keys() & old_fields.keys():
            before, after = old_fields[name], new_fields[name]
            if _structure(before) != _structure(after):
                raise BadRequest(
                    f"field {name!r}: changing its type, length, precision or key is not "
                    "supported; add a new field and copy the data"
                )
            if before.unique and not after.unique:
                await tables.drop_unique_index(conn, current.table, name)
            elif after.unique and not before.unique:
                await self._add_unique(conn, updated, name)

    async def _add_unique(self, conn: AsyncConnection, collection: Collection, name: str) -> None:
        try:
            async with conn.begin_nested():
                await tables.create_unique_index(conn, collection.table, name)
        except IntegrityError:
            raise Conflict(f"field {name!r} has duplicate values; it cannot be unique") from None

    async def delete(self, who: Accountability, name: str) -> str:
        require_admin(who)
        collection = await self._registry.get(name)
        if collection.system:
            raise BadRequest(f"{name} is a system collection and cannot be dropped")
        _not_a_junction(collection, "dropped")
        await self._registry.load()  # the relations of every collection, as stored now
        graph = self._registry.relations
        pointing = [f"{r.collection}.{r.name}" for r in graph.pointing_at(name)]
        if pointing:
            raise Conflict(
                f"relations point at {name}: {', '.join(sorted(pointing))}; delete them first",
                "RELATION_EXISTS",
            )
        junctions = [
            junction
            for r in graph.of(name).values()
            if not r.reversed and r.junction is not None
            for junction in [self._registry.peek(r.junction)]
            if junction is not None
        ]
        # Foreign keys off on SQLite, whose DROP TABLE would otherwise delete every row
        # first, one by one, and be refused by a RESTRICT relation of the table to itself.
        async with self._db.rebuilding() as conn:
            for dropped in [*junctions, collection]:  # a junction points at its collection
                await self.drop(conn, dropped)
        for dropped in [*junctions, collection]:
            self._registry.remove(dropped.name)
        await self._permissions.load()
        for dropped in [*junctions, collection]:
            await self.published("delete", dropped)
        await self._events.publish(PermissionsChanged(role=None))
        return name

    async def drop(self, conn: AsyncConnection, collection: Collection) -> None:
        """Drop a collection's table, schema and permissions (in the caller's transaction)."""
        await tables.drop_table(conn, collection.table)
        await conn.execute(
            delete(system.schemas).where(system.schemas.c.collectionName == collection.name)
        )
        await self._permissions.delete_for_collection(conn, collection.name)

    async def published(self, action: Any, collection: Collection) -> None:
        """Tell every process (they reload their registry) that a schema changed."""
        item = self.describe(collection)
        await self._events.publish(
            ChangeEvent("schemas", action, collection.name, item, None, user_id=None)
        )


def _no_relationships(schema: object) -> None:
    if isinstance(schema, dict) and ("relationships" in schema or "junction" in schema):
        raise BadRequest(
            "relationships (and M2M junctions) are written through "
            "/schemas/{collection}/relationships",
            "USE_RELATIONSHIPS_ROUTE",
        )


def _not_a_junction(collection: Collection, what: str) -> None:
    if junction_keys(collection.definition):
        raise BadRequest(
            f"{collection.name} is the junction of an M2M relation; it is {what} with the "
            "relation only (/schemas/{collection}/relationships)",
            "JUNCTION_COLLECTION",
        )


def _structure(spec: FieldSpec) -> tuple[Any, ...]:
    return tuple(getattr(spec, attr) for attr in _STRUCTURAL)
