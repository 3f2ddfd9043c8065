"""Applying one item operation to the database, with the permission checks around it.

:class:`ItemWriter` does what one element of a write request does inside its
transaction: lock and check the stored row, write, check the result, run the
collection's own rules, and describe the change as a :class:`ChangeEvent`.
The items service calls it for each element and publishes the events after
the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.bounded import BoundedCache
from livebase.services import filters
from livebase.services.accountability import Accountability
from livebase.services.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValidationFailed,
)
from livebase.services.events import Action, ChangeEvent
from livebase.services.links import Links, LinkWrite
from livebase.services.operations import Item, Operation
from livebase.services.permissions import PermissionService, Scope
from livebase.services.registry import CollectionRegistry
from livebase.services.relay import logged
from livebase.services.rows import row_values
from livebase.storage import changelog
from livebase.storage.database import Database, foreign_key_violated, returning_insert
from livebase.storage.model import Collection
from livebase.storage.sqlite_insert import RawRead

# Resolved conditions differ per user ($CURRENT_USER): keep the cache bounded.
_MATCHER_CACHE = 1_000


class CollectionRules(Protocol):
    """Extra rules of one (system) collection, run inside the write transaction."""

    async def prepare(
        self, conn: AsyncConnection, action: Action, data: Item, previous: Item | None
    ) -> Item: ...

    async def after_write(
        self, conn: AsyncConnection, action: Action, item: Item, previous: Item | None
    ) -> None: ...


class ItemWriter:
    def __init__(
        self, db: Database, permissions: PermissionService, registry: CollectionRegistry
    ) -> None:
        self._db = db
        self._permissions = permissions
        self._links = Links(registry, permissions)
        self.rules: dict[str, CollectionRules] = {}
        self._matchers: BoundedCache[filters.Node, Callable[[Any], bool]] = BoundedCache(
            _MATCHER_CACHE
        )

    def matcher(self, condition: filters.Node) -> Callable[[Any], bool]:
        """The compiled row check for a resolved condition, compiled once (bounded cache)."""
        return self._matchers.get_or_make(condition, filters.to_predicate)

    # -- one create alone, committed with its insert ----------------------------------

    def lone_create_scope(
        self, collection: Collection, who: Accountability, op: Operation
    ) -> Scope | None:
        """The create scope if ``op`` is a create nothing can refuse once the row is in.

        Such a create commits with its insert (:meth:`Database.insert_one`,
        one trip on SQLite). A create permission with a condition is checked
        against the stored row, and a system collection's rules run inside
        the transaction: both take the general path, which can still roll back;
        so does a create writing a relation (its ids are checked in the transaction).
        """
        if op.action != "create" or not self._db.returning or collection.name in self.rules:
            return None
        if op.data is not None and self._links.touches(collection, op.data):
            return None
        scope = self._permissions.require(who, collection, "create")
        return scope if scope.condition == filters.TRUE else None

    async def create_alone(
        self,
        collection: Collection,
        who: Accountability,
        scope: Scope,
        op: Operation,
        then: RawRead | None = None,
    ) -> tuple[ChangeEvent, list[Any], int]:
        """The create committed with its insert, the rows of ``then``, a read
        run in the same trip (:meth:`Database.insert_then_read`), and the new
        item's version, read in its transaction (0 for a collection not logged)."""
        assert op.data is not None
        values = row_values(collection, scope, op.data, who, creating=True)
        version = changelog.newest_own_entry(self._db.dialect) if logged(collection) else None
        try:
            item, rows, created = await self._db.insert_then_read(
                collection.table, values, who.user_id, then, version
            )
        except IntegrityError as exc:
            raise _refused(collection, exc, "create") from None
        key = item[collection.primary_key]
        event = ChangeEvent(collection.name, "create", key, item, None, who.user_id)
        return event, rows, int(created or 0)

    # -- any operation, inside a transaction ------------------------------------------

    async def apply(
        self, conn: AsyncConnection, collection: Collection, who: Accountability, op: Operation
    ) -> ChangeEvent:
        scope = self._permissions.require(who, collection, op.action)
        matches = self.matcher(scope.condition)
        previous = None
        if op.action != "create":
            previous = await self._row_to_change(conn, collection, who, op, matches)
        rules = self.rules.get(collection.name)
        data = op.data
        if rules is not None:
            data = await rules.prepare(conn, op.action, data or {}, previous)
        try:
            key, stored = await self._write(conn, collection, scope, who, op, data)
        except IntegrityError as exc:
            raise _refused(collection, exc, op.action) from None
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

    async def _write(
        self,
        conn: AsyncConnection,
        collection: Collection,
        scope: Scope,
        who: Accountability,
        op: Operation,
        data: Item | None,
    ) -> tuple[Any, Item | None]:
        """The write itself, its relations' too: the key and, with RETURNING, the stored row."""
        table = collection.table
        pk = table.c[collection.primary_key]
        # With RETURNING (SQLite >= 3.35, PostgreSQL) a write hands back the
        # stored row itself: one statement instead of a write and a re-read.
        returning = self._db.returning
        stored: Item | None = None
        links: list[LinkWrite] = []
        if data is not None:
            data, links = self._links.split(collection, scope, data)
        if op.action == "create":
            assert data is not None
            values = row_values(collection, scope, data, who, creating=True)
            await self._links.check_keys(conn, collection, who, values)
            if returning:
                stored = await _one_row(conn, returning_insert(table), values)
                key = stored[collection.primary_key]
            else:
                result = await conn.execute(insert(table).values(**values))
                inserted = result.inserted_primary_key
                key = values.get(collection.primary_key, inserted[0] if inserted else None)
        elif op.action == "update":
            assert data is not None
            values = row_values(collection, scope, data, who, creating=False, key=op.key)
            await self._links.check_keys(conn, collection, who, values)
            statement = update(table).where(pk == op.key).values(**values)
            # Nothing to set (a body of links only, no timestamps): no UPDATE at all.
            if values and returning:
                stored = await _one_row(conn, statement.returning(*table.c))
            elif values:
                await conn.execute(statement)
            key = op.key
        else:
            await conn.execute(delete(table).where(pk == op.key))
            key = op.key
        await self._links.replace(conn, who, key, links)
        return key, stored

    def _refusal(
        self, collection: Collection, who: Accountability, op: Operation, row: Item
    ) -> ServiceError:
        """Why ``who`` may not change ``row``: 403 if it may read the row, else 404.

        A row the caller can neither read nor change answers exactly as a
        missing one, so that updates and deletes are no oracle on which ids
        exist (``GET`` answers 404 for it too).
        """
        read = self._permissions.scope(who, collection, "read")
        if read is None or not self.matcher(read.condition)(row):
            return NotFound(f"item {op.key!r} not found in {collection.name}", "ITEM_NOT_FOUND")
        return Forbidden(f"you may not {op.action} item {op.key!r} of {collection.name}")

    async def _row_to_change(
        self,
        conn: AsyncConnection,
        collection: Collection,
        who: Accountability,
        op: Operation,
        matches: Callable[[Any], bool],
    ) -> Item:
        """The row ``op`` updates or deletes, locked, once ``who`` may change it (its
        permission ``matches`` it) and it is at a version ``op``'s precondition allows."""
        row = await self._locked_row(conn, collection, op.key)
        if not matches(row):
            raise self._refusal(collection, who, op, row)
        if op.precondition is not None:
            await self._check_version(conn, collection, who, op, row)
        return row

    async def _check_version(
        self,
        conn: AsyncConnection,
        collection: Collection,
        who: Accountability,
        op: Operation,
        row: Item,
    ) -> None:
        """412 unless ``op``'s precondition allows the item's version.

        The row is locked (:meth:`_locked_row`), so no other change of it can
        commit between this check and this transaction's commit. The refusal
        names the current version only to a writer who may read the item.
        """
        assert op.precondition is not None
        version = await changelog.item_version(conn, collection.name, op.key)
        if op.precondition.allows(version):
            return
        read = self._permissions.scope(who, collection, "read")
        readable = read is not None and self.matcher(read.condition)(row)
        raise PreconditionFailed(
            f"item {op.key!r} of {collection.name} changed since the version given"
            " (If-Match): fetch it again",
            version if readable else None,
        )

    async def _locked_row(self, conn: AsyncConnection, collection: Collection, key: Any) -> Item:
        table = collection.table
        # FOR UPDATE on PostgreSQL; SQLite's compiler leaves it out (its writes are serialised).
        statement = select(table).where(table.c[collection.primary_key] == key).with_for_update()
        row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"item {key!r} not found in {collection.name}", "ITEM_NOT_FOUND")
        return dict(row)


async def _one_row(conn: AsyncConnection, statement: Any, values: Item | None = None) -> Item:
    # An empty dict would mean "no parameters" to execute(): INSERT … DEFAULT VALUES.
    result = await conn.execute(statement, values) if values else await conn.execute(statement)
    return dict(result.mappings().one())


def _refused(collection: Collection, exc: IntegrityError, action: Action) -> ServiceError:
    """What the database refused: a taken unique value, or a foreign key (an item
    deleted meanwhile; on a delete, an item a RESTRICT relation still points at)."""
    if not foreign_key_violated(exc):
        return Conflict(f"a value of {collection.name} must be unique and is taken")
    if action == "delete":
        return Conflict(
            f"items of other collections point at this item of {collection.name} through a "
            "relation whose onDelete is RESTRICT",
            "RELATION_RESTRICTED",
        )
    return ValidationFailed(
        f"a relation's key of {collection.name} names an item that no longer exists",
        "RELATED_ITEM_NOT_FOUND",
    )
