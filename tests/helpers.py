"""Small helpers shared by API tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from livebase.services.events import Event

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    """An HTTP client against a started app, plus the administrator's token."""

    client: httpx.AsyncClient
    admin_token: str
    events: list[Event] = field(default_factory=list)
    app: Any = None

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.admin_token)

    async def ok(self, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        """Send a request, assert its status, return the decoded body."""
        response = await self.client.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.status_code, response.text)
        return response.json()

    async def user(self, email: str, password: str = "password-123") -> tuple[str, dict[str, Any]]:
        """Register a user; returns (token, user)."""
        body = await self.ok(
            "POST", "/auth/register", 201, json={"email": email, "password": password}
        )
        return body["token"], body["user"]

    async def collection(self, name: str, fields: dict[str, Any], **options: Any) -> None:
        schema = {"fields": fields, **options}
        await self.ok(
            "POST",
            "/schemas",
            201,
            headers=self.admin,
            json={"collectionName": name, "schema": schema},
        )

    async def allow(self, role: str, collection: str, action: str, **rule: Any) -> dict[str, Any]:
        body = {"role": role, "collection": collection, "action": action, **rule}
        created = await self.ok("POST", "/permissions", 201, headers=self.admin, json=body)
        return dict(created["data"])
