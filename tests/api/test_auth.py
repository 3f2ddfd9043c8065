"""Authentication: register, login, me, refresh, logout, and every way a token is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from livebase.services.events import SessionRevoked
from livebase.services.tokens import TokenCodec
from tests.helpers import Api, bearer

SECRET = "test-secret-key-that-is-long-enough-for-hs256"


async def test_register_login_me_refresh_logout(api: Api) -> None:
    registered = await api.ok(
        "POST",
        "/auth/register",
        201,
        json={"email": "Ann@Example.com", "password": "password-123", "firstName": "Ann"},
    )
    assert registered["user"]["email"] == "ann@example.com"
    assert registered["user"]["role"] == "user"
    assert "password" not in registered["user"]

    login = await api.ok(
        "POST", "/auth/login", json={"email": "ann@example.com", "password": "password-123"}
    )
    assert set(login) >= {"token", "user", "role"}
    assert login["role"]["name"] == "user"
    token = login["token"]

    me = await api.ok("GET", "/auth/me", headers=bearer(token))
    assert me["data"]["email"] == "ann@example.com"
    assert me["data"]["firstName"] == "Ann"
    assert "password" not in me["data"]

    refreshed = await api.ok("POST", "/auth/refresh", headers=bearer(token))
    new_token = refreshed["token"]
    await api.ok("GET", "/auth/me", headers=bearer(new_token))

    await api.ok("POST", "/auth/logout", headers=bearer(new_token))
    # The refreshed token belongs to the same session: both are revoked.
    for revoked in (token, new_token):
        response = await api.client.get("/auth/me", headers=bearer(revoked))
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "session revoked (logged out)"
    assert any(isinstance(e, SessionRevoked) for e in api.events)


async def test_logout_revokes_only_that_session(api: Api) -> None:
    await api.user("bo@example.com")
    credentials = {"email": "bo@example.com", "password": "password-123"}
    first = (await api.ok("POST", "/auth/login", json=credentials))["token"]
    second = (await api.ok("POST", "/auth/login", json=credentials))["token"]
    await api.ok("GET", "/auth/logout", headers=bearer(first))
    assert (await api.client.get("/auth/me", headers=bearer(first))).status_code == 401
    await api.ok("GET", "/auth/me", headers=bearer(second))


def _token(secret: str, **claims: Any) -> str:
    codec = TokenCodec(secret, 3600)
    expires = claims.pop("expires_at", datetime.now(UTC) + timedelta(hours=1))
    return codec.issue(claims["user_id"], "user", claims["session_id"], expires)


@pytest.mark.parametrize(
    ("make_header", "message"),
    [
        (lambda s: "Bearer not-a-jwt", "malformed token"),
        (
            lambda s: "Bearer " + _token("another-secret-key-of-some-length!", **s),
            "invalid token signature",
        ),
        (
            lambda s: (
                "Bearer " + _token(SECRET, expires_at=datetime.now(UTC) - timedelta(seconds=5), **s)
            ),
            "token expired",
        ),
        (lambda s: "Basic YWRtaW46YWRtaW4=", "Authorization header must be 'Bearer <token>'"),
        (
            lambda s: (
                "Bearer "
                + _token(
                    SECRET, user_id=s["user_id"], session_id="00000000-0000-4000-8000-0000000000ff"
                )
            ),
            "session not found",
        ),
    ],
    ids=["malformed", "foreign-key", "expired", "not-bearer", "unknown-session"],
)
async def test_bad_tokens_are_refused_with_a_clear_message(
    api: Api, make_header: Any, message: str
) -> None:
    token, user = await api.user("cy@example.com")
    session = TokenCodec(SECRET, 3600).decode(token)
    header = make_header({"user_id": user["id"], "session_id": session.session_id})
    response = await api.client.get("/auth/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json() == {
        "error": {"message": message, "code": response.json()["error"]["code"]}
    }


async def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    await api.user("di@example.com")
    for body in (
        {"email": "di@example.com", "password": "wrong-password"},
        {"email": "nobody@example.com", "password": "password-123"},
    ):
        response = await api.client.post("/auth/login", json=body)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "invalid e-mail or password"


async def test_register_refuses_duplicates_and_weak_passwords(api: Api) -> None:
    await api.user("ed@example.com")
    taken = await api.client.post(
        "/auth/register", json={"email": "ED@example.com", "password": "password-123"}
    )
    assert taken.status_code == 409
    weak = await api.client.post(
        "/auth/register", json={"email": "f@example.com", "password": "short"}
    )
    assert weak.status_code == 422
    bad_email = await api.client.post(
        "/auth/register", json={"email": "nope", "password": "password-123"}
    )
    assert bad_email.status_code == 422


async def test_suspended_user_is_refused_everywhere(api: Api) -> None:
    token, user = await api.user("gi@example.com")
    await api.ok(
        "PATCH", f"/items/users/{user['id']}", headers=api.admin, json={"status": "suspended"}
    )
    me = await api.client.get("/auth/me", headers=bearer(token))
    assert me.status_code == 401
    assert me.json()["error"]["message"] == "this account is suspended"
    login = await api.client.post(
        "/auth/login", json={"email": "gi@example.com", "password": "password-123"}
    )
    assert login.status_code == 401


async def test_deleted_user_token_is_refused(api: Api) -> None:
    token, user = await api.user("hu@example.com")
    await api.ok("DELETE", f"/items/users/{user['id']}", headers=api.admin)
    assert (await api.client.get("/auth/me", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"RATE_LIMIT_AUTH": 4}])
async def test_login_and_register_are_rate_limited_per_ip(api: Api) -> None:
    # The fixture's administrator login was the first of the four attempts.
    body = {"email": "x@example.com", "password": "whatever-123"}
    statuses = [(await api.client.post("/auth/login", json=body)).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    limited = await api.client.post("/auth/register", json=body)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMITED"


@pytest.mark.parametrize("settings_overrides", [{"PUBLIC_REGISTRATION": False}])
async def test_registration_can_be_disabled(api: Api) -> None:
    response = await api.client.post(
        "/auth/register", json={"email": "y@example.com", "password": "password-123"}
    )
    assert response.status_code == 403


async def test_password_hashes_never_leave_the_server(api: Api) -> None:
    _, user = await api.user("iv@example.com")
    responses = [
        await api.client.get("/items/users", headers=api.admin),
        await api.client.get(f"/items/users/{user['id']}", headers=api.admin),
        await api.client.get("/items/users?fields=*", headers=api.admin),
        await api.client.patch(
            f"/items/users/{user['id']}", headers=api.admin, json={"firstName": "Iv"}
        ),
        await api.client.get("/schemas/users", headers=api.admin),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert "$argon2" not in response.text
    asking = await api.client.get("/items/users?fields=password", headers=api.admin)
    assert asking.status_code == 400
    filtering = await api.client.get(
        '/items/users?filter={"password":{"isNull":false}}', headers=api.admin
    )
    assert filtering.status_code == 400


# The session cache (services/sessions.py): each token below has been used, so
# its session is cached; every change must still apply to the very next request.
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("logout", "session revoked (logged out)"),
        ("suspend", "this account is suspended"),
        ("delete", "session not found"),
    ],
)
async def test_a_cached_session_is_refused_right_after_a_change(
    api: Api, change: str, message: str
) -> None:
    token, user = await api.user("ivy@example.com")
    for _ in range(2):
        await api.ok("GET", "/auth/me", headers=bearer(token))
    if change == "logout":
        await api.ok("POST", "/auth/logout", headers=bearer(token))
    elif change == "suspend":
        await api.ok(
            "PATCH", f"/items/users/{user['id']}", headers=api.admin, json={"status": "suspended"}
        )
    else:
        await api.ok("DELETE", f"/items/users/{user['id']}", headers=api.admin)
    response = await api.client.get("/items/users", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == message


async def test_a_cached_session_follows_a_role_change(api: Api) -> None:
    token, user = await api.user("jo@example.com")
    assert (await api.client.get("/roles", headers=bearer(token))).status_code == 403
    await api.ok(
        "PATCH", f"/items/users/{user['id']}", headers=api.admin, json={"role": "administrator"}
    )
    await api.ok("GET", "/roles", headers=bearer(token))
    await api.ok("PATCH", f"/items/users/{user['id']}", headers=api.admin, json={"role": "user"})
    assert (await api.client.get("/roles", headers=bearer(token))).status_code == 403
