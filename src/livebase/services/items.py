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
from livebase.services.answers import answer
from livebase.services.errors import BadRequest, Forbidden, NotFound, ServiceError
from livebase.services.events import ChangeEvent
from livebase.services.hooks import HookRegistry
from livebase.services.keys import item_key
from livebase.services.locks import KeyedLocks
from livebase.services.operations import MAX_BULK, Item, Operation, body, entries
from livebase.services.permissions import Action as PermissionAction
from livebase.services.permissions import PermissionService, Scope
from livebase.services.query import Query
from livebase.services.registry import CollectionRegistry
from livebase.services.relay import ChangeRelay
from livebase.services.writer import CollectionRules, ItemWriter
from livebase.storage.database import Database
from livebase.storage.model import Collection

__all__ = ["MAX_BULK", "CollectionRules", "Item", "ItemsService"]


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
        return await listing.read_list(self._db, collection, scope, query)

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
        collection = await self._registry.get(name)
        scope = self._scope(who, collection, "read")
        selected = listing.selected_fields(collection, scope, fields)
        key = item_key(collection, raw_key)
        table = collection.table
        condition = filters.to_sql(scope.condition, table.c, self._db.dialect)
        statement = select(*(table.c[f] for f in selected)).where(
            table.c[collection.primary_key] == key, condition
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"item {raw_key!r} not found in {name}", "ITEM_NOT_FOUND")
        return dict(row)

    # -- writing ---------------------------------------------------------------

    async def create(self, name: str, data: object, who: Accountability) -> Item:
        return (await self._write(name, who, [Operation("create", data=body(data))], bulk=False))[0]

    async def create_many(self, name: str, items: object, who: Accountability) -> list[Item]:
        ops = [Operation("create", data=body(entry, i)) for i, entry in enumerate(entries(items))]
        return await self._write(name, who, ops, bulk=True)

    async def update(self, name: str, raw_key: object, data: object, who: Accountability) -> Item:
        collection = await self._registry.get(name)
        op = Operation("update", key=item_key(collection, raw_key), data=body(data))
        return (await self._write(name, who, [op], bulk=False))[0]

    async def update_many(self, name: str, items: object, who: Accountability) -> list[Item]:
        collection = await self._registry.get(name)
        ops = []
        for index, entry in enumerate(entries(items)):
            data = body(entry, index)
            if collection.primary_key not in data:
                raise BadRequest(f"item {index}: needs its {collection.primary_key!r}")
            key = item_key(collection, data[collection.primary_key], index)
            ops.append(Operation("update", key=key, data=data))
        return await self._write(name, who, ops, bulk=True)

    async def delete(self, name: str, raw_key: object, who: Accountability) -> Any:
        collection = await self._registry.get(name)
        op = Operation("delete", key=item_key(collection, raw_key))
        await self._write(name, who, [op], bulk=False)
        return op.key

    async def delete_many(self, name: str, keys: object, who: Accountability) -> list[Any]:
        collection = await self._registry.get(name)
        ops = [
            Operation("delete", key=item_key(collection, k, i)) for i, k in enumerate(entries(keys))
        ]
        await self._write(name, who, ops, bulk=True)
        return [op.key for op in ops]

    async def _write(
        self, name: str, who: Accountability, ops: list[Operation], bulk: bool
    ) -> list[Item]:
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
            alone = None if bulk else writer.lone_create_scope(collection, who, ops[0])
            if alone is not None:
                then = self._relay.prefetch()
                event, rows = await writer.create_alone(collection, who, alone, ops[0], then)
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
            # Still holding the item locks: events about one item leave in commit order.
            await self._relay.flush(prefetched)
            for event in events:
                self._hooks.after(who, name, f"items.{event.action}", event.item)
        read_scope = self._permissions.scope(who, collection, "read")
        return [answer(collection, read_scope, event, writer.matcher) for event in events]

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
