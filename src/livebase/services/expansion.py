"""Related items in an answer: ``fields`` paths such as ``author.name`` or ``tags.*`` (SPEC §14).

``fields=*,author.*`` answers each item with ``author`` as an object (M2O,
O2O) or ``null``; ``fields=tags.label`` with ``tags`` as a list (O2M, M2M)
of at most ``MAX_RELATED`` items, ordered by their primary key. Paths nest
up to ``MAX_DEPTH`` relations (``author.company.country.name``). A bare
relation name (``fields=author``) answers the related key (or the list of
keys), as Directus does; ask ``author.*`` for the object.

Every hop is read under the reader's own read scope of the related
collection, as a direct read of it would be: its permission condition
(``$CURRENT_USER`` resolved) leaves unreadable items out (``null`` for a
to-one relation), its fields cut what is shown (``*`` included; a named
field the reader may not read is cut too, never a 403, so one answer can mix
items of any readability), hidden fields never appear, and a collection the
reader may not read at all gives ``null`` or ``[]``. An M2M's junction
collection is plumbing: only the target's permission applies. ``items.read``
hooks run for the collection a request names, not for related collections.

No N+1: one query per hop per page (per ``CHUNK`` parents). A to-one hop whose
key is here reads ``WHERE pk IN (the distinct keys)``; a reverse hop ``WHERE
fk IN (the parents' keys)``; an M2M joins its junction to the target; lists
are capped per parent with ``ROW_NUMBER() OVER (PARTITION BY parent ORDER BY
pk)``. Nested hops start from the rows just read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.services import filters
from livebase.services.errors import BadRequest, Forbidden
from livebase.services.paths import PathError, Reach, relation_of, relation_readable, segments
from livebase.services.permissions import Scope
from livebase.services.relations import MAX_DEPTH, MAX_RELATED
from livebase.storage.model import Collection, Relation, RelationKind

Row = dict[str, Any]
CHUNK = 1000  # parents' keys in one IN list (both drivers cap bound parameters)
# Labels of the columns a hop reads besides the target's fields; field names
# start with a letter, so these never clash with one.
_PARENT = "__parent"
_RANK = "__rank"


@dataclass(frozen=True)
class Hop:
    """One relation expanded from the items of a collection."""

    relation: Relation
    scope: Scope | None  # the reader's read scope on the target; None: it reads nothing
    fields: tuple[str, ...]  # the target's fields shown
    children: tuple[Hop, ...]
    keys_only: bool  # a bare relation name: the related keys rather than objects
    source_key: str  # the primary key of the items it starts from
    target: Collection = field(compare=False, repr=False)
    junction: Collection | None = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.relation.name

    def described(self) -> tuple[Any, ...]:
        """What it shows, the same in every process (a recovery compares it)."""
        condition = None if self.scope is None else self.scope.condition
        children = tuple(child.described() for child in self.children)
        return (self.name, condition, self.fields, self.keys_only, children)

    @property
    def fetched(self) -> tuple[str, ...]:
        """The target's columns read: those shown and those its own hops need."""
        return tuple(dict.fromkeys([*self.fields, *needed_keys(self.target, self.children)]))


@dataclass(frozen=True)
class Expansion:
    """The relations a query expands from its collection's items (none: nothing to do)."""

    hops: tuple[Hop, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hops)

    def described(self) -> tuple[Any, ...]:
        return tuple(hop.described() for hop in self.hops)

    def keys(self, collection: Collection) -> list[str]:
        """The fields of ``collection``'s items its hops start from."""
        return needed_keys(collection, self.hops)

    async def fill(
        self, conn: AsyncConnection, dialect: str, rows: list[Row], shown: Sequence[str]
    ) -> None:
        """Add the related items to ``rows`` (read with :meth:`keys` too), then cut
        each row to ``shown`` and its relations."""
        if not self.hops:
            return
        await _fill(conn, dialect, self.hops, rows)
        _cut(rows, [*shown, *(hop.name for hop in self.hops)])

    def leave_out(self, rows: list[Row], shown: Sequence[str]) -> None:
        """What :meth:`fill` answers when the related items could not be read: each
        relation empty (``null`` or ``[]``), each row cut the same way."""
        for row in rows:
            for hop in self.hops:
                row[hop.name] = None if hop.relation.to_one else []
        _cut(rows, [*shown, *(hop.name for hop in self.hops)])


NOTHING = Expansion()


def needed_keys(collection: Collection, hops: Iterable[Hop]) -> list[str]:
    keys = []
    for hop in hops:
        relation = hop.relation
        if relation.key_here:
            assert relation.foreign_key is not None
            keys.append(relation.foreign_key)
        else:
            keys.append(collection.primary_key)
    return list(dict.fromkeys(keys))


# -- what is asked ----------------------------------------------------------------


def split(
    collection: Collection, scope: Scope, reach: Reach | None, requested: list[str] | None
) -> tuple[list[str] | None, Expansion]:
    """``fields`` as asked: the collection's own fields (its key alone if only
    relations were asked) and the relations to expand. 400 for a bad path."""
    if not requested:
        return requested, NOTHING
    own: list[str] = []
    paths: dict[str, list[str]] = {}
    for entry in requested:
        if "." in entry:
            first, _, rest = entry.partition(".")
            segments(entry, "fields")
            paths.setdefault(first, []).append(rest)
        elif (
            entry != "*"
            and entry not in collection.kinds
            and _is_relation(reach, collection, entry)
        ):
            paths.setdefault(entry, [])
        else:
            own.append(entry)
    if not paths:
        return own, NOTHING
    hops = tuple(_hop(collection, reach, name, rest, depth=1) for name, rest in paths.items())
    for hop in hops:
        if not relation_readable(scope, hop.relation):
            # As for a field named in ``fields`` that the reader may not read.
            raise Forbidden(f"you may not read relation {hop.name!r} of {collection.name}")
    return own or [collection.primary_key], Expansion(hops)


def _is_relation(reach: Reach | None, collection: Collection, name: str) -> bool:
    return reach is not None and reach.hop(collection, name) is not None


def _hop(
    source: Collection,
    reach: Reach | None,
    name: str,
    rest: list[str],
    depth: int,
    came_by: Relation | None = None,
) -> Hop:
    if depth > MAX_DEPTH:
        raise PathError(f"fields: a path goes more than {MAX_DEPTH} relations deep at {name!r}")
    relation, target = relation_of(reach, source, name, name, "fields")
    if came_by is not None and relation.goes_back(came_by):
        # author.messages.author... only reads again what the path came from.
        raise PathError(
            f"fields: {came_by.name}.{name} goes back the way it came (a cycle); "
            f"ask for the fields of {source.name} itself instead",
            "PATH_CYCLE",
        )
    assert reach is not None
    scope = reach.scope(target)
    junction = reach.collection(relation.junction) if relation.junction else None
    if relation.kind is RelationKind.M2M and junction is None:
        raise PathError(f"fields: the junction of {source.name}.{name} is missing")
    own: list[str] = []
    deeper: dict[str, list[str]] = {}
    for entry in rest:
        if "." in entry:
            first, _, more = entry.partition(".")
            deeper.setdefault(first, []).append(more)
        elif entry != "*" and entry not in target.kinds and _is_relation(reach, target, entry):
            deeper.setdefault(entry, [])
        else:
            own.append(entry)
    for entry in own:
        if entry != "*" and entry not in target.kinds:
            raise BadRequest(f"{target.name} has no field or relation {entry!r}", "UNKNOWN_FIELD")
    children = tuple(
        child
        for child in (
            _hop(target, reach, n, more, depth + 1, relation) for n, more in deeper.items()
        )
        # A relation the reader may not follow from a related item is cut, like a field.
        if scope is not None and relation_readable(scope, child.relation)
    )
    keys_only = not rest
    return Hop(
        relation=relation,
        scope=scope,
        fields=_shown(target, scope, own, keys_only),
        children=children,
        keys_only=keys_only,
        source_key=source.primary_key,
        target=target,
        junction=junction,
    )


def _shown(
    target: Collection, scope: Scope | None, own: list[str], keys_only: bool
) -> tuple[str, ...]:
    if scope is None:
        return ()
    if keys_only:
        return (target.primary_key,)
    names = target.visible_fields if "*" in own else own
    allowed = [n for n in names if scope.field_allowed(n)]
    return tuple(dict.fromkeys([target.primary_key, *allowed]))


# -- reading ----------------------------------------------------------------------


async def _fill(conn: AsyncConnection, dialect: str, hops: Sequence[Hop], rows: list[Row]) -> None:
    for hop in hops:
        if hop.scope is None:
            for row in rows:
                row[hop.name] = None if hop.relation.to_one else []
            continue
        related = await _read(conn, dialect, hop, rows)
        if hop.children and related:
            await _fill(conn, dialect, hop.children, related)
        _cut(related, [*hop.fields, *(child.name for child in hop.children)])
        if hop.keys_only:
            _keys_only(hop, rows)


def _cut(rows: list[Row], keep: Sequence[str]) -> None:
    wanted = set(keep)
    for row in rows:
        for name in [n for n in row if n not in wanted]:
            del row[name]


def _keys_only(hop: Hop, rows: list[Row]) -> None:
    key = hop.target.primary_key
    for row in rows:
        value = row[hop.name]
        if isinstance(value, list):
            row[hop.name] = [item[key] for item in value]
        else:
            row[hop.name] = value[key] if value is not None else None


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


async def _read(conn: AsyncConnection, dialect: str, hop: Hop, rows: list[Row]) -> list[Row]:
    """Read ``hop``'s related items of ``rows`` and set them on each row; the rows read."""
    relation, target = hop.relation, hop.target
    assert hop.scope is not None
    table = target.table
    readable = filters.to_sql(hop.scope.condition, table.c, dialect)
    columns = [table.c[name] for name in hop.fetched]
    if relation.key_here:
        assert relation.foreign_key is not None
        fk = relation.foreign_key
        keys = list(dict.fromkeys(row[fk] for row in rows if row.get(fk) is not None))
        by_key: dict[Any, Row] = {}
        pk = table.c[target.primary_key]
        for chunk in _chunks(keys):
            statement = sa.select(*columns).where(pk.in_(chunk), readable)
            for found in (await conn.execute(statement)).mappings():
                by_key[found[target.primary_key]] = dict(found)
        for row in rows:
            row[hop.name] = by_key.get(row.get(fk))
        return list(by_key.values())
    return await _read_reverse(conn, hop, rows, columns, readable)


async def _read_reverse(
    conn: AsyncConnection,
    hop: Hop,
    rows: list[Row],
    columns: Sequence[sa.ColumnElement[Any]],
    readable: sa.ColumnElement[bool],
) -> list[Row]:
    """An O2M, the back of an O2O, or an M2M: related items found by the parents' keys."""
    relation, target = hop.relation, hop.target
    table = target.table
    pk = table.c[target.primary_key]
    if relation.kind is RelationKind.M2M:
        assert hop.junction is not None and relation.junction_source and relation.junction_target
        links = hop.junction.table
        parent = links.c[relation.junction_source]
        source: sa.FromClause = links.join(table, links.c[relation.junction_target] == pk)
    else:
        assert relation.foreign_key is not None
        parent = table.c[relation.foreign_key]
        source = table
    parent_pk = hop.source_key
    keys = list(dict.fromkeys(row[parent_pk] for row in rows if row.get(parent_pk) is not None))
    found: dict[Any, list[Row]] = {}
    read: list[Row] = []
    for chunk in _chunks(keys):
        numbered = (
            sa.select(
                *columns,
                parent.label(_PARENT),
                sa.func.row_number().over(partition_by=parent, order_by=pk).label(_RANK),
            )
            .select_from(source)
            .where(parent.in_(chunk), readable)
            .subquery()
        )
        names = list(hop.fetched)
        statement = (
            sa.select(*(numbered.c[n] for n in names), numbered.c[_PARENT])
            .where(numbered.c[_RANK] <= MAX_RELATED)
            .order_by(numbered.c[_PARENT], numbered.c[target.primary_key])
        )
        for record in (await conn.execute(statement)).mappings():
            item = {n: record[n] for n in names}
            found.setdefault(record[_PARENT], []).append(item)
            read.append(item)
    for row in rows:
        items = found.get(row.get(parent_pk), [])
        if relation.to_one:
            row[hop.name] = items[0] if items else None
        else:
            row[hop.name] = items
    return read
