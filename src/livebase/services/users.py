"""User accounts: creating them, the rules of the ``users`` collection, the first administrator."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from livebase.services.accountability import ADMIN_ROLE
from livebase.services.errors import BadRequest, Conflict, ValidationFailed
from livebase.services.events import Action
from livebase.services.passwords import hash_password
from livebase.storage import system
from livebase.storage.database import AdvisoryLock, Database
from livebase.storage.types import utcnow

STATUSES = ("active", "suspended")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


def public_user(row: Any) -> dict[str, Any]:
    """A user record as it may leave the server: never the password hash."""
    visible = system.SYSTEM_COLLECTIONS["users"].visible_fields
    return {name: row.get(name) for name in visible}


def normalise_email(email: object) -> str:
    if not isinstance(email, str) or not _EMAIL.match(email.strip()):
        raise ValidationFailed("email: must be an e-mail address", "INVALID_EMAIL")
    return email.strip().lower()


def check_password(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(
            f"password: must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", "WEAK_PASSWORD"
        )
    return password


async def role_exists(conn: AsyncConnection, role: str) -> bool:
    return (
        await conn.scalar(select(system.roles.c.id).where(system.roles.c.name == role)) is not None
    )


async def insert_user(
    conn: AsyncConnection,
    *,
    email: str,
    password: str,
    role: str,
    first_name: str | None = None,
    last_name: str | None = None,
) -> dict[str, Any]:
    now = utcnow()
    values = {
        "id": str(uuid.uuid4()),
        "email": normalise_email(email),
        "password": await hash_password(check_password(password)),
        "firstName": first_name,
        "lastName": last_name,
        "role": role,
        "status": "active",
        "createdAt": now,
        "updatedAt": now,
    }
    try:
        await conn.execute(insert(system.users).values(**values))
    except IntegrityError:
        raise Conflict("a user with this e-mail already exists", "EMAIL_TAKEN") from None
    return values


class UserRules:
    """Rules of writes to ``users`` through the items API."""

    async def prepare(
        self,
        conn: AsyncConnection,
        action: Action,
        data: dict[str, Any],
        previous: dict[str, Any] | None,
    ) -> dict[str, Any]:
        data = dict(data)
        if "email" in data:
            data["email"] = normalise_email(data["email"])
        if "password" in data:
            data["password"] = await hash_password(check_password(data["password"]))
        elif action == "create":
            raise ValidationFailed("field password: is required", "FIELD_REQUIRED")
        if action == "create":
            data.setdefault("role", "user")
        if "role" in data and (
            not isinstance(data["role"], str) or not await role_exists(conn, data["role"])
        ):
            raise BadRequest(f"role {data['role']!r} does not exist")
        if "status" in data and data["status"] not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        if previous is not None and _loses_admin(action, data, previous):
            await _refuse_last_admin(conn, previous["id"])
        return data

    async def after_write(
        self,
        conn: AsyncConnection,
        action: Action,
        item: dict[str, Any],
        previous: dict[str, Any] | None,
    ) -> None:
        if action == "delete":
            await conn.execute(
                delete(system.sessions).where(system.sessions.c.userId == item["id"])
            )


def _loses_admin(action: Action, data: dict[str, Any], previous: dict[str, Any]) -> bool:
    if previous["role"] != ADMIN_ROLE or previous["status"] != "active":
        return False
    return (
        action == "delete"
        or data.get("role", ADMIN_ROLE) != ADMIN_ROLE
        or data.get("status", "active") != "active"
    )


async def _refuse_last_admin(conn: AsyncConnection, user_id: str) -> None:
    others = await conn.scalar(
        select(func.count())
        .select_from(system.users)
        .where(
            system.users.c.role == ADMIN_ROLE,
            system.users.c.status == "active",
            system.users.c.id != user_id,
        )
    )
    if not others:
        raise Conflict("this is the last active administrator; make another one first")


@dataclass(frozen=True)
class AdminBootstrap:
    email: str
    generated_password: str | None
    created: bool


ADMIN_BOOTSTRAP_LOCK = AdvisoryLock.ADMIN_BOOTSTRAP


async def ensure_admin(db: Database, email: str, password: str | None) -> AdminBootstrap:
    """Create the first administrator unless one exists (first start)."""
    async with db.transaction() as conn:
        await db.serialize(conn, ADMIN_BOOTSTRAP_LOCK)  # several processes may start at once
        existing = await conn.scalar(
            select(system.users.c.email).where(system.users.c.role == ADMIN_ROLE).limit(1)
        )
        if existing is not None:
            return AdminBootstrap(email=existing, generated_password=None, created=False)
        generated = None if password else secrets.token_urlsafe(12)
        await insert_user(conn, email=email, password=password or str(generated), role=ADMIN_ROLE)
    return AdminBootstrap(email=normalise_email(email), generated_password=generated, created=True)


async def create_admin(db: Database, email: str, password: str) -> dict[str, Any]:
    """``livebase create-admin``: a new administrator account."""
    async with db.transaction() as conn:
        return public_user(await insert_user(conn, email=email, password=password, role=ADMIN_ROLE))
