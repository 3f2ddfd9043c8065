"""Accounts and sessions: register, login, token checks, refresh, logout."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from livebase.services.accountability import PUBLIC, USER_ROLE, Accountability
from livebase.services.errors import Forbidden, Unauthorized
from livebase.services.events import ChangeEvent, Event, EventBus, SessionRevoked
from livebase.services.passwords import verify_password
from livebase.services.ratelimit import RateLimiter
from livebase.services.relay import ChangeRelay
from livebase.services.sessions import SessionCache
from livebase.services.tokens import TokenCodec
from livebase.services.users import insert_user, normalise_email, public_user
from livebase.storage import system
from livebase.storage.database import Database
from livebase.storage.types import utcnow


@dataclass(frozen=True)
class SignedIn:
    token: str
    user: dict[str, Any]
    expires_at: Any


# Built once: constructing the statement per request cost more than running it.
_SESSION_STATE = (
    select(
        system.sessions.c.revokedAt,
        system.sessions.c.userId,
        system.users.c.role,
        system.users.c.status,
    )
    .select_from(
        system.sessions.outerjoin(system.users, system.users.c.id == system.sessions.c.userId)
    )
    .where(system.sessions.c.id == bindparam("session_id"))
)


class AuthService:
    def __init__(
        self,
        db: Database,
        tokens: TokenCodec,
        events: EventBus,
        limiter: RateLimiter,
        public_registration: bool,
        cache_sessions: bool = False,
        relay: ChangeRelay | None = None,
    ) -> None:
        """``cache_sessions``: only for a process alone on its database (see :mod:`sessions`).
        ``relay``: publishes a registration's ``users`` event before the answer."""
        self._db = db
        self._relay = relay
        self._tokens = tokens
        self._events = events
        self._limiter = limiter
        self._public_registration = public_registration
        self._sessions: SessionCache | None = None
        if cache_sessions:
            self._sessions = SessionCache()
            events.subscribe(self._forget)

    async def _forget(self, event: Event) -> None:
        # Any change to a user (role, status, password, deletion) may change
        # what its sessions allow; such changes are rare, so forget them all.
        assert self._sessions is not None
        if isinstance(event, SessionRevoked):
            self._sessions.forget_session(event.session_id)
        elif (
            isinstance(event, ChangeEvent)
            and event.collection == "users"
            and event.action != "create"
        ):
            self._sessions.forget_all()

    async def register(
        self,
        client: str,
        email: str,
        password: str,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> SignedIn:
        await self._limiter.hit(client)
        if not self._public_registration:
            raise Forbidden("public registration is disabled", "REGISTRATION_DISABLED")
        async with self._db.transaction() as conn:
            user = await insert_user(
                conn,
                email=email,
                password=password,
                role=USER_ROLE,
                first_name=first_name,
                last_name=last_name,
            )
        if self._relay is not None:
            await self._relay.flush()
        return await self._sign_in(user)

    async def login(self, client: str, email: str, password: str) -> SignedIn:
        await self._limiter.hit(client)
        try:
            address = normalise_email(email)
        except Exception:
            address = ""
        async with self._db.connect() as conn:
            row = (
                (await conn.execute(select(system.users).where(system.users.c.email == address)))
                .mappings()
                .first()
            )
        if not await verify_password(row["password"] if row else None, password) or row is None:
            raise Unauthorized("invalid e-mail or password", "INVALID_CREDENTIALS")
        if row["status"] != "active":
            raise Unauthorized("this account is suspended", "USER_SUSPENDED")
        return await self._sign_in(dict(row))

    async def _sign_in(self, user: dict[str, Any]) -> SignedIn:
        now = utcnow()
        session_id = str(uuid.uuid4())
        expires_at = now + self._tokens.lifetime
        async with self._db.transaction() as conn:
            await conn.execute(
                system.sessions.insert().values(
                    id=session_id, userId=user["id"], expiresAt=expires_at, createdAt=now
                )
            )
            await conn.execute(
                update(system.users).where(system.users.c.id == user["id"]).values(lastAccess=now)
            )
        token = self._tokens.issue(user["id"], user["role"], session_id, expires_at)
        return SignedIn(
            token=token, user=public_user({**user, "lastAccess": now}), expires_at=expires_at
        )

    async def authenticate(self, token: str | None) -> Accountability:
        """The accountability for a bearer token; no token means the public role."""
        if token is None:
            return PUBLIC
        claims = self._tokens.decode(token)
        cache = self._sessions
        if cache is not None:
            state = cache.get(claims.session_id)
            if state is not None and state.user_id == claims.user_id:
                return Accountability(
                    user_id=claims.user_id,
                    role=state.role,
                    session_id=claims.session_id,
                    expires_at=claims.expires_at,
                )
            generation = cache.generation
        async with self._db.connect() as conn:
            result = await conn.execute(_SESSION_STATE, {"session_id": claims.session_id})
            row = result.mappings().first()
        if row is None or row["userId"] != claims.user_id:
            raise Unauthorized("session not found", "INVALID_TOKEN")
        if row["revokedAt"] is not None:
            raise Unauthorized("session revoked (logged out)", "SESSION_REVOKED")
        if row["role"] is None:
            raise Unauthorized("user no longer exists", "INVALID_TOKEN")
        if row["status"] != "active":
            raise Unauthorized("this account is suspended", "USER_SUSPENDED")
        if cache is not None:
            cache.put(claims.session_id, claims.user_id, row["role"], generation)
        return Accountability(
            user_id=claims.user_id,
            role=row["role"],
            session_id=claims.session_id,
            expires_at=claims.expires_at,
        )

    async def me(self, who: Accountability) -> dict[str, Any]:
        if who.user_id is None:
            raise Unauthorized("authentication required")
        async with self._db.connect() as conn:
            row = (
                (await conn.execute(select(system.users).where(system.users.c.id == who.user_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise Unauthorized("user no longer exists")
        return public_user(row)

    async def refresh(self, who: Accountability) -> SignedIn:
        """A new token for the same session, with a new expiry."""
        user = await self.me(who)
        assert who.session_id is not None
        expires_at = utcnow() + self._tokens.lifetime
        async with self._db.transaction() as conn:
            await conn.execute(
                update(system.sessions)
                .where(system.sessions.c.id == who.session_id)
                .values(expiresAt=expires_at)
            )
        token = self._tokens.issue(user["id"], user["role"], who.session_id, expires_at)
        return SignedIn(token=token, user=user, expires_at=expires_at)

    async def logout(self, who: Accountability) -> None:
        if who.user_id is None or who.session_id is None:
            raise Unauthorized("authentication required")
        async with self._db.transaction() as conn:
            await conn.execute(
                update(system.sessions)
                .where(system.sessions.c.id == who.session_id)
                .values(revokedAt=utcnow())
            )
        await self._events.publish(SessionRevoked(session_id=who.session_id, user_id=who.user_id))
