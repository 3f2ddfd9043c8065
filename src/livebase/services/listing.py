"""Listing any collection, system ones included, the same way.

``/items``, ``/files`` and ``/notifications`` all list rows through
:func:`read_list`, so a filter, sort, search or field list is held to the
caller's read scope in one place: naming a field the caller may not read is
a 403, never a silent oracle on its values (``startsWith`` one character at
a time would otherwise recover a hidden field).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from livebase.services import filters, paths
from livebase.services.errors import BadRequest, Forbidden
from livebase.services.expansion import NOTHING, Expansion, split
from livebase.services.paths import Reach
from livebase.services.permissions import Scope
from livebase.services.query import Query
from livebase.storage.database import Database
from livebase.storage.kinds import KINDS
from livebase.storage.model import Collection

Row = dict[str, Any]
Order = Sequence[tuple[str, bool]]  # (field, descending)


def readable(collection: Collection, scope: Scope) -> list[str]:
    """The fields of ``collection`` that ``scope`` lets its holder see."""
    return [f for f in collection.visible_fields if scope.field_allowed(f)]


def check_readable(collection: Collection, scope: Scope, names: Iterable[str], what: str) -> None:
    """Refuse a name that is not a field (400) or not readable in ``scope`` (403)."""
    for name in names:
        if name not in collection.kinds:
            raise BadRequest(f"{collection.name} has no field {name!r}", "UNKNOWN_FIELD")
        if not scope.field_allowed(name):
            raise Forbidden(f"you may not read field {name!r} of {collection.name} ({what})")


def selected_fields(collection: Collection, scope: Scope, requested: list[str] | None) -> list[str]:
    """The columns to answer: the requested ones (and the key), or every readable one."""
    if not requested or "*" in requested:
        return readable(collection, scope)
    check_readable(collection, scope, requested, "fields")
    return list(dict.fromkeys([collection.primary_key, *requested]))


def _user_filter(
    collection: Collection, scope: Scope, reach: Reach | None, raw: Any
) -> filters.Node:
    # Paths are checked as the parser meets them (paths.resolve), fields here.
    kinds = paths.kinds_with_paths(collection, scope, reach, "filter")
    node = filters.parse(raw, collection.kinds, paths=kinds)
    own = sorted(name for name in filters.fields_of(node) if "." not in name)
    check_readable(collection, scope, own, "filter")
    return node


def _search(collection: Collection, scope: Scope, text: str | None) -> filters.Node:
    if not text:
        return filters.TRUE
    searchable = [
        name for name in readable(collection, scope) if KINDS[collection.fields[name].kind].searched
    ]
    if not searchable:
        return filters.Compare(collection.primary_key, "in", ())
    # Through the parser, so that the text is checked like any filter value.
    return filters.parse({"OR": [{f: {"iLike": text}} for f in searchable]}, collection.kinds)


def _sort(collection: Collection, scope: Scope, reach: Reach | None, sort: Order) -> Order:
    check_readable(collection, scope, [f for f, _ in sort if "." not in f], "sort")
    for name, _ in sort:
        if "." in name:
            kind = paths.resolve(collection, scope, reach, name, "sort").kind
        else:
            kind = collection.fields[name].kind
        if not KINDS[kind].sortable:
            raise BadRequest(f"cannot sort by {kind.value} field {name!r}")
    return sort


def _ordered(
    statement: Select[Any], columns: paths.Columns, collection: Collection, order: Order
) -> Select[Any]:
    table = collection.table
    for field, descending in order:
        column = columns[field]
        # NULLs sort as the largest value, on SQLite as on PostgreSQL.
        statement = statement.order_by(
            column.desc().nulls_first() if descending else column.asc().nulls_last()
        )
    # The key last, so that pages never overlap or skip a row.
    return statement.order_by(table.c[collection.primary_key])


@dataclass(frozen=True)
class Plan:
    """A list query checked against a read scope: what to select, where, in which order."""

    collection: Collection
    fields: list[str]  # the collection's own fields answered
    condition: filters.Node  # the caller's filter and search, and the scope's condition
    order: Order
    expansion: Expansion = NOTHING  # the relations answered with each item (fields paths)
    scope: Scope | None = None  # what filter and sort paths start from
    reach: Reach | None = None  # ... and reach through

    @property
    def read(self) -> list[str]:
        """The columns read: the fields answered and the keys relations start from."""
        return list(dict.fromkeys([*self.fields, *self.expansion.keys(self.collection)]))

    def columns(self, dialect: str) -> paths.Columns:
        scope = self.scope if self.scope is not None else Scope(None, filters.TRUE)
        return paths.Columns(self.collection, scope, self.reach, dialect)

    def where(self, dialect: str) -> Any:
        return filters.to_sql(self.condition, self.columns(dialect), dialect)

    def statement(self, dialect: str) -> Select[Any]:
        table = self.collection.table
        selected = select(*(table.c[f] for f in self.read)).where(self.where(dialect))
        return _ordered(selected, self.columns(dialect), self.collection, self.order)

    async def expand(self, conn: Any, dialect: str, rows: list[Row]) -> None:
        """Answer ``rows`` (read by :meth:`statement`) with their related items."""
        await self.expansion.fill(conn, dialect, rows, self.fields)


def plan(
    collection: Collection,
    scope: Scope,
    query: Query,
    default_order: Order = (),
    reach: Reach | None = None,
) -> Plan:
    """Check ``query`` against ``scope`` (400 for what is not a field or not allowed,
    403 for a field the scope may not read) and plan its statement. With ``reach``,
    ``fields``, ``filter`` and ``sort`` may hold paths through relations."""
    own, expansion = split(collection, scope, reach, query.fields)
    fields = selected_fields(collection, scope, own)
    condition = filters.and_(
        _user_filter(collection, scope, reach, query.filter),
        scope.condition,
        _search(collection, scope, query.search),
    )
    order = [*_sort(collection, scope, reach, query.sort), *default_order]
    return Plan(collection, fields, condition, order, expansion, scope, reach)


async def read_list(
    db: Database,
    collection: Collection,
    scope: Scope,
    query: Query,
    default_order: Order = (),
    reach: Reach | None = None,
) -> tuple[list[Row], int]:
    """Rows of ``collection`` in ``scope`` matching ``query``, and how many match in all.

    Args:
        db: the database to read.
        collection: what to list.
        scope: the caller's read scope: which fields it sees and which rows.
        query: the caller's filter, fields, sort, search and paging, checked here.
        default_order: the order after the caller's own sort (before the key).
        reach: the relations the caller may follow (paths), and its scopes there.
    """
    planned = plan(collection, scope, query, default_order, reach)
    statement = planned.statement(db.dialect)
    if query.limit is not None:
        statement = statement.limit(query.limit)
    if query.offset:
        statement = statement.offset(query.offset)
    async with db.connect() as conn:
        rows = [dict(row) for row in (await conn.execute(statement)).mappings()]
        await planned.expand(conn, db.dialect, rows)
        if query.limit is None and not query.offset:
            return rows, len(rows)
        table = collection.table
        where = planned.where(db.dialect)
        total = await conn.scalar(select(func.count()).select_from(table).where(where))
    return rows, int(total or 0)
