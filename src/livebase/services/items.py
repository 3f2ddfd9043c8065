"""The items service: permission-checked reads and writes of collection items.

Every write runs in one transaction and publishes one :class:`ChangeEvent`
per item after the commit; a write that fails anywhere publishes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.bounded import BoundedCache
from livebase.services import filters, listing
from livebase.services.accountability import Accountability
from livebase.services.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from livebase.services.events import Action, ChangeEvent, EventBus
from livebase.services.hooks import HookRegistry
from livebase.services.locks import KeyedLocks
from livebase.services.permissions import Action as PermissionAction
from livebase.services.permissions import PermissionService, Scope
from livebase.services.query import Query
from livebase.services.registry import CollectionRegistry
from livebase.services.values import check_rules, coerce_value, fit_decimal
from livebase.storage.database import Database, returning_insert
from livebase.storage.model import Collection, FieldKind
from livebase.storage.types import utcnow

# Resolved conditions differ per user ($CURRENT_USER): keep the cache bounded.
_MATCHER_CACHE = 1_000

Item = dict[str, Any]
MAX_BULK = 1000


class CollectionRules(Protocol):
    """Extra rules of one (system) collection, run inside the write transaction."""

    async def prepare(
        self, conn: AsyncConnection, action: Action, data: Item, previous: Item | None
    ) -> Item: ...

    async def after_write(
        self, conn: AsyncConnection, action: Action, item: Item, previous: Item | None
    ) -> None: ...


@dataclass(frozen=True)
class _Op:
    action: Action
    key: Any = None
    data: Item | None = None


class ItemsService:
    def __init__(
        self,
        db: Database,
        registry: CollectionRegistry,
        permissions: PermissionService,
        events: EventBus,
        hooks: HookRegistry | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._permissions = permissions
        self._events = events
        self._hooks = hooks or HookRegistry()
        self._locks = KeyedLocks()
        self._rules: dict[str, CollectionRules] = {}
        self._matchers: BoundedCache[filters.Node, Callable[[Any], bool]] = BoundedCache(
            _MATCHER_CACHE
        )

    def set_rules(self, collection: str, rules: CollectionRules) -> None:
        self._rules[collection] = rules

    # -- reading ---------------------------------------------------------------

    async def read_many(
        self, name: str, query: Query, who: Accountability
    ) -> tuple[list[Item], int]:
        """Items matching ``query`` that ``who`` may read, and how many match in all."""
        collection = await self._registry.get(name)
        scope = self._scope(who, collection, "read")
        if self._hooks.has(name, "items.read"):
            changed = await self._hooks.before(who, name, "items.read", asdict(query))
            query = _query_from_hook(changed)
        return await listing.read_list(self._db, collection, scope, query)

    async def read_one(
        self, name: str, raw_key: object, who: Accountability, fields: list[str] | None = None
    ) -> Item:
        collection = await self._registry.get(name)
        scope = self._scope(who, collection, "read")
        selected = listing.selected_fields(collection, scope, fields)
        key = self._key(collection, raw_key)
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

    async def _before_hooks(self, name: str, who: Accountability, ops: list[_Op]) -> list[_Op]:
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

    # -- writing ---------------------------------------------------------------

    async def create(self, name: str, data: object, who: Accountability) -> Item:
        return (await self._write(name, who, [_Op("create", data=_body(data))], bulk=False))[0]

    async def create_many(self, name: str, items: object, who: Accountability) -> list[Item]:
        ops = [_Op("create", data=_body(entry, i)) for i, entry in enumerate(_list(items))]
        return await self._write(name, who, ops, bulk=True)

    async def update(self, name: str, raw_key: object, data: object, who: Accountability) -> Item:
        collection = await self._registry.get(name)
        op = _Op("update", key=self._key(collection, raw_key), data=_body(data))
        return (await self._write(name, who, [op], bulk=False))[0]

    async def update_many(self, name: str, items: object, who: Accountability) -> list[Item]:
        collection = await self._registry.get(name)
        ops = []
        for index, entry in enumerate(_list(items)):
            body = _body(entry, index)
            if collection.primary_key not in body:
                raise BadRequest(f"item {index}: needs its {collection.primary_key!r}")
            key = self._key(collection, body[collection.primary_key], index)
            ops.append(_Op("update", key=key, data=body))
        return await self._write(name, who, ops, bulk=True)

    async def delete(self, name: str, raw_key: object, who: Accountability) -> Any:
        collection = await self._registry.get(name)
        op = _Op("delete", key=self._key(collection, raw_key))
        await self._write(name, who, [op], bulk=False)
        return op.key

    async def delete_many(self, name: str, keys: object, who: Accountability) -> list[Any]:
        collection = await self._registry.get(name)
        ops = [_Op("delete", key=self._key(collection, k, i)) for i, k in enumerate(_list(keys))]
        await self._write(name, who, ops, bulk=True)
        return [op.key for op in ops]

    async def _write(
        self, name: str, who: Accountability, ops: list[_Op], bulk: bool
    ) -> list[Item]:
        collection = await self._registry.get(name)
        if collection.read_only:
            raise Forbidden(f"{name} is written through its own routes, not /items")
        locked = [(name, op.key) for op in ops if op.key is not None]
        if len(set(locked)) != len(locked):
            raise BadRequest("the same item appears twice in one bulk request")
        ops = await self._before_hooks(name, who, ops)
        async with self._locks.hold(locked):
            events: list[ChangeEvent] = []
            alone = None if bulk else self._scope_of_lone_create(collection, who, ops[0])
            if alone is not None:
                events.append(await self._create_alone(collection, who, alone, ops[0]))
            else:
                async with self._db.transaction() as conn:
                    for index, op in enumerate(ops):
                        try:
                            events.append(await self._apply(conn, collection, who, op))
                        except ServiceError as exc:
                            if bulk:
                                exc.message = f"item {index}: {exc.message}"
                                exc.args = (exc.message,)
                            raise
            # Still holding the item locks: events about one item leave in commit order.
            await self._events.publish(*events)
            for event in events:
                self._hooks.after(who, name, f"items.{event.action}", event.item)
        read_scope = self._permissions.scope(who, collection, "read")
        return [self._answer(collection, read_scope, event) for event in events]

    def _scope_of_lone_create(
        self, collection: Collection, who: Accountability, op: _Op
    ) -> Scope | None:
        """The create scope if ``op`` is a create nothing can refuse once the row is in.

        Such a create commits with its insert (:meth:`Database.insert_one`,
        one trip on SQLite). A create permission with a condition is checked
        against the stored row, and a system collection's rules run inside
        the transaction: both take the general path, which can still roll back.
        """
        if op.action != "create" or not self._db.returning or collection.name in self._rules:
            return None
        scope = self._scope(who, collection, "create")
        return scope if scope.condition == filters.TRUE else None

    async def _create_alone(
        self, collection: Collection, who: Accountability, scope: Scope, op: _Op
    ) -> ChangeEvent:
        assert op.data is not None
        values = self._values(collection, scope, op.data, who, creating=True)
        try:
            item = await self._db.insert_one(collection.table, values)
        except IntegrityError:
            raise _taken(collection) from None
        key = item[collection.primary_key]
        return ChangeEvent(collection.name, "create", key, item, None, who.user_id)

    async def _apply(
        self, conn: AsyncConnection, collection: Collection, who: Accountability, op: _Op
    ) -> ChangeEvent:
        scope = self._scope(who, collection, op.action)
        matches = self._matcher(scope.condition)
        previous = None
        if op.action != "create":
            previous = await self._locked_row(conn, collection, op.key)
            if not matches(previous):
                raise self._refusal(collection, who, op, previous)
        rules = self._rules.get(collection.name)
        data = op.data
        if rules is not None:
            data = await rules.prepare(conn, op.action, data or {}, previous)
        table = collection.table
        pk = table.c[collection.primary_key]
        # With RETURNING (SQLite >= 3.35, PostgreSQL) a write hands back the
        # stored row itself: one statement instead of a write and a re-read.
        returning = self._db.returning
        stored: Item | None = None
        try:
            if op.action == "create":
                assert data is not None
                values = self._values(collection, scope, data, who, creating=True)
                if returning:
                    stored = await _one_row(conn, returning_insert(table), values)
                    key = stored[collection.primary_key]
                else:
                    result = await conn.execute(insert(table).values(**values))
                    inserted = result.inserted_primary_key
                    key = values.get(collection.primary_key, inserted[0] if inserted else None)
            elif op.action == "update":
                assert data is not None
                values = self._values(collection, scope, data, who, creating=False, key=op.key)
                statement = update(table).where(pk == op.key).values(**values)
                if returning:
                    stored = await _one_row(conn, statement.returning(*table.c))
                else:
                    await conn.execute(statement)
                key = op.key
            else:
                await conn.execute(delete(table).where(pk == op.key))
                key = op.key
        except IntegrityError:
            raise _taken(collection) from None
        if op.action == "delete":
            item = previous
        else:
            item = stored if stored is not None else await self._locked_row(conn, collection, key)
        assert item is not None
        if op.action != "delete" and not matches(item):
            raise Forbidden(f"the resulting item is outside your {op.action} permission")
        if rules is not None:
            await rules.after_write(conn, op.action, item, previous)
        return ChangeEvent(collection.name, op.action, key, item, previous, who.user_id)

    def _refusal(
        self, collection: Collection, who: Accountability, op: _Op, row: Item
    ) -> ServiceError:
        """Why ``who`` may not change ``row``: 403 if it may read the row, else 404.

        A row the caller can neither read nor change answers exactly as a
        missing one, so that updates and deletes are no oracle on which ids
        exist (``GET`` answers 404 for it too).
        """
        read = self._permissions.scope(who, collection, "read")
        if read is None or not self._matcher(read.condition)(row):
            return NotFound(f"item {op.key!r} not found in {collection.name}", "ITEM_NOT_FOUND")
        return Forbidden(f"you may not {op.action} item {op.key!r} of {collection.name}")

    async def _locked_row(self, conn: AsyncConnection, collection: Collection, key: Any) -> Item:
        table = collection.table
        statement = select(table).where(table.c[collection.primary_key] == key)
        if self._db.dialect == "postgresql":
            statement = statement.with_for_update()
        row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"item {key!r} not found in {collection.name}", "ITEM_NOT_FOUND")
        return dict(row)

    def _values(
        self,
        collection: Collection,
        scope: Scope,
        data: Mapping[str, Any],
        who: Accountability,
        *,
        creating: bool,
        key: Any = None,
    ) -> Item:
        """The column values to write: checked input, then defaults and stamps."""
        values: Item = {}
        for name, raw in data.items():
            spec = collection.fields.get(name)
            if spec is None:
                raise BadRequest(f"{collection.name} has no field {name!r}", "UNKNOWN_FIELD")
            if spec.primary_key and not creating:
                if self._key(collection, raw) != key:
                    raise BadRequest(f"the {name!r} of an item cannot change")
                continue
            if spec.managed:
                raise BadRequest(f"field {name!r} is set by the server")
            if not scope.field_allowed(name):
                raise Forbidden(f"you may not write field {name!r} of {collection.name}")
            value = coerce_value(spec.kind, raw, f"field {name}")
            if isinstance(value, Decimal):
                value = fit_decimal(spec, value)
            if value is None and not spec.allow_null:
                raise _required(name)
            if value is not None:
                check_rules(spec, value)
            values[name] = value
        if creating:
            _fill_defaults(collection, values)
        _stamp(collection, values, who, creating)
        return values

    # -- permissions and shaping -------------------------------------------------

    def _scope(
        self, who: Accountability, collection: Collection, action: PermissionAction
    ) -> Scope:
        return self._permissions.require(who, collection, action)

    def _matcher(self, condition: filters.Node) -> Callable[[Any], bool]:
        """The compiled row check for a resolved condition, compiled once (bounded cache)."""
        return self._matchers.get_or_make(condition, filters.to_predicate)

    def _answer(self, collection: Collection, scope: Scope | None, event: ChangeEvent) -> Item:
        """What the writer gets back: the item as its read permission shows it."""
        key_only = {collection.primary_key: event.key}
        if scope is None or event.action == "delete":
            return key_only
        if not self._matcher(scope.condition)(event.item):
            return key_only
        return {f: event.item.get(f) for f in listing.readable(collection, scope)}

    def _key(self, collection: Collection, raw: object, index: int | None = None) -> Any:
        """The primary key value from a path or body; a bad one is a 400 (naming its index)."""
        prefix = "" if index is None else f"item {index}: "
        spec = collection.fields[collection.primary_key]
        if isinstance(raw, str) and spec.kind in (FieldKind.INTEGER, FieldKind.BIGINT):
            try:
                raw = int(raw)
            except ValueError:
                raise BadRequest(f"{prefix}invalid id {raw!r}: expected an integer") from None
        try:
            key = coerce_value(spec.kind, raw, "id")
        except ServiceError as exc:
            message = exc.message.removeprefix("id: ")
            raise BadRequest(f"{prefix}invalid id: {message}") from None
        if key is None:
            raise BadRequest(f"{prefix}an id is required")
        return key


async def _one_row(conn: AsyncConnection, statement: Any, values: Item | None = None) -> Item:
    # An empty dict would mean "no parameters" to execute(): INSERT … DEFAULT VALUES.
    result = await conn.execute(statement, values) if values else await conn.execute(statement)
    return dict(result.mappings().one())


def _taken(collection: Collection) -> ServiceError:
    return Conflict(f"a value of {collection.name} must be unique and is taken")


def _required(name: str) -> ServiceError:
    return ValidationFailed(f"field {name}: is required", "FIELD_REQUIRED")


def _query_from_hook(changed: dict[str, Any]) -> Query:
    try:
        return Query(**changed)
    except TypeError:
        raise BadRequest(
            f"an items.read hook returned unknown query keys {sorted(changed)}"
        ) from None


def _fill_defaults(collection: Collection, values: Item) -> None:
    for spec in collection.fields.values():
        if spec.name in values or spec.managed or spec.auto_increment:
            continue
        default = _default_value(spec.default, spec.kind)
        if default is None and not spec.allow_null:
            raise _required(spec.name)
        values[spec.name] = default


def _stamp(collection: Collection, values: Item, who: Accountability, creating: bool) -> None:
    now = utcnow()
    stamps: Item = {"updatedAt": now, "userUpdated": who.user_id}
    if creating:
        stamps.update(createdAt=now, userCreated=who.user_id)
    for name, value in stamps.items():
        spec = collection.fields.get(name)
        if spec is not None and spec.managed:
            values[name] = value


def _default_value(default: Any, kind: FieldKind) -> Any:
    if default == "UUIDV4":
        return str(uuid.uuid4())
    if default == "NOW":
        now = utcnow()
        return now.date() if kind is FieldKind.DATE else now
    return default


def _body(data: object, index: int | None = None) -> Item:
    if not isinstance(data, dict):
        prefix = "" if index is None else f"item {index}: "
        raise BadRequest(f"{prefix}expected a JSON object")
    return data


def _list(data: object) -> list[Any]:
    if not isinstance(data, list) or not data:
        raise BadRequest("expected a non-empty JSON array")
    if len(data) > MAX_BULK:
        raise BadRequest(f"at most {MAX_BULK} items per bulk request")
    return data
