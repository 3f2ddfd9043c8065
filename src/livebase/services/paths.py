"""Paths through relations in a query: ``author.name`` in a ``filter`` or a ``sort`` (SPEC §14).

A path is relation names joined by dots and ending with a field of the last
related collection (``author.company.name``), at most ``MAX_DEPTH`` hops.
In a filter or a sort it may only go through to-one relations whose key is
on the near side (an M2O, or an O2O where it was declared): each hop then
names at most one related item. O2M and M2M lists are for ``fields`` only
(``services/expansion.py``).

Each hop is read under the caller's read scope of the related collection,
exactly as a direct read of it would be: its permission condition applies,
and the field at the end must be one the caller may read there (403
otherwise, as for a field of the collection itself). In SQL a path is a
correlated scalar subquery per hop, which is NULL when the related item is
missing or unreadable; the Python back end (``filters.to_predicate``) sees an
item whose relation is ``None`` the same way. So every operator treats "no
readable author" as it treats a NULL field, on both back ends.

Permission conditions (stored rules) never take paths: they are parsed
without a :class:`Reach`, so a dotted name is an unknown field there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from livebase.services import filters
from livebase.services.errors import BadRequest, Forbidden
from livebase.services.permissions import Scope
from livebase.services.relations import MAX_DEPTH, RelationGraph
from livebase.storage.kinds import FieldKind
from livebase.storage.model import Collection, Relation

MAX_PATH_CHARS = 200


class PathError(BadRequest):
    code = "INVALID_PATH"


@dataclass(frozen=True)
class Reach:
    """What one reader reaches through relations: the relations, the collections they
    lead to, and the reader's read scope on each (None: no read permission)."""

    relations: RelationGraph
    collection: Callable[[str], Collection | None]
    scope: Callable[[Collection], Scope | None]

    def hop(self, source: Collection, name: str) -> tuple[Relation, Collection] | None:
        """The relation ``name`` of ``source`` and the collection it leads to, if any."""
        relation = self.relations.find(source.name, name)
        if relation is None:
            return None
        target = self.collection(relation.target)
        return None if target is None else (relation, target)


def segments(path: str, what: str) -> list[str]:
    """A dotted path's names; 400 for an empty name, ``*`` before the end, too long or deep."""
    if len(path) > MAX_PATH_CHARS:
        raise PathError(f"{what}: a path is limited to {MAX_PATH_CHARS} characters")
    parts = path.split(".")
    if any(not part for part in parts):
        raise PathError(f"{what}: {path[:80]!r} has an empty name between dots")
    if "*" in parts[:-1]:
        raise PathError(f"{what}: '*' may only end a path, not {path[:80]!r}")
    if len(parts) - 1 > MAX_DEPTH:
        raise PathError(f"{what}: {path[:80]!r} goes more than {MAX_DEPTH} relations deep")
    return parts


def relation_of(
    reach: Reach | None, source: Collection, name: str, path: str, what: str
) -> tuple[Relation, Collection]:
    """The hop ``name`` of a path from ``source``; 400 if it is no relation."""
    found = reach.hop(source, name) if reach is not None else None
    if found is None:
        if name in source.kinds:
            raise BadRequest(
                f"{what}: {path[:80]!r} goes through {name!r}, a field of {source.name}, "
                "not a relation",
                "UNKNOWN_FIELD",
            )
        raise BadRequest(f"{source.name} has no field or relation {name!r}", "UNKNOWN_FIELD")
    return found


def relation_readable(scope: Scope, relation: Relation) -> bool:
    """Whether ``scope`` lets its holder follow ``relation``: its name is a field of
    the read permission (services/links.py counts it as one), or so is its key."""
    if scope.field_allowed(relation.name):
        return True
    return relation.key_here and scope.field_allowed(relation.foreign_key or "")


@dataclass(frozen=True)
class Step:
    relation: Relation  # a to-one relation whose foreign key is on the near side
    target: Collection
    scope: Scope  # the reader's read scope on ``target``


@dataclass(frozen=True)
class Path:
    """A filter or sort path resolved: its hops and the field it ends at."""

    steps: tuple[Step, ...]
    field: str

    @property
    def kind(self) -> FieldKind:
        return self.steps[-1].target.kinds[self.field]


def resolve(
    collection: Collection, scope: Scope, reach: Reach | None, path: str, what: str
) -> Path:
    """Check a filter or sort path read from ``collection`` under ``scope``.

    400 for what is not a relation or not a field, a hop through an O2M, M2M or
    the back of an O2O, or a path too long; 403 for a foreign key or a final
    field the reader may not read, or a related collection it may not read.
    """
    parts = segments(path, what)
    if parts[-1] == "*":
        raise PathError(f"{what}: {path[:80]!r} must end with a field, not '*'")
    source, source_scope = collection, scope
    steps: list[Step] = []
    for name in parts[:-1]:
        relation, target = relation_of(reach, source, name, path, what)
        if not relation.key_here:
            raise PathError(
                f"{what}: {path[:80]!r} goes through {name!r}, a {relation.kind.value} "
                "relation; filter and sort paths go through M2O (and declared O2O) "
                "relations only"
            )
        assert reach is not None and relation.foreign_key is not None
        if not relation_readable(source_scope, relation):
            raise Forbidden(f"you may not read relation {name!r} of {source.name}")
        target_scope = reach.scope(target)
        if target_scope is None:
            raise Forbidden(f"you may not read items of {target.name} ({what} {path[:80]!r})")
        steps.append(Step(relation, target, target_scope))
        source, source_scope = target, target_scope
    field = parts[-1]
    if field not in source.kinds:
        raise BadRequest(f"{source.name} has no field {field!r}", "UNKNOWN_FIELD")
    if not source_scope.field_allowed(field):
        raise Forbidden(f"you may not read field {field!r} of {source.name} ({what})")
    return Path(tuple(steps), field)


def kinds_with_paths(
    collection: Collection, scope: Scope, reach: Reach | None, what: str
) -> Callable[[str], FieldKind | None]:
    """The kind of a field or path of a filter, for :func:`filters.parse`; checks paths."""
    kinds = collection.kinds

    def kind_of(name: str) -> FieldKind | None:
        if "." not in name:
            return kinds.get(name)
        return resolve(collection, scope, reach, name, what).kind

    return kind_of


def value_of(path: Path, outer: FromClause, dialect: str) -> ColumnElement[Any]:
    """The value at the end of ``path`` for the row of ``outer``: one scalar subquery
    per hop, NULL when a related item is missing or unreadable."""
    step = path.steps[0]
    inner = step.target.table.alias()
    rest = Path(path.steps[1:], path.field)
    value = inner.c[path.field] if not rest.steps else value_of(rest, inner, dialect)
    assert step.relation.foreign_key is not None
    readable = filters.to_sql(step.scope.condition, inner.c, dialect)
    key = inner.c[step.target.primary_key]
    found = sa.select(value).where(key == outer.c[step.relation.foreign_key], readable)
    return found.scalar_subquery()


class Columns:
    """The columns of a collection's table, and the values of filter and sort paths
    from it (what :func:`filters.to_sql` and the sort read)."""

    def __init__(
        self, collection: Collection, scope: Scope, reach: Reach | None, dialect: str
    ) -> None:
        self._collection = collection
        self._scope = scope
        self._reach = reach
        self._dialect = dialect

    def __getitem__(self, name: str) -> ColumnElement[Any]:
        table = self._collection.table
        if "." not in name:
            return table.c[name]
        path = resolve(self._collection, self._scope, self._reach, name, "filter")
        return value_of(path, table, self._dialect)
