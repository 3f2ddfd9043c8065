"""The items service: permission-checked reads and writes of collection items.

Every write runs in one transaction and publishes one :class:`ChangeEvent`
per item after the commit; a write that fails anywhere publishes nothing.

The parts, one job each: ``operations`` (a request as operations),
``keys`` (primary keys as clients give them), ``rows`` (the values a write
stores: checks, defaults, stamps), ``writer`` (one operation against the
database, permission checks and the lone-create fast path included) and
``answers`` (what a writer gets back); reading lists is ``listing``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import select

from livebase.services import filters, listing
from livebase.services.accountability import Accountability
from livebase.services.answers import answer, readable
from livebase.services.errors import BadRequest, Forbidden, NotFound, ServiceError
from livebase.services.events import ChangeEvent
from livebase.services.hooks import HookRegistry
from livebase.services.keys import item_key
from livebase.services.locks import KeyedLocks
from livebase.services.operations import MAX_BULK, Item, Operation, body, entries
from livebase.services.paths import Reach
from livebase.services.permissions import Action as PermissionAction
from livebase.services.permissions import PermissionService, Scope
from livebase.services.query import Query
from livebase.services.registry import CollectionRegistry
from livebase.services.relay import ChangeRelay, logged
from livebase.services.versions import Precondition, Versioned
from livebase.services.writer import CollectionRules, ItemWriter
from livebase.storage import changelog
from livebase.storage.database import Database
from livebase.storage.model import Collection

__all__ = ["MAX_BULK", "CollectionRules", "Item", "ItemsService"]

_VERSION = "__livebase_version"  # the version's column in a read: field names start with a letter


class ItemsService:
    def __init__(
        self,
        db: Database,
        registry: CollectionRegistry,
        permissions: PermissionService,
        relay: ChangeRelay,
        hooks: HookRegistry | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._permissions = permissions
        self._relay = relay
        self._hooks = hooks or HookRegistry()
        self._locks = KeyedLocks()
        self._writer = ItemWriter(db, permissions, registry)

    def set_rules(self, collection: str, rules: CollectionRules) -> None:
        self._writer.rules[collection] = rules

    # -- reading ---------------------------------------------------------------

    async def read_many(
        self, name: str, query: Query, who: Accountability
    ) -> tuple[list[Item], int]:
        """Items matching ``query`` that ``who`` may read, and how many match in all."""
        collection, scope, query = await self.reading(name, query, who)
        return await listing.read_list(self._db, collection, scope, query, reach=self.reach(who))

    def reach(self, who: Accountability) -> Reach:
        """What ``who`` reaches through relations: each related collection under
        ``who``'s own read scope of it (services/expansion.py, services/paths.py)."""
        return Reach(
            self._registry.relations,
            self._registry.peek,
            lambda collection: self._permissions.scope(who, collection, "read"),
        )

    async def reading(
        self, name: str, query: Query, who: Accountability
    ) -> tuple[Collection, Scope, Query]:
        """What a read of ``name`` by ``who`` works with: the collection, ``who``'s read
        scope (403 without one) and ``query`` as the ``items.read`` hooks leave it.
        Live queries (``services/live.py``) start here too."""
        collection = await self._registry.get(name)
        scope = self._scope(who, collection, "read")
        if self._hooks.has(name, "items.read"):
            changed = await self._hooks.before(who, name, "items.read", asdict(query))
            query = _query_from_hook(changed)
        return collection, scope, query

    async def read_one(
        self, name: str, raw_key: object, who: Accountability, fields: list[str] | None = None
    ) -> Item:
        return (await self._read_one(name, raw_key, who, fields, versioned=False)).item

    async def read_versioned(
        self, name: str, raw_key: object, who: Accountability, fields: list[str] | None = None
    ) -> Versioned:
        """:meth:`read_one`, and the item's version (``services/versions.py``), read in
        the same statement so that both are of one moment; no version for a
        collection that has none."""
        return await self._read_one(name, raw_key, who, fields, versioned=True)

    async def _read_one(
        self,
        name: str,
        raw_key: object,
        who: Accountability,
        fields: list[str] | None,
        versioned: bool,
    ) -> Versioned:
        collection = await self._registry.get(name)
        scope = self._scope(who, collection, "read")
        planned = listing.plan(collection, scope, Query(fields=fields), reach=self.reach(who))
        key = item_key(collection, raw_key)
        table = collection.table
        condition = filters.to_sql(scope.condition, table.c, self._db.dialect)
        columns: list[Any] = [table.c[f] for f in planned.read]
        versioned = versioned and logged(collection)
        if versioned:
            version = changelog.version_of(self._db.dialect, name, key)
            columns.append(version.label(_VERSION))
        statement = select(*columns).where(table.c[collection.primary_key] == key, condition)
        async with self._db.connect() as conn:
            row = (await conn.execute(statement)).mappings().first()
            if row is None:
                raise NotFound(f"item {raw_key!r} not found in {name}", "ITEM_NOT_FOUND")
            item = dict(row)
            number = int(item.pop(_VERSION)) if versioned else None
            await planned.expand(conn, self._db.dialect, [item])
        return Versioned(item, number, related=bool(planned.expansion))

    # -- writing ---------------------------------------------------------------

    async def create(self, name: str, data: object, who: Accountability) -> Item:
        return (await self.create_versioned(name, data, who)).item

    async def create_versioned(self, name: str, data: object, who: Accountability) -> Versioned:
        """:meth:`create`, and the version this create gave the item."""
        return await self._write_one(name, who, Operation("create", data=body(data)))

    async def create_many(self, name: str, items: object, who: Accountability) -> list[Item]:
        ops = [Operation("create", data=body(entry, i)) for i, entry in enumerate(entries(items))]
        return (await self._write(name, who, ops, bulk=True))[0]

    async def update(
        self,
        name: str,
        raw_key: object,
        data: object,
        who: Accountability,
        precondition: Precondition | None = None,
    ) -> Item:
        """Update an item; with ``precondition``, only if its version is one it allows
        (:class:`PreconditionFailed`, 412, otherwise: nothing written)."""
        return (await self.update_versioned(name, raw_key, data, who, precondition)).item

    async def update_versioned(
        self,
        name: str,
        raw_key: object,
        data: object,
        who: Accountability,
        precondition: Precondition | None = None,
    ) -> Versioned:
        """:meth:`update`, and the version this update left the item at."""
        collection = await self._registry.get(name)
        key = item_key(collection, raw_key)
        op = Operation("update", key=key, data=body(data), precondition=precondition)
        return await self._write_one(name, who, op)

    async def update_many(self, name: str, items: object, who: Accountability) -> list[Item]:
        collection = await self._registry.get(name)
        ops = []
        for index, entry in enumerate(entries(items)):
            data = body(entry, index)
            if collection.primary_key not in data:
                raise BadRequest(f"item {index}: needs its {collection.primary_key!r}")
            key = item_key(collection, data[collection.primary_key], index)
            ops.append(Operation("update", key=key, data=data))
        return (await self._write(name, who, ops, bulk=True))[0]

    async def delete(
        self,
        name: str,
        raw_key: object,
        who: Accountability,
        precondition: Precondition | None = None,
    ) -> Any:
        """Delete an item; its key. With ``precondition``, as :meth:`update`."""
        collection = await self._registry.get(name)
        op = Operation("delete", key=item_key(collection, raw_key), precondition=precondition)
        await self._write_one(name, who, op)
        return op.key

    async def delete_many(self, name: str, keys: object, who: Accountability) -> list[Any]:
        collection = await self._registry.get(name)
        ops = [
            Operation("delete", key=item_key(collection, k, i)) for i, k in enumerate(entries(keys))
        ]
        await self._write(name, who, ops, bulk=True)
        return [op.key for op in ops]

    async def _write_one(self, name: str, who: Accountability, op: Operation) -> Versioned:
        items, version = await self._write(name, who, [op], bulk=False)
        return Versioned(items[0], version)

    async def _write(
        self, name: str, who: Accountability, ops: list[Operation], bulk: bool
    ) -> tuple[list[Item], int | None]:
        """Write ``ops`` in one transaction; the items as the writer may see them and,
        for one item not deleted that the writer may read, the version it now has
        (read in the transaction, so exactly this write's, whatever commits next)."""
        collection = await self._registry.get(name)
        if collection.read_only:
            raise Forbidden(f"{name} is written through its own routes, not /items")
        locked = [(name, op.key) for op in ops if op.key is not None]
        if len(set(locked)) != len(locked):
            raise BadRequest("the same item appears twice in one bulk request")
        ops = await self._before_hooks(name, who, ops)
        writer = self._writer
        async with self._locks.hold(locked):
            events: list[ChangeEvent] = []
            prefetched = None
            version = None
            alone = None if bulk else writer.lone_create_scope(collection, who, ops[0])
            if alone is not None:
                then = self._relay.prefetch()
                event, rows, version = await writer.create_alone(
                    collection, who, alone, ops[0], then
                )
                events.append(event)
                prefetched = rows if then is not None else None
            else:
                async with self._db.transaction(who.user_id) as conn:
                    for index, op in enumerate(ops):
                        try:
                            events.append(await writer.apply(conn, collection, who, op))
                        except ServiceError as exc:
                            if bulk:
                                exc.message = f"item {index}: {exc.message}"
                                exc.args = (exc.message,)
                            raise
                    if not bulk and events[0].action != "delete" and logged(collection):
                        version = await changelog.item_version(conn, name, events[0].key)
            # Still holding the item locks: events about one item leave in commit order.
            await self._relay.flush(prefetched)
            for event in events:
                self._hooks.after(who, name, f"items.{event.action}", event.item)
        read_scope = self._permissions.scope(who, collection, "read")
        if version is not None and not readable(read_scope, events[0], writer.matcher):
            version = None
        items = [answer(collection, read_scope, event, writer.matcher) for event in events]
        return items, version

    async def _before_hooks(
        self, name: str, who: Accountability, ops: list[Operation]
    ) -> list[Operation]:
        """Run ``items.<action>`` hooks on each element; they may change or refuse it."""
        changed = []
        for op in ops:
            action = f"items.{op.action}"
            if not self._hooks.has(name, action):
                changed.append(op)
                continue
            data = op.data if op.data is not None else {"id": op.key}
            result = await self._hooks.before(who, name, action, data)
            changed.append(replace(op, data=result) if op.data is not None else op)
        return changed

    def _scope(
        self, who: Accountability, collection: Collection, action: PermissionAction
    ) -> Scope:
        return self._permissions.require(who, collection, action)


def _query_from_hook(changed: dict[str, Any]) -> Query:
    try:
        return Query(**changed)
    except TypeError:
        raise BadRequest(
            f"an items.read hook returned unknown query keys {sorted(changed)}"
        ) from None
