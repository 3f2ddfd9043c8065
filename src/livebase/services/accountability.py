"""Who is acting: the user (or nobody) and the role whose permissions apply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from livebase.services.errors import Forbidden, Unauthorized

ADMIN_ROLE = "administrator"
USER_ROLE = "user"
PUBLIC_ROLE = "public"
NOBODY = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Accountability:
    user_id: str | None
    role: str
    session_id: str | None = None
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE

    @property
    def variables(self) -> dict[str, object]:
        """Values for ``$CURRENT_USER`` / ``$CURRENT_ROLE`` in permission conditions.

        Nobody (the public role) is the nil UUID, which no user has: ``None``
        would turn ``{"owner": {"eq": "$CURRENT_USER"}}`` into "owner is
        null" and hand ownerless rows to anonymous clients.
        """
        return {"$CURRENT_USER": self.user_id or NOBODY, "$CURRENT_ROLE": self.role}


PUBLIC = Accountability(user_id=None, role=PUBLIC_ROLE)
SYSTEM = Accountability(user_id=None, role=ADMIN_ROLE)


def require_admin(who: Accountability) -> None:
    """Refuse anyone but an administrator (401 without a token, else 403)."""
    if who.is_admin:
        return
    if who.user_id is None:
        raise Unauthorized("authentication required")
    raise Forbidden("administrator only")
