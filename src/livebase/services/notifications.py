"""Notifications: sent to many users at once, read, marked seen and deleted by their owner."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from livebase.services import filters, listing
from livebase.services.accountability import Accountability
from livebase.services.errors import BadRequest, Forbidden, NotFound, Unauthorized, object_with
from livebase.services.permissions import PermissionService, Scope
from livebase.services.query import Query
from livebase.services.relay import ChangeRelay
from livebase.services.values import coerce_value
from livebase.storage import system
from livebase.storage.database import Database
from livebase.storage.model import FieldKind
from livebase.storage.types import utcnow

MAX_RECIPIENTS = 10_000
MAX_MARK_SEEN = 1_000  # ids per mark-seen request; without ids, all unread are marked
_SHOWN_IDS = 10  # ids named in a not-found error, so that its size stays small
_SEND_KEYS = frozenset({"type", "title", "message", "data", "userIds"})
_TEXT_LIMITS = {"type": 100, "title": 255, "message": 10_000}
_collection = system.SYSTEM_COLLECTIONS["notifications"]
_table = _collection.table
_NEWEST_FIRST = (("createdAt", True),)
Notification = dict[str, Any]


def _own(who: Accountability) -> str:
    if who.user_id is None:
        raise Unauthorized("authentication required")
    return who.user_id


class NotificationService:
    def __init__(self, db: Database, permissions: PermissionService, relay: ChangeRelay) -> None:
        self._db = db
        self._permissions = permissions
        self._relay = relay

    async def send(self, who: Accountability, body: object) -> list[Notification]:
        """One notification per user in ``userIds``, all in one transaction."""
        if self._permissions.scope(who, _collection, "create") is None:
            raise Forbidden("you may not send notifications")
        body = object_with(body, _SEND_KEYS, "notification")
        values = {name: self._text(body, name) for name in _TEXT_LIMITS}
        recipients = self._recipients(body.get("userIds"))
        now = utcnow()
        rows = [
            {"id": str(uuid.uuid4()), "userId": user_id, "data": body.get("data"), "seen": False,
             "createdAt": now, **values}
            for user_id in recipients
        ]  # fmt: skip
        async with self._db.transaction(who.user_id) as conn:
            known = set(
                await conn.scalars(
                    select(system.users.c.id).where(system.users.c.id.in_(recipients))
                )
            )
            unknown = [user_id for user_id in recipients if user_id not in known]
            if unknown:
                raise BadRequest(f"unknown user ids: {_some(unknown)}", "UNKNOWN_USERS")
            await conn.execute(insert(_table), rows)
        await self._relay.flush()
        return rows

    def _text(self, body: dict[str, Any], name: str) -> str | None:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > _TEXT_LIMITS[name]):
            raise BadRequest(f"{name} must be a string of at most {_TEXT_LIMITS[name]} characters")
        if name == "title" and not value:
            raise BadRequest("title is required")
        return value

    def _recipients(self, raw: object) -> list[str]:
        if not isinstance(raw, list) or not raw:
            raise BadRequest("userIds must be a non-empty list of user ids")
        if len(raw) > MAX_RECIPIENTS:
            raise BadRequest(f"at most {MAX_RECIPIENTS} recipients per request")
        ids = [coerce_value(FieldKind.UUID, value, "userIds") for value in raw]
        return list(dict.fromkeys(ids))

    async def own(self, who: Accountability, query: Query) -> tuple[list[Notification], int]:
        """The caller's notifications, newest first, with the query's filter and paging."""
        # Every field of one's own notifications is readable, and no other user's row is.
        scope = Scope(fields=None, condition=filters.Compare("userId", "eq", _own(who)))
        return await listing.read_list(self._db, _collection, scope, query, _NEWEST_FIRST)

    async def unread_count(self, who: Accountability) -> int:
        owner = _own(who)
        query = select(func.count()).where(_table.c.userId == owner, _table.c.seen.is_(False))
        async with self._db.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def mark_seen(self, who: Accountability, body: object) -> list[Notification]:
        """Mark the given notifications (or all unread ones) seen; another user's id is 404."""
        owner = _own(who)
        body = object_with(body if body is not None else {}, {"notificationIds"}, "body")
        ids = body.get("notificationIds")
        mine = (_table.c.userId == owner) & _table.c.seen.is_(False)
        async with self._db.transaction(who.user_id) as conn:
            if ids is not None:
                wanted = self._ids(ids)
                await self._require_own(conn, owner, wanted)
                mine = mine & _table.c.id.in_(wanted)
            rows = [dict(r) for r in (await conn.execute(select(_table).where(mine))).mappings()]
            if rows:
                await conn.execute(
                    update(_table).where(_table.c.id.in_([r["id"] for r in rows])).values(seen=True)
                )
        changed = [{**row, "seen": True} for row in rows]
        await self._relay.flush()
        return changed

    async def delete(self, who: Accountability, notification_id: str) -> str:
        owner = _own(who)
        (key,) = self._ids([notification_id], not_found=True)
        async with self._db.transaction(who.user_id) as conn:
            query = select(_table).where(_table.c.id == key, _table.c.userId == owner)
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                raise NotFound(f"notification {notification_id!r} not found")
            await conn.execute(delete(_table).where(_table.c.id == key))
        await self._relay.flush()
        return key

    def _ids(self, raw: object, not_found: bool = False) -> list[str]:
        if not isinstance(raw, list):
            raise BadRequest("notificationIds must be a list of ids")
        if len(raw) > MAX_MARK_SEEN:
            raise BadRequest(f"at most {MAX_MARK_SEEN} notificationIds per request")
        try:
            return [coerce_value(FieldKind.UUID, value, "notificationIds") for value in raw]
        except Exception:
            if not_found:
                raise NotFound(f"notification {raw[0]!r} not found") from None
            raise

    async def _require_own(self, conn: Any, owner: str, ids: list[str]) -> None:
        query = select(_table.c.id).where(_table.c.id.in_(ids), _table.c.userId == owner)
        found = set(await conn.scalars(query))
        missing = [key for key in ids if key not in found]
        if missing:
            # Someone else's notification is "not found": ids must not leak.
            raise NotFound(f"notification(s) not found: {_some(missing)}")


def _some(ids: list[str]) -> str:
    """The first few ``ids``, and how many more there are."""
    shown = ", ".join(ids[:_SHOWN_IDS])
    more = len(ids) - _SHOWN_IDS
    return f"{shown} and {more} more" if more > 0 else shown
