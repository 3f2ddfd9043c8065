"""Roles' permissions: stored rows, an in-memory cache, and the scope a request gets."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, insert, or_, select, update

from livebase.services import filters
from livebase.services.accountability import Accountability, require_admin
from livebase.services.errors import BadRequest, Conflict, Forbidden, NotFound, object_with
from livebase.services.events import EventBus, PermissionsChanged
from livebase.services.registry import CollectionRegistry
from livebase.storage import system
from livebase.storage.database import Database
from livebase.storage.model import Collection
from livebase.storage.types import utcnow

_log = logging.getLogger("livebase.permissions")

Action = Literal["create", "read", "update", "delete"]
ACTIONS: tuple[Action, ...] = ("create", "read", "update", "delete")
_KEYS = frozenset({"role", "collection", "action", "fields", "conditions"})
_PLACEHOLDER_VARIABLES = {
    "$CURRENT_USER": "00000000-0000-4000-8000-000000000000",
    "$CURRENT_ROLE": "user",
}


@dataclass(frozen=True)
class Scope:
    """What one request may touch in one collection for one action.

    ``fields`` is the set of field names (``None``: all of them) and
    ``condition`` the filter, already resolved for the user, that rows must
    satisfy.
    """

    fields: frozenset[str] | None
    condition: filters.Node

    def field_allowed(self, name: str) -> bool:
        return self.fields is None or name in self.fields


FULL = Scope(fields=None, condition=filters.TRUE)


@dataclass(frozen=True)
class _Rule:
    fields: tuple[str, ...]
    conditions: Any
    id: str | None = None


class PermissionService:
    def __init__(self, db: Database, registry: CollectionRegistry, events: EventBus) -> None:
        self._db = db
        self._registry = registry
        self._events = events
        self._rules: dict[tuple[str, str, str], _Rule] = {}

    async def load(self) -> None:
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(system.permissions))).mappings().all()
        self._rules = {
            (row["role"], row["collection"], row["action"]): _Rule(
                tuple(row["fields"] or ()), row["conditions"], str(row["id"])
            )
            for row in rows
        }

    # -- deciding -----------------------------------------------------------

    def scope(self, who: Accountability, collection: Collection, action: Action) -> Scope | None:
        """The scope ``who`` gets for ``action`` on ``collection``, or None for no access."""
        if who.is_admin:
            return FULL
        rule = self._rules.get((who.role, collection.name, action))
        if rule is None:
            return None
        try:
            condition = filters.parse(rule.conditions, collection.kinds, who.variables)
        except filters.FilterError as exc:
            # A condition that no longer fits its collection (a field was
            # dropped) denies instead of silently granting everything.
            _log.warning(
                "permission %s/%s/%s unusable, denying: %s",
                who.role, collection.name, action, exc.message,
            )  # fmt: skip
            return None
        if "*" in rule.fields:
            return Scope(fields=None, condition=condition)
        # A relation's name is a field here (services/links.py; reading expands it).
        relations = self._registry.relations.of(collection.name)
        allowed = frozenset(rule.fields) & (frozenset(collection.fields) | frozenset(relations))
        if action != "create":
            # The key names the row read or changed; choosing it is a create
            # field like any other (a taken id would otherwise answer 409).
            allowed |= {collection.primary_key}
        return Scope(fields=allowed, condition=condition)

    def rule(self, role: str, collection: str, action: Action) -> dict[str, Any] | None:
        """The permission that gives ``role`` ``action`` on ``collection``, as cached
        (what :meth:`scope` applies); None if there is none (administrators need none)."""
        found = self._rules.get((role, collection, action))
        if found is None:
            return None
        return {
            "id": found.id,
            "role": role,
            "collection": collection,
            "action": action,
            "fields": list(found.fields),
            "conditions": found.conditions,
        }

    def require(self, who: Accountability, collection: Collection, action: Action) -> Scope:
        """Like :meth:`scope`, but no access is a 403."""
        scope = self.scope(who, collection, action)
        if scope is None:
            raise Forbidden(f"you may not {action} items of {collection.name}")
        return scope

    def readable_collections(self, role: str) -> list[str]:
        """Names of the collections ``role`` may read (all of them for administrators)."""
        if role == "administrator":
            return [c.name for c in self._registry.all_collections()]
        return [c for (r, c, a) in self._rules if r == role and a == "read"]

    # -- managing (administrator) ---------------------------------------------

    async def list(self, who: Accountability, role: str | None = None) -> list[dict[str, Any]]:
        require_admin(who)
        query = select(system.permissions).order_by(system.permissions.c.createdAt)
        if role is not None:
            query = query.where(system.permissions.c.role == role)
        async with self._db.connect() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    async def get(self, who: Accountability, permission_id: str) -> dict[str, Any]:
        require_admin(who)
        async with self._db.connect() as conn:
            row = await self._row(conn, permission_id)
        return row

    async def _row(self, conn: Any, permission_id: str) -> dict[str, Any]:
        if not _is_uuid(permission_id):
            raise NotFound(f"permission {permission_id!r} not found")
        found = (
            (
                await conn.execute(
                    select(system.permissions).where(system.permissions.c.id == permission_id)
                )
            )
            .mappings()
            .first()
        )
        if found is None:
            raise NotFound(f"permission {permission_id!r} not found")
        return dict(found)

    async def create(self, who: Accountability, body: object) -> dict[str, Any]:
        require_admin(who)
        body = object_with(body, _KEYS, "permission")
        async with self._db.transaction() as conn:
            values = await self._validated(conn, body)
            await self._refuse_duplicate(conn, values)
            values.update(id=str(uuid.uuid4()), createdAt=utcnow())
            await conn.execute(insert(system.permissions).values(**values))
        await self._changed(values["role"])
        return values

    async def update(self, who: Accountability, permission_id: str, body: object) -> dict[str, Any]:
        require_admin(who)
        body = object_with(body, _KEYS, "permission")
        async with self._db.transaction() as conn:
            current = await self._row(conn, permission_id)
            merged = {key: current[key] for key in _KEYS}
            values = await self._validated(conn, {**merged, **body})
            await self._refuse_duplicate(conn, values, permission_id)
            await conn.execute(
                update(system.permissions)
                .where(system.permissions.c.id == permission_id)
                .values(**values)
            )
        await self._changed(current["role"], values["role"])
        return {**current, **values}

    async def delete(self, who: Accountability, permission_id: str) -> str:
        require_admin(who)
        async with self._db.transaction() as conn:
            current = await self._row(conn, permission_id)
            await conn.execute(
                delete(system.permissions).where(system.permissions.c.id == permission_id)
            )
        await self._changed(current["role"])
        return permission_id

    async def delete_for_collection(self, conn: Any, collection: str) -> None:
        await conn.execute(
            delete(system.permissions).where(system.permissions.c.collection == collection)
        )

    async def _changed(self, *roles: str) -> None:
        await self.load()
        for role in dict.fromkeys(roles):
            await self._events.publish(PermissionsChanged(role=role))

    async def _validated(self, conn: Any, body: dict[str, Any]) -> dict[str, Any]:
        role = await self._role_name(conn, body.get("role"))
        if role == "administrator":
            raise BadRequest("administrators bypass permissions; no permission rows for them")
        name = body.get("collection")
        if not isinstance(name, str):
            raise BadRequest("collection must be a collection name")
        collection = await self._registry.get(name)
        action = body.get("action")
        if action not in ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(ACTIONS)}")
        fields = body.get("fields", ["*"])
        if fields is None:
            fields = ["*"]
        if isinstance(fields, str):
            fields = [part.strip() for part in fields.split(",") if part.strip()]
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise BadRequest('fields must be a list of field names or ["*"]')
        relations = self._registry.relations.of(name)
        unknown = [
            f for f in fields if f != "*" and f not in collection.kinds and f not in relations
        ]
        if unknown:
            raise BadRequest(f"unknown field(s) of {name}: {unknown}")
        conditions = body.get("conditions") or None
        filters.parse(conditions, collection.kinds, _PLACEHOLDER_VARIABLES)
        return {
            "role": role,
            "collection": name,
            "action": action,
            "fields": fields,
            "conditions": conditions,
        }

    async def _role_name(self, conn: Any, role: object) -> str:
        if not isinstance(role, str) or not role:
            raise BadRequest("role must be a role name or id")
        match = system.roles.c.name == role
        if _is_uuid(role):
            match = or_(match, system.roles.c.id == role)
        name = await conn.scalar(select(system.roles.c.name).where(match))
        if name is None:
            raise BadRequest(f"role {role!r} does not exist")
        return str(name)

    async def _refuse_duplicate(
        self, conn: Any, values: dict[str, Any], own_id: str | None = None
    ) -> None:
        table = system.permissions.c
        query = select(table.id).where(
            table.role == values["role"],
            table.collection == values["collection"],
            table.action == values["action"],
        )
        existing = await conn.scalar(query)
        if existing is not None and existing != own_id:
            raise Conflict(
                f"role {values['role']!r} already has a {values['action']} permission on "
                f"{values['collection']!r} (id {existing}); update that one"
            )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
