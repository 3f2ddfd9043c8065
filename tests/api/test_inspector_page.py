"""The inspector page's files at /admin/ (the page itself runs in tests/browser/).

The module is pointed at a fake directory in ``tmp_path``: the page's files,
and secrets next to them that no URL may reach.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livebase.api import inspector
from tests.helpers import Api

SECRET = "not for the web"
FILES = {
    "index.html": ("<!doctype html><title>inspector</title>", "text/html; charset=utf-8"),
    "app.js": ("console.log('inspector');", "text/javascript; charset=utf-8"),
    "style.css": ("body {}", "text/css; charset=utf-8"),
    "vendor/socket.io.min.js": ("/*! Socket.IO */", "text/javascript; charset=utf-8"),
}


@pytest.fixture
def page_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "inspector"
    (root / "vendor").mkdir(parents=True)
    for name, (text, _type) in FILES.items():
        (root / name).write_text(text)
    (root / ".gitignore").write_text(SECRET)
    (root / "vendor" / "notes.txt").write_text(SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    monkeypatch.setattr(inspector, "PAGE_DIR", root)
    return root


async def test_its_files_are_served_with_a_strict_policy(api: Api, page_dir: Path) -> None:
    for name, (text, media_type) in FILES.items():
        url = "/admin/" if name == "index.html" else f"/admin/{name}"
        response = await api.client.get(url)  # no token: the page holds no data
        assert response.status_code == 200, (url, response.text)
        assert response.text == text and response.headers["content-type"] == media_type
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"
    config = await api.client.get("/admin/config.js")
    assert config.status_code == 200
    assert config.text.startswith("window.livebaseConfig = ")
    values = json.loads(config.text.removeprefix("window.livebaseConfig = ").rstrip(";\n"))
    assert values == {"socketEnabled": True, "socketPath": "/realtime"}
    bare = await api.client.get("/admin", follow_redirects=False)
    assert bare.status_code == 308 and bare.headers["location"] == "/admin/"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/index.html",  # the page is /admin/ only
        "/admin/.gitignore",
        "/admin/vendor/notes.txt",
        "/admin/../secret.txt",
        "/admin/%2e%2e/secret.txt",
        "/admin/vendor/",
    ],
)
async def test_nothing_else_is(api: Api, page_dir: Path, path: str) -> None:
    response = await api.client.get(path)
    assert response.status_code == 404, (path, response.text)
    assert SECRET not in response.text


async def test_a_missing_vendored_client_says_how_to_get_it(api: Api, page_dir: Path) -> None:
    (page_dir / "vendor" / "socket.io.min.js").unlink()
    response = await api.client.get("/admin/vendor/socket.io.min.js")
    assert response.status_code == 404
    assert "make demo-assets" in response.text


@pytest.mark.parametrize("settings_overrides", [{"ADMIN_UI_ENABLED": False}])
async def test_admin_ui_enabled_false_removes_the_page(api: Api, page_dir: Path) -> None:
    for path in ("/admin/", "/admin/app.js", "/admin/config.js"):
        response = await api.client.get(path)
        assert response.status_code == 404, (path, response.text)
    # The administrators' API stays: it needs their token anyway.
    sockets = await api.client.get("/stats/realtime/sockets", headers=api.admin)
    assert sockets.status_code == 200
