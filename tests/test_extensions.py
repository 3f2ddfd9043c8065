"""Extensions (docs/extensions.md): loading, hook tables, before/after hooks, routers, setup()."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from livebase.app import services_of
from livebase.extensions import ExtensionError, load_extensions
from livebase.services.events import ChangeEvent
from tests.api.conftest import make_settings, running_api
from tests.helpers import Api, bearer
from tests.servers import environment

HOOKS = """
import asyncio

calls = []

async def stamp(data, context):
    calls.append(("before", context.collection, context.action, context.accountability["role"]))
    if data.get("title") == "forbidden":
        raise ValueError("titles may not be 'forbidden'")
    if data.get("title") == "wrong type":
        return "not a dict"
    return {**data, "title": data.get("title", "").upper()}

async def first(item, context):
    calls.append(("after-1", item["title"]))
    raise RuntimeError("after hooks may fail")

async def second(item, context):
    await asyncio.sleep(0.2)  # slow: the HTTP response must not wait for it
    calls.append(("after-2", item["title"]))
    await context.services.items("audit").create({"line": f"created {item['title']}"})

def any_delete(data, context):
    calls.append(("delete", context.collection, data["id"]))
    return data

def read(query, context):
    calls.append(("read", context.collection))
    return {**query, "filter": {"title": {"ne": "HIDDEN"}}}

hook = {
    "id": "test-hooks",
    "events": [
        {"collection": "posts", "action": "items.create", "handler": stamp},
        {"collection": "posts", "action": "items.create.after", "handler": first},
        {"collection": "posts", "action": "items.create.after", "handler": second},
        {"collection": "*", "action": "items.delete", "handler": any_delete},
        {"collection": "posts", "action": "items.read", "handler": read},
    ],
}
"""

ROUTER = """
from fastapi import APIRouter
router = APIRouter()

@router.get("/custom/ping")
async def ping():
    return {"data": "pong"}

started = []

async def setup(services):
    started.append(services.socket is not None)
"""


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, code in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(code))
    return folder


@pytest.fixture
async def hooked(database_url: str, tmp_path: Path) -> Api:
    folder = _write(tmp_path / "ext", {"hooks.py": HOOKS, "endpoints/__init__.py": ROUTER})
    settings = make_settings(database_url, tmp_path, EXTENSIONS_PATH=folder)
    async with running_api(settings) as api:
        await api.collection("posts", {"title": {"type": "String"}})
        await api.collection("audit", {"line": {"type": "String"}})
        yield api


def _calls(api: Api) -> list:
    import livebase_extensions.hooks as hooks  # the module as loaded

    return hooks.calls


async def test_before_hooks_change_or_refuse_and_after_hooks_run_after_commit(
    hooked: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = hooked
    created = await api.ok("POST", "/items/posts", 201, headers=api.admin, json={"title": "hello"})
    assert created["data"]["title"] == "HELLO"
    refused = await api.client.post("/items/posts", headers=api.admin, json={"title": "forbidden"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "titles may not be 'forbidden'"
    wrong = await api.client.post("/items/posts", headers=api.admin, json={"title": "wrong type"})
    assert wrong.status_code == 400 and "test-hooks" in wrong.json()["error"]["message"]

    with caplog.at_level(logging.ERROR, logger="livebase.hooks"):
        await services_of(api.app).hooks.drain()
    calls = _calls(api)
    assert ("after-1", "HELLO") in calls and ("after-2", "HELLO") in calls
    assert calls.index(("after-1", "HELLO")) < calls.index(("after-2", "HELLO"))
    assert "test-hooks" in caplog.text  # the failing after hook is logged with its id
    audit = await api.ok("GET", "/items/audit", headers=api.admin)
    assert [row["line"] for row in audit["data"]] == ["created HELLO"]
    titles = await api.ok("GET", "/items/posts", headers=api.admin)
    assert [row["title"] for row in titles["data"]] == ["HELLO"]  # refused writes left nothing
    created_events = [
        e for e in api.events if isinstance(e, ChangeEvent) and e.collection == "posts"
    ]
    assert len(created_events) == 1


async def test_read_and_wildcard_delete_hooks(hooked: Api) -> None:
    api = hooked
    for title in ("shown", "hidden"):
        await api.ok("POST", "/items/posts", 201, headers=api.admin, json={"title": title})
    listed = await api.ok("GET", "/items/posts", headers=api.admin)
    assert [row["title"] for row in listed["data"]] == ["SHOWN"]
    audit = await api.ok("POST", "/items/audit", 201, headers=api.admin, json={"line": "x"})
    await api.ok("DELETE", f"/items/audit/{audit['data']['id']}", headers=api.admin)
    assert ("delete", "audit", audit["data"]["id"]) in _calls(api)


async def test_routers_are_mounted_and_setup_is_called(hooked: Api) -> None:
    assert (await hooked.ok("GET", "/custom/ping")) == {"data": "pong"}
    import livebase_extensions.endpoints as endpoints

    assert endpoints.started == [True]


async def test_hook_context_carries_the_users_accountability(hooked: Api) -> None:
    token, _ = await hooked.user("ann@example.com")
    await hooked.allow("user", "posts", "create")
    await hooked.ok("POST", "/items/posts", 201, headers=bearer(token), json={"title": "mine"})
    assert ("before", "posts", "items.create", "user") in _calls(hooked)


def test_a_module_that_fails_to_import_is_named(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ext", {"good.py": "x = 1\n", "broken.py": "import not_a_module\n"})
    with pytest.raises(ExtensionError, match=r"broken\.py failed to import: ModuleNotFoundError"):
        load_extensions(folder)
    env = environment(EXTENSIONS_PATH=str(folder), DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [sys.executable, "-m", "livebase", "serve"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "livebase: extension broken.py failed to import: ModuleNotFoundError: "
        "No module named 'not_a_module'"
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[1]", "must be a dict"),
        ("{'events': 'x'}", "must be a dict with an 'events' list"),
        ("{'events': [{'collection': 'a', 'action': 'items.fly', 'handler': print}]}", "'action'"),
        (
            "{'events': [{'collection': '', 'action': 'items.read', 'handler': print}]}",
            "'collection'",
        ),
        ("{'events': [{'collection': 'a', 'action': 'items.read', 'handler': 5}]}", "'handler'"),
    ],
)
async def test_malformed_hook_tables_stop_start_up(
    database_url: str, tmp_path: Path, table: str, message: str
) -> None:
    folder = _write(tmp_path / "ext", {"bad.py": f"hook = {table}\n"})
    settings = make_settings(database_url, tmp_path, EXTENSIONS_PATH=folder)
    with pytest.raises(ExtensionError, match=message):
        async with running_api(settings):
            pass
