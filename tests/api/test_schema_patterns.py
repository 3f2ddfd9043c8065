"""``validate.is`` patterns: run by RE2, refused at schema time when RE2 cannot run them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from livebase.app import services_of
from livebase.storage import system
from tests.api.conftest import make_settings, running_api
from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, Api, bearer
from tests.servers import running_server

# With Python's re this backtracks 2**n times on n a's and a mismatch at the end.
HOSTILE_PATTERN = "(a+)+$"
HOSTILE_VALUE = "a" * 5000 + "!"


async def test_a_backtracking_pattern_answers_at_once_and_the_server_stays_up(
    database_url: str, tmp_path: Path
) -> None:
    # A real server: with the app in this test's own event loop, a stalled loop
    # would stall the test's clients as well and prove nothing.
    env = {"ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD,
           "DATABASE_URL": database_url, "LOG_LEVEL": "warning"}  # fmt: skip
    with running_server(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            login = await client.post(
                "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            admin = bearer(login.json()["token"])
            schema = {"fields": {"t": {"type": "Text", "validate": {"is": HOSTILE_PATTERN}}}}
            created = await client.post(
                "/schemas", headers=admin, json={"collectionName": "hostile", "schema": schema}
            )
            assert created.status_code == 201, created.text
            write, health = await asyncio.gather(
                client.post("/items/hostile", headers=admin, json={"t": HOSTILE_VALUE}),
                client.get("/health"),
            )
            assert write.status_code == 422, write.text
            assert "does not match" in write.json()["error"]["message"]
            assert health.status_code == 200
            matching = await client.post("/items/hostile", headers=admin, json={"t": "aaa"})
            assert matching.status_code == 201, matching.text


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "invalid escape sequence"),  # a backreference
        ("(?=a)b", "invalid perl operator"),  # a lookahead
        ("(?<!a)b", "invalid perl operator"),  # a lookbehind
        ("(", "missing )"),
        ("a" * 1001, "longer than 1000 characters"),
        (5, "must be a string"),
    ],
)
async def test_a_pattern_re2_cannot_run_is_refused_at_schema_time(
    api: Api, pattern: Any, reason: str
) -> None:
    schema = {"fields": {"code": {"type": "String", "validate": {"is": pattern}}}}
    created = await api.client.post(
        "/schemas", headers=api.admin, json={"collectionName": "things", "schema": schema}
    )
    assert created.status_code == 400, created.text
    message = created.json()["error"]["message"]
    assert "fields.code.validate.is" in message and reason in message
    assert (await api.ok("GET", "/schemas", headers=api.admin))["data"] == []

    await api.collection("things", {"title": {"type": "String"}})
    patched = await api.client.patch("/schemas/things", headers=api.admin, json=schema)
    assert patched.status_code == 400, patched.text
    assert "fields.code.validate.is" in patched.json()["error"]["message"]
    fields = (await api.ok("GET", "/schemas/things", headers=api.admin))["data"]["schema"]
    assert set(fields["fields"]) == {"title"}


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        ("^[A-Z]{3}$", "ABC", "ABCD"),
        ("b+", "abbc", "ac"),  # a search, not a full match, as before
        (r"\d{2}", "x12y", "x1y"),
        ("é", "café", "cafe"),
        ("(?i)^hello", "HeLLo world", "say hello"),
    ],
)
async def test_ordinary_patterns_keep_their_meaning(
    api: Api, pattern: str, good: str, bad: str
) -> None:
    await api.collection("things", {"code": {"type": "String", "validate": {"is": pattern}}})
    await api.ok("POST", "/items/things", 201, headers=api.admin, json={"code": good})
    refused = await api.client.post("/items/things", headers=api.admin, json={"code": bad})
    assert refused.status_code == 422, refused.text


@pytest.mark.parametrize("stored_pattern", [r"(a)\1", ["not", "a", "string"]])
async def test_a_stored_pattern_re2_cannot_run_refuses_writes_to_that_field_only(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, stored_pattern: Any
) -> None:
    settings = make_settings(database_url, tmp_path)
    fields = {"code": {"type": "String", "validate": {"is": "^a"}}, "note": {"type": "String"}}
    async with running_api(settings) as api:
        await api.collection("things", fields)
        # As a server before RE2 accepted it (a backreference), or worse.
        code = {"type": "String", "validate": {"is": stored_pattern}}
        stored = {"fields": {**fields, "code": code}}
        async with services_of(api.app).db.transaction() as conn:
            await conn.execute(
                update(system.schemas)
                .where(system.schemas.c.collectionName == "things")
                .values(schema=stored)
            )
    async with running_api(settings) as api:  # start-up reads the stored schema
        assert f"validate.is {stored_pattern!r} is unusable" in caplog.text
        await api.ok("POST", "/items/things", 201, headers=api.admin, json={"note": "fine"})
        refused = await api.client.post("/items/things", headers=api.admin, json={"code": "aa"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "UNUSABLE_PATTERN"
        listed = await api.ok("GET", "/items/things", headers=api.admin)
        assert [item["note"] for item in listed["data"]] == ["fine"]
