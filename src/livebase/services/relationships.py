"""Writing relations: ``POST`` and ``DELETE /schemas/{c}/relationships`` (SPEC §14).

The rules of a relation request, BAASIX's ``{name, type, target, alias?,
onDelete?, through?}``, and the changes it makes: an M2O or O2O adds the
foreign key field ``{name}_Id`` (a real foreign key with an index, unique
for an O2O) to the collection holding it; an M2M creates its junction
collection; an O2M is stored as the M2O it reverses. Every refusal comes
before anything is written. ``services/relations.py`` says how relations
are stored and read back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.services.accountability import Accountability, require_admin
from livebase.services.definitions import check_written, parse_definition
from livebase.services.errors import BadRequest, Conflict, NotFound, object_with
from livebase.services.events import EventBus, PermissionsChanged
from livebase.services.names import check_name, check_new_collection_name, check_new_field_name
from livebase.services.permissions import PermissionService
from livebase.services.registry import CollectionRegistry, make_collection
from livebase.services.relations import described, junction_keys, stored_entry
from livebase.services.schemas import SchemaService
from livebase.storage import capture, system, tables
from livebase.storage.database import Database
from livebase.storage.model import Collection, ForeignKey, OnDelete, Relation, RelationKind
from livebase.storage.types import utcnow

_BODY_KEYS = frozenset({"name", "type", "target", "alias", "onDelete", "through"})
# The system collections a relation may point at; none may hold one.
SYSTEM_TARGETS = frozenset({"users", "files"})


def _refused(message: str, code: str = "INVALID_RELATION") -> BadRequest:
    return BadRequest(message, code)


def _key_field(collection: Collection, **options: Any) -> dict[str, Any]:
    """A field holding ``collection``'s primary key: of the same type and length."""
    spec = collection.fields[collection.primary_key]
    field: dict[str, Any] = {"type": spec.kind.value, **options}
    if spec.length is not None:
        field["length"] = spec.length
    return field


class RelationService:
    def __init__(
        self,
        db: Database,
        registry: CollectionRegistry,
        schemas: SchemaService,
        permissions: PermissionService,
        events: EventBus,
    ) -> None:
        self._db = db
        self._registry = registry
        self._schemas = schemas
        self._permissions = permissions
        self._events = events

    # -- creating ------------------------------------------------------------------------

    async def create(self, who: Accountability, name: str, body: object) -> dict[str, Any]:
        """Add a relation from collection ``name``; the relation as ``name`` sees it."""
        require_admin(who)
        await self._registry.load()  # every collection's relations, as stored now
        here = await self._registry.get(name)
        asked, relation, holder, target = self._requested(here, body)
        if relation.kind is RelationKind.M2M:
            await self._create_m2m(relation, holder, target)
        else:
            await self._create_to_one(relation, holder, target)
        seen_from_here = self._registry.relations.find(here.name, asked)
        assert seen_from_here is not None
        return described(seen_from_here)

    def _requested(
        self, here: Collection, body: object
    ) -> tuple[str, Relation, Collection, Collection]:
        """The name asked for, the relation to store, the collection holding it and its
        target; 400 if refused."""
        body = object_with(body, _BODY_KEYS, "body")
        raw_type = body.get("type")
        if raw_type not in {kind.value for kind in RelationKind}:
            raise _refused(
                f"type must be one of {', '.join(k.value for k in RelationKind)}",
                "INVALID_RELATION_TYPE",
            )
        kind = RelationKind(str(raw_type))
        name = asked = check_name(body.get("name"), "relation")
        alias = body.get("alias")
        if alias is not None:
            alias = check_name(alias, "alias")
        target = self._target(body.get("target"))
        on_delete = self._on_delete(kind, body.get("onDelete"))
        holder = here
        if kind is RelationKind.O2M:
            if alias is None:
                raise _refused("an O2M needs the alias: the name of its M2O on the target")
            # Stored as the M2O it reverses, on the collection holding the keys.
            holder, target, name, alias, kind = target, here, alias, name, RelationKind.M2O
        self._may_hold(holder)
        if kind is RelationKind.M2M:
            junction, source_key, target_key = self._junction(holder, name, target, body)
            relation = Relation(
                name, kind, holder.name, target.name, OnDelete.CASCADE, alias,
                junction=junction, junction_source=source_key, junction_target=target_key,
            )  # fmt: skip
        elif body.get("through") is not None:
            raise _refused("through names an M2M's junction; this is not an M2M")
        else:
            key = check_name(f"{name}_Id", "foreign key field")
            relation = Relation(
                name, kind, holder.name, target.name, on_delete, alias, foreign_key=key
            )
        self._names_free(relation, holder, target)
        return asked, relation, holder, target

    def _target(self, raw: object) -> Collection:
        target = self._registry.peek(raw) if isinstance(raw, str) else None
        if target is None or target.name in system.INTERNAL:
            raise _refused(f"target: no collection {raw!r}", "UNKNOWN_TARGET")
        if target.system and target.name not in SYSTEM_TARGETS:
            raise _refused(
                f"target: {target.name} is a system collection; of those, relations may "
                f"point at {' and '.join(sorted(SYSTEM_TARGETS))} only",
                "UNKNOWN_TARGET",
            )
        if junction_keys(target.definition):
            raise _refused(f"target: {target.name} is an M2M junction", "UNKNOWN_TARGET")
        return target

    @staticmethod
    def _on_delete(kind: RelationKind, raw: object) -> OnDelete:
        if raw is None:
            return OnDelete.SET_NULL
        if kind is RelationKind.M2M:
            raise _refused("onDelete: an M2M's links always go with either item")
        if raw not in {rule.value for rule in OnDelete}:
            raise _refused(f"onDelete must be one of {', '.join(r.value for r in OnDelete)}")
        return OnDelete(str(raw))

    @staticmethod
    def _may_hold(holder: Collection) -> None:
        if holder.system:
            raise _refused(
                f"{holder.name} is a system collection: its table takes no relation keys "
                "(a relation to it is stored on the other collection, as an M2O)",
                "SYSTEM_COLLECTION",
            )
        if junction_keys(holder.definition):
            raise _refused(f"{holder.name} is an M2M junction", "JUNCTION_COLLECTION")

    def _junction(
        self, holder: Collection, name: str, target: Collection, body: dict[str, object]
    ) -> tuple[str, str, str]:
        through = body.get("through")
        if through is None:
            through = f"{holder.name}_{name}_junction"
            if len(through) > 63:
                raise _refused(f"the junction name {through!r} is too long: give through")
        junction = check_new_collection_name(through)
        if self._registry.taken(junction):
            raise Conflict(f"through: collection {junction!r} exists already", "COLLECTION_EXISTS")
        source_key = f"{holder.name}_id"
        # A relation of a collection with itself: its two keys need two names.
        target_key = f"{target.name}_id" if target.name != holder.name else f"related_{name}_id"
        for key in (source_key, target_key):
            check_name(key, "junction key field")
        return junction, source_key, target_key

    def _names_free(self, relation: Relation, holder: Collection, target: Collection) -> None:
        """The relation's name, key field and alias clash with no field or relation."""
        graph = self._registry.relations
        wanted = [(holder, relation.name, "name")]
        if relation.foreign_key is not None:
            wanted.append((holder, relation.foreign_key, "foreign key field"))
        if relation.alias is not None:
            wanted.append((target, relation.alias, "alias"))
        seen: set[tuple[str, str]] = set()
        for collection, name, what in wanted:
            check_new_field_name(name)
            lowered = name.lower()
            taken = [*collection.fields, *graph.of(collection.name)]
            if (collection.name, lowered) in seen or any(t.lower() == lowered for t in taken):
                raise _refused(
                    f"{what} {name!r} is taken: {collection.name} has a field or relation "
                    "of that name",
                    "RELATION_NAME_TAKEN",
                )
            seen.add((collection.name, lowered))

    async def _create_to_one(
        self, relation: Relation, holder: Collection, target: Collection
    ) -> None:
        assert relation.foreign_key is not None
        one = relation.kind is RelationKind.O2O
        field = _key_field(target, **({"unique": True} if one else {}))
        updated = self._with(holder, relation, {relation.foreign_key: field})
        key = ForeignKey(relation.foreign_key, target.name, on_delete=relation.on_delete)
        async with self._db.transaction() as conn:
            await tables.add_foreign_key(conn, updated.table, key)
            await capture.capture(conn, updated)  # SQLite's triggers list the columns
            await _store(conn, updated)
        self._registry.put(updated)
        await self._schemas.published("update", updated)

    async def _create_m2m(self, relation: Relation, holder: Collection, target: Collection) -> None:
        assert relation.junction and relation.junction_source and relation.junction_target
        links = {relation.junction_source: holder.name, relation.junction_target: target.name}
        fields = {
            relation.junction_source: _key_field(holder, allowNull=False),
            relation.junction_target: _key_field(target, allowNull=False),
        }
        schema = {"junction": links, "timestamps": False, "fields": fields}
        junction = make_collection(relation.junction, parse_definition(schema))
        updated = self._with(holder, relation, {})
        now = utcnow()
        async with self._db.transaction() as conn:
            await tables.create_table(conn, junction.table)
            await capture.capture(conn, junction)
            await conn.execute(
                insert(system.schemas).values(
                    collectionName=junction.name,
                    schema=junction.definition,
                    createdAt=now,
                    updatedAt=now,
                )
            )
            await _store(conn, updated)
        self._registry.put(junction)
        self._registry.put(updated)
        await self._schemas.published("create", junction)
        await self._schemas.published("update", updated)

    @staticmethod
    def _with(holder: Collection, relation: Relation, fields: dict[str, Any]) -> Collection:
        raw = holder.definition
        relationships = {**(raw.get("relationships") or {}), relation.name: stored_entry(relation)}
        schema = {
            **raw,
            "fields": {**raw.get("fields", {}), **fields},
            "relationships": relationships,
        }
        definition = parse_definition(schema)
        check_written(definition, fields, holder.fields)
        return make_collection(holder.name, definition)

    # -- deleting ------------------------------------------------------------------------

    async def delete(self, who: Accountability, name: str, relation_name: str) -> str:
        """Remove a stored relation of ``name``: its key field, or its junction."""
        require_admin(who)
        await self._registry.load()
        here = await self._registry.get(name)
        relation = self._registry.relations.find(here.name, relation_name)
        if relation is None:
            raise NotFound(f"{here.name} has no relation {relation_name!r}", "RELATION_NOT_FOUND")
        if relation.reversed:
            raise _refused(
                f"{here.name}.{relation_name} is the reverse of relation "
                f"{relation.target}.{relation.alias}: DELETE "
                f"/schemas/{relation.target}/relationships/{relation.alias}",
                "RELATION_IS_REVERSE",
            )
        raw = here.definition
        relationships = dict(raw.get("relationships") or {})
        relationships.pop(relation.name, None)
        fields = dict(raw.get("fields", {}))
        if relation.foreign_key is not None:
            fields.pop(relation.foreign_key, None)
        schema = {**raw, "fields": fields, "relationships": relationships}
        if not relationships:
            schema.pop("relationships")
        updated = make_collection(here.name, parse_definition(schema))
        if relation.foreign_key is not None:
            await self._drop_key(here, updated, relation.foreign_key)
        else:
            await self._drop_junction(updated, relation)
        return relation.name

    async def _drop_key(self, current: Collection, updated: Collection, key: str) -> None:
        async with self._db.rebuilding() as conn:
            await capture.release(conn, current)  # SQLite's name the column
            await tables.drop_foreign_key(conn, updated.table, key)
            await capture.capture(conn, updated)
            await _store(conn, updated)
        self._registry.put(updated)
        await self._schemas.published("update", updated)

    async def _drop_junction(self, updated: Collection, relation: Relation) -> None:
        junction = self._registry.peek(relation.junction or "")
        async with self._db.transaction() as conn:
            if junction is not None:
                await self._schemas.drop(conn, junction)
            await _store(conn, updated)
        self._registry.put(updated)
        if junction is not None:
            self._registry.remove(junction.name)
            await self._permissions.load()
            await self._schemas.published("delete", junction)
            await self._events.publish(PermissionsChanged(role=None))
        await self._schemas.published("update", updated)


async def _store(conn: AsyncConnection, collection: Collection) -> None:
    await conn.execute(
        update(system.schemas)
        .where(system.schemas.c.collectionName == collection.name)
        .values(schema=collection.definition, updatedAt=utcnow())
    )
