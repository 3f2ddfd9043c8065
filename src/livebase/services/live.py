"""Live queries: a query's result at a change-log position, and the rules of its changes.

A client subscribes to ``{collection, filter?, fields?, sort?, limit?}``
(docs/realtime.md, "Live queries"). Everything a subscription is checked
against is what ``GET /items/{c}`` checks: the same parsing of the query,
the same ``items.read`` hooks, the same read scope and 403s
(:func:`listing.plan`). What is new here:

- the **snapshot** is read in one database snapshot with the change log's
  newest position (:meth:`LiveQueryService.snapshot`): every change after
  that position is one the subscriber is told of, none before it;
- a subscription's **identity** is what it asks for (collection, filter
  after hooks, fields): identical subscriptions share their id, and the
  realtime layer does their work once;
- when a subscriber's rights change, :meth:`LiveQueryService.readability`
  reads which items became readable or unreadable, again at a position.

Which change is which event (``subscription.added`` / ``changed`` /
``removed``) is :func:`transition`'s, from the item's state before and after.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from livebase import encoding
from livebase.services import filters, listing, paths, query
from livebase.services.accountability import Accountability
from livebase.services.errors import BadRequest, Forbidden
from livebase.services.events import ChangeEvent
from livebase.services.items import ItemsService
from livebase.services.permissions import PermissionService, Scope
from livebase.services.registry import CollectionRegistry
from livebase.services.relay import ChangeRelay
from livebase.storage.changelog import BATCH, newest_position
from livebase.storage.database import Database
from livebase.storage.model import Collection

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A subscription is kept (and stored for recovery) as asked: its size is bounded.
MAX_REQUEST_BYTES = 16_384
REQUEST_KEYS = ("collection", "filter", "fields", "sort", "limit")
# Collections of the system whose changes are item events (the others have their own).
LIVE_SYSTEM_COLLECTIONS = frozenset({"users"})

Row = dict[str, Any]
Transition = Literal["subscription.added", "subscription.changed", "subscription.removed"]
NOTHING: filters.Node = filters.Or(())  # the condition of a scope that reads nothing


@dataclass(frozen=True)
class LiveQuery:
    """A subscription as asked, after the ``items.read`` hooks (not yet checked
    against anyone's scope: :meth:`LiveQueryService.plan` does that)."""

    collection: str
    query: query.Query  # filter and fields: the subscription; sort and limit: its snapshot
    request: Mapping[str, Any]  # as the client sent it: a recovery asks again with it

    @property
    def id(self) -> str:
        """The same for every identical subscription (so their work is shared)."""
        fields = self.query.fields
        every = not fields or "*" in fields  # as listing.selected_fields reads them
        what = [self.collection, self.query.filter or None, None if every else fields]
        canonical = orjson.dumps(what, default=str, option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(canonical, digest_size=12).hexdigest()


@dataclass(frozen=True)
class Readability:
    """Items whose readability changed with a subscriber's rights, at ``position``."""

    added: list[Row]  # now readable (and matching), cut to the subscription's fields
    removed: list[Any]  # keys of items no longer readable
    position: int


class LiveQueryService:
    def __init__(
        self,
        db: Database,
        registry: CollectionRegistry,
        permissions: PermissionService,
        items: ItemsService,
        relay: ChangeRelay,
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        self._db = db
        self._relay = relay
        self._registry = registry
        self._permissions = permissions
        self._items = items
        self._excluded = excluded  # SOCKET_EXCLUDE_COLLECTIONS

    async def prepare(self, who: Accountability, raw: object) -> tuple[LiveQuery, listing.Plan]:
        """A subscribe request checked as ``GET /items/{c}`` checks its query: the
        subscription, and its plan under ``who``'s scope now."""
        request = _request(raw)
        name = request["collection"]
        collection, scope, asked = await self._items.reading(name, _query(request), who)
        if not self.live(collection):
            raise BadRequest(f"{name} sends no realtime events", "NOT_REALTIME")
        planned = listing.plan(collection, scope, asked, reach=self.reach(who))
        _refuse_paths(planned)
        return LiveQuery(name, asked, request), planned

    def reach(self, who: Accountability) -> paths.Reach:
        return self._items.reach(who)

    def live(self, collection: Collection) -> bool:
        if collection.system and collection.name not in LIVE_SYSTEM_COLLECTIONS:
            return False
        return collection.realtime and collection.name not in self._excluded

    def scope(self, who: Accountability, live: LiveQuery) -> Scope | None:
        """``who``'s read scope on the subscription's collection now; None: none."""
        collection = self._registry.peek(live.collection)
        if collection is None:
            return None
        return self._permissions.scope(who, collection, "read")

    def plan(self, live: LiveQuery, scope: Scope | None, reach: paths.Reach | None) -> listing.Plan:
        """The subscription under ``scope``; raises the error subscribing now would
        get (the collection gone, a field no longer readable, no read at all)."""
        collection = self._registry.peek(live.collection)
        if collection is None or not self.live(collection):
            raise BadRequest(f"{live.collection} sends no realtime events", "NOT_REALTIME")
        if scope is None:
            raise Forbidden(f"you may not read items of {live.collection}")
        return listing.plan(collection, scope, live.query, reach=reach)

    async def expand(self, plan: listing.Plan, rows: list[Row]) -> None:
        """Answer ``rows`` (cut to ``plan.read``) with their related items, one query per
        hop for all of them, under the scopes ``plan`` was made with."""
        if not plan.expansion:
            return
        async with self._db.connect() as conn:
            await plan.expand(conn, self._db.dialect, rows)

    async def snapshot(self, live: LiveQuery, plan: listing.Plan) -> tuple[list[Row], int]:
        """The subscription's first result (sorted and limited as asked), and the
        change-log position it is the result at."""
        statement = plan.statement(self._db.dialect)
        limit = live.query.limit
        if limit is not None:
            statement = statement.limit(limit)
        async with self._db.snapshot() as conn:
            position = await newest_position(conn)
            rows = [dict(row) for row in (await conn.execute(statement)).mappings()]
            await plan.expand(conn, self._db.dialect, rows)
        return rows, position

    async def readability(
        self, before: listing.Plan | None, after: listing.Plan, most: int
    ) -> Readability | None:
        """Of the items matching the subscription's filter, those ``after`` reads and
        ``before`` did not (cut to ``after``'s fields), and the keys of those
        ``before`` read and ``after`` does not; None if more than ``most`` changed."""
        collection = after.collection
        table, dialect = collection.table, self._db.dialect
        key = table.c[collection.primary_key]
        old = before.condition if before is not None else NOTHING
        gained = sa.and_(_sql(after.condition, table, dialect), sa.not_(_true(old, table, dialect)))
        lost = sa.and_(_sql(old, table, dialect), sa.not_(_true(after.condition, table, dialect)))
        added_rows = sa.select(*(table.c[f] for f in after.read)).where(gained)
        removed_keys = sa.select(key).where(lost)
        async with self._db.snapshot() as conn:
            position = await newest_position(conn)
            added = [dict(r) for r in (await conn.execute(added_rows.limit(most + 1))).mappings()]
            removed = list((await conn.execute(removed_keys.limit(most + 1))).scalars())
            if len(added) + len(removed) > most:
                return None
            await after.expand(conn, dialect, added)
        return Readability(added, removed, position)

    async def changes(
        self, collection: str, after: int, until: int, most: int
    ) -> list[ChangeEvent] | None:
        """The logged changes to ``collection`` at positions in (``after``, ``until``],
        as the relay published them; None past ``most`` log entries."""
        events: list[ChangeEvent] = []
        position, read = after, 0
        while position < until:
            entries = await self._relay.log.read(position, BATCH)
            if not entries:
                break
            for entry in entries:
                if entry.position > until:
                    return events
                position = entry.position
                read += 1
                if read > most:
                    return None
                if entry.collection != collection:
                    continue
                try:
                    event = self._relay.event(entry)
                except Exception:
                    continue  # the relay skipped it too, and said so
                if isinstance(event, ChangeEvent):
                    events.append(event)
        return events


def transition(
    matches: filters.Predicate, before: Row | None, after: Row | None
) -> Transition | None:
    """What a change means to a subscription whose rows are those ``matches``:
    an item starting to match is added, one that matched and matches still is
    changed, one that stops matching (or is deleted) is removed."""
    was = before is not None and matches(before)
    now = after is not None and matches(after)
    if now:
        return "subscription.changed" if was else "subscription.added"
    return "subscription.removed" if was else None


def _sql(node: filters.Node, table: sa.Table, dialect: str) -> sa.ColumnElement[bool]:
    return filters.to_sql(node, table.c, dialect)


def _true(node: filters.Node, table: sa.Table, dialect: str) -> sa.ColumnElement[bool]:
    """``node`` is true (not false, not unknown): NOT of it leaves no NULL rows out."""
    return sa.case((_sql(node, table, dialect), sa.true()), else_=sa.false())


def _refuse_paths(planned: listing.Plan) -> None:
    """Relation paths are for a subscription's ``fields``: its filter is tested against
    each changed item alone, which holds no related items."""
    names = [*filters.fields_of(planned.condition), *(name for name, _ in planned.order)]
    for name in names:
        if "." in name:
            raise paths.PathError(
                f"live queries take relation paths in fields only, not in filter or sort "
                f"({name[:80]!r})"
            )


def _request(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest("subscribe takes an object: {collection, filter?, fields?, sort?, limit?}")
    unknown = [str(k)[:50] for k in raw if k not in REQUEST_KEYS]
    if unknown:
        raise BadRequest(
            f"subscribe takes {', '.join(REQUEST_KEYS)}; not {', '.join(map(repr, unknown))}"
        )
    if len(encoding.dumps(raw)) > MAX_REQUEST_BYTES:
        raise BadRequest(f"a subscription is limited to {MAX_REQUEST_BYTES} bytes of JSON")
    name = raw.get("collection")
    if not isinstance(name, str) or not name:
        raise BadRequest("collection must be a collection's name")
    return dict(raw)


def _query(request: Mapping[str, Any]) -> query.Query:
    """The query a subscribe request asks, read like ``GET /items``'s parameters."""
    raw_filter = request.get("filter")
    if raw_filter is not None and not isinstance(raw_filter, dict):
        raise filters.FilterError('filter must be an object, e.g. {"title": {"eq": "x"}}')
    fields = request.get("fields")
    if fields is not None:
        fields = query.field_names(fields, "fields")
    sort = request.get("sort")
    limit = request.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return query.Query(
        filter=raw_filter or None,
        fields=fields,
        sort=query.sort_order(sort) if sort else [],
        limit=limit,
    )
