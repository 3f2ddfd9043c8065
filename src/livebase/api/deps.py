"""FastAPI dependencies: the services and who is asking."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from livebase.services.accountability import Accountability
from livebase.services.container import Services
from livebase.services.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="A token from /auth/login")


# async, like every dependency here: FastAPI runs a plain ``def`` dependency in a
# worker thread, a thread hop per request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_accountability(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Accountability:
    header = request.headers.get("authorization")
    if header is not None and credentials is None:
        raise Unauthorized("Authorization header must be 'Bearer <token>'", "INVALID_TOKEN")
    token = credentials.credentials if credentials else None
    return await services.auth.authenticate(token)


Who = Annotated[Accountability, Depends(get_accountability)]


async def require_user(who: Who) -> Accountability:
    if who.user_id is None:
        raise Unauthorized("authentication required")
    return who


SignedInUser = Annotated[Accountability, Depends(require_user)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
