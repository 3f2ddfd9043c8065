"""Roles: the three built-in ones and those an administrator adds."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from livebase.services.accountability import Accountability, require_admin
from livebase.services.errors import BadRequest, Conflict, NotFound, object_with
from livebase.storage import system
from livebase.storage.database import Database
from livebase.storage.types import utcnow

_ROLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,99}")


class RoleService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, who: Accountability) -> list[dict[str, Any]]:
        require_admin(who)
        async with self._db.connect() as conn:
            rows = await conn.execute(select(system.roles).order_by(system.roles.c.createdAt))
            return [dict(row) for row in rows.mappings()]

    async def get(self, who: Accountability, role: str) -> dict[str, Any]:
        require_admin(who)
        async with self._db.connect() as conn:
            column = system.roles.c.name
            row = (
                (await conn.execute(select(system.roles).where(column == role))).mappings().first()
            )
        if row is None:
            raise NotFound(f"role {role!r} not found")
        return dict(row)

    async def create(self, who: Accountability, body: object) -> dict[str, Any]:
        require_admin(who)
        body = object_with(body, {"name", "description"}, "role")
        name, description = body.get("name"), body.get("description")
        if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
            raise BadRequest(
                "name: a letter then letters, digits, _ or - (max 100)", "INVALID_NAME"
            )
        if description is not None and (
            not isinstance(description, str) or len(description) > 2000
        ):
            raise BadRequest("description: a string of at most 2000 characters")
        values = {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": description,
            "createdAt": utcnow(),
        }
        try:
            async with self._db.transaction() as conn:
                await conn.execute(insert(system.roles).values(**values))
        except IntegrityError:
            raise Conflict(f"role {name!r} already exists") from None
        return values
