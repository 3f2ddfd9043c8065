"""What an item write does through its relations: foreign keys checked, M2M links replaced.

A foreign key field (``author_Id``) is written like any field, by id; the
id must name an item of the target that the writer may read, else 422, the
same answer for a missing item and an unreadable one (so a write is no
oracle on which ids exist). The database's own foreign key catches an item
deleted meanwhile (``writer.py`` answers 422 for it too).

An M2M name in a body (``{"tags": [id, id]}``, either side of the
relation) replaces the item's links in its junction collection, in the
write's transaction: ids checked like a foreign key, duplicates dropped, at
most :data:`MAX_LINKS`. Only the links that change are written, so the
junction's change log holds exactly those. A relation name counts as a field
for the permission ``fields`` lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.services import filters
from livebase.services.accountability import Accountability
from livebase.services.errors import BadRequest, Forbidden, ValidationFailed
from livebase.services.operations import Item
from livebase.services.permissions import FULL, PermissionService, Scope
from livebase.services.registry import CollectionRegistry
from livebase.services.rows import row_values
from livebase.services.values import coerce_value
from livebase.storage.model import Collection, Relation, RelationKind

MAX_LINKS = 1000  # ids in one M2M list of one write


@dataclass(frozen=True)
class LinkWrite:
    """The related items one M2M relation of a written item must link to, and only those."""

    relation: Relation
    keys: list[Any]


class Links:
    def __init__(self, registry: CollectionRegistry, permissions: PermissionService) -> None:
        self._registry = registry
        self._permissions = permissions

    def touches(self, collection: Collection, data: Item) -> bool:
        """Whether a body writes a foreign key or a relation name (not the lone-create path)."""
        relations = self._registry.relations.of(collection.name)
        return any(
            name in data or (r.key_here and r.foreign_key in data) for name, r in relations.items()
        )

    def split(
        self, collection: Collection, scope: Scope, data: Item
    ) -> tuple[Item, list[LinkWrite]]:
        """The body without its M2M names, and the links those ask for."""
        relations = self._registry.relations.of(collection.name)
        if not relations or not any(name in data for name in relations):
            return data, []
        plain: Item = {}
        links = []
        for name, raw in data.items():
            relation = relations.get(name)
            if relation is None or name in collection.fields:
                plain[name] = raw
                continue
            if relation.kind is not RelationKind.M2M:
                raise BadRequest(_not_written(relation), "RELATION_NOT_WRITABLE")
            if not scope.field_allowed(name):
                raise Forbidden(f"you may not write field {name!r} of {collection.name}")
            links.append(LinkWrite(relation, self._keys(relation, raw)))
        return plain, links

    def _keys(self, relation: Relation, raw: object) -> list[Any]:
        if not isinstance(raw, list):
            raise BadRequest(f"field {relation.name}: an array of ids of {relation.target}")
        if len(raw) > MAX_LINKS:
            raise BadRequest(f"field {relation.name}: at most {MAX_LINKS} ids")
        target = self._target(relation)
        kind = target.fields[target.primary_key].kind
        keys = [coerce_value(kind, key, f"field {relation.name}") for key in raw]
        if any(key is None for key in keys):
            raise ValidationFailed(f"field {relation.name}: an id cannot be null")
        return list(dict.fromkeys(keys))

    async def check_keys(
        self, conn: AsyncConnection, collection: Collection, who: Accountability, values: Item
    ) -> None:
        """Every foreign key written names an item of its target that ``who`` may read."""
        for relation in self._registry.relations.of(collection.name).values():
            if not relation.key_here or relation.foreign_key is None:
                continue
            key = values.get(relation.foreign_key)
            if key is not None:
                await self._readable(conn, who, relation, relation.foreign_key, [key])

    async def replace(
        self, conn: AsyncConnection, who: Accountability, key: Any, links: list[LinkWrite]
    ) -> None:
        """Link item ``key`` to exactly the items of each write (adding and removing links)."""
        for link in links:
            relation = link.relation
            if link.keys:
                await self._readable(conn, who, relation, relation.name, link.keys)
            junction = self._registry.peek(relation.junction or "")
            assert junction is not None and relation.junction_source and relation.junction_target
            table = junction.table
            source, target = table.c[relation.junction_source], table.c[relation.junction_target]
            linked = set((await conn.execute(select(target).where(source == key))).scalars())
            gone = linked - set(link.keys)
            if gone:
                await conn.execute(delete(table).where(source == key, target.in_(gone)))
            new = [
                row_values(junction, FULL, {source.key: key, target.key: k}, who, creating=True)
                for k in link.keys
                if k not in linked
            ]
            if new:
                await conn.execute(insert(table), new)

    async def _readable(
        self, conn: AsyncConnection, who: Accountability, relation: Relation, where: str,
        keys: list[Any],
    ) -> None:  # fmt: skip
        target = self._target(relation)
        scope = self._permissions.scope(who, target, "read")
        found: int | None = 0
        if scope is not None:
            table = target.table
            condition = filters.to_sql(scope.condition, table.c, conn.dialect.name)
            found = await conn.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c[target.primary_key].in_(keys), condition)
            )
        if found != len(keys):
            raise related_item_missing(where, target.name)

    def _target(self, relation: Relation) -> Collection:
        target = self._registry.peek(relation.target)
        assert target is not None, relation
        return target


def related_item_missing(field: str, target: str) -> ValidationFailed:
    """The one answer for an id naming a missing item and one the writer may not read."""
    return ValidationFailed(
        f"field {field}: no item of {target} with that id (that you may read)",
        "RELATED_ITEM_NOT_FOUND",
    )


def _not_written(relation: Relation) -> str:
    if relation.key_here:
        return f"{relation.name} is a relation: write its key field {relation.foreign_key!r}"
    return (
        f"{relation.name} is the reverse of {relation.target}.{relation.alias}: "
        f"write {relation.foreign_key!r} of the {relation.target} items instead"
    )
