"""JWT access tokens (HS256) carrying user id, role and session id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from livebase.bounded import BoundedCache
from livebase.services.errors import Unauthorized

_ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    role: str
    session_id: str
    expires_at: datetime


# Verified tokens, so that a client's every request does not verify its token
# again (a sixth of a REST write's CPU); expiry is still checked on each use.
_VERIFIED_CACHE = 10_000


class TokenCodec:
    def __init__(self, secret: str, lifetime_seconds: int) -> None:
        self._secret = secret
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self._verified: BoundedCache[str, TokenClaims] = BoundedCache(_VERIFIED_CACHE)

    def issue(self, user_id: str, role: str, session_id: str, expires_at: datetime) -> str:
        now = datetime.now(UTC)
        payload = {
            "sub": user_id,
            "role": role,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return jwt.encode(payload, self._secret, algorithm=_ALGORITHM)

    def decode(self, token: str) -> TokenClaims:
        """Verify a token; every refusal is :class:`Unauthorized` with one clear message."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verified.put(token, self._verify(token))
        elif claims.expires_at <= datetime.now(UTC):
            del self._verified[token]
            raise Unauthorized("token expired", "TOKEN_EXPIRED")
        return claims

    def _verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={"require": ["sub", "sid", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired", "TOKEN_EXPIRED") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("invalid token signature", "INVALID_TOKEN") from None
        except jwt.DecodeError:
            raise Unauthorized("malformed token", "INVALID_TOKEN") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}", "INVALID_TOKEN") from None
        user_id, session_id, role = payload.get("sub"), payload.get("sid"), payload.get("role")
        if not isinstance(user_id, str) or not isinstance(session_id, str):
            raise Unauthorized("malformed token", "INVALID_TOKEN")
        return TokenClaims(
            user_id=user_id,
            role=role if isinstance(role, str) else "",
            session_id=session_id,
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
