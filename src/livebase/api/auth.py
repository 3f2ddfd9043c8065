"""``/auth``: register, login, me, refresh, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from livebase.api.deps import ServicesDep, SignedInUser, client_address
from livebase.api.responses import ORJSONResponse
from livebase.services.auth import SignedIn

router = APIRouter(prefix="/auth", tags=["auth"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Register(_Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    firstName: str | None = Field(None, max_length=255)
    lastName: str | None = Field(None, max_length=255)


class Login(_Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


def _signed_in(result: SignedIn) -> dict[str, Any]:
    return {
        "token": result.token,
        "user": result.user,
        "role": {"name": result.user["role"]},
        "expiresAt": result.expires_at,
    }


@router.post("/register", status_code=201)
async def register(body: Register, request: Request, services: ServicesDep) -> ORJSONResponse:
    result = await services.auth.register(
        client_address(request), body.email, body.password, body.firstName, body.lastName
    )
    return ORJSONResponse(_signed_in(result), status_code=201)


@router.post("/login")
async def login(body: Login, request: Request, services: ServicesDep) -> ORJSONResponse:
    result = await services.auth.login(client_address(request), body.email, body.password)
    return ORJSONResponse(_signed_in(result))


@router.get("/me")
async def me(who: SignedInUser, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse({"data": await services.auth.me(who)})


@router.post("/refresh")
async def refresh(who: SignedInUser, services: ServicesDep) -> ORJSONResponse:
    return ORJSONResponse(_signed_in(await services.auth.refresh(who)))


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(who: SignedInUser, services: ServicesDep) -> ORJSONResponse:
    await services.auth.logout(who)
    return ORJSONResponse({"data": {"message": "logged out"}})
