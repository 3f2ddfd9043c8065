"""The example clients under /examples/: the built React and Vue apps, and the
collaborative board's plain files.

Each test points the demo module at a fake source tree in ``tmp_path``: a
``dist/`` as ``vite build`` leaves it, the board's files, and secrets next to
them that no URL may reach. (The live demo page's routes are covered by
tests/js/demo.test.mjs, the pages themselves by tests/browser/.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livebase.api import demo
from tests.helpers import Api

SECRET = "not for the web"
BUILT = "/examples/react-live-feed"
BOARD = "/examples/collab-board"
BOARD_FILES = {
    "index.html": "<!doctype html><title>board</title>",
    "app.js": "console.log('board');",
    "style.css": ".note {}",
    "vendor/socket.io.min.js": "/*! Socket.IO */",
}


@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "examples"
    dist = root / "react-live-feed" / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>react</title>")
    (dist / "assets" / "index-abc123.js").write_text("console.log('react');")
    (dist / "assets" / "index-abc123.css").write_text("body {}")
    (dist / ".env").write_text(SECRET)
    (root / "react-live-feed" / "secret.txt").write_text(SECRET)
    (dist / "link.txt").symlink_to(root / "react-live-feed" / "secret.txt")
    (root / "vue-live-feed").mkdir()  # sources, but no build
    board = root / "collab-board"
    (board / "vendor").mkdir(parents=True)
    for name, text in BOARD_FILES.items():
        (board / name).write_text(text)
    (board / "package.json").write_text(SECRET)
    (board / ".gitignore").write_text(SECRET)
    (board / "vendor" / "notes.txt").write_text(SECRET)
    (root / "secret.txt").write_text(SECRET)
    monkeypatch.setattr(demo, "EXAMPLES_DIR", root)
    return root


async def test_the_build_is_served_at_its_base(api: Api, examples: Path) -> None:
    page = await api.client.get(f"{BUILT}/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.text == "<!doctype html><title>react</title>"

    script = await api.client.get(f"{BUILT}/assets/index-abc123.js")
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in {
        "text/javascript",
        "application/javascript",
    }
    # Vite names assets by their content: they never change in place.
    assert "immutable" in script.headers["cache-control"]
    style = await api.client.get(f"{BUILT}/assets/index-abc123.css")
    assert style.headers["content-type"].startswith("text/css")

    redirect = await api.client.get(BUILT)
    assert redirect.status_code in {307, 308}
    assert redirect.headers["location"].endswith(f"{BUILT}/")


@pytest.mark.parametrize(
    "path",
    [
        "secret.txt",  # not in dist/
        "..%2Fsecret.txt",
        "assets/..%2F..%2Fsecret.txt",
        "%2e%2e/secret.txt",
        "..%5Csecret.txt",
        "%2F" + "etc/passwd",
        "/etc/passwd",
        ".env",
        "assets/../.env",
        "link.txt",  # a link out of dist/
        "assets/",  # no directory listing
        "assets",
        "index.html%00.js",
        "nothing-here.js",
    ],
)
async def test_nothing_outside_the_build_and_no_listing(
    api: Api, examples: Path, path: str
) -> None:
    response = await api.client.get(f"{BUILT}/{path}")
    assert response.status_code == 404, (path, response.text)
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert SECRET not in response.text


async def test_an_example_not_built_yet_says_how_to_build_it(api: Api, examples: Path) -> None:
    for path in ["/examples/vue-live-feed/", "/examples/vue-live-feed/assets/index.js"]:
        response = await api.client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == {
            "message": "the vue-live-feed example is not built yet: run make examples",
            "code": "NOT_FOUND",
        }


async def test_only_the_known_examples(api: Api, examples: Path) -> None:
    (examples / "extensions" / "dist").mkdir(parents=True)
    (examples / "extensions" / "dist" / "index.html").write_text(SECRET)
    for path in ["/examples/extensions/", "/examples/..%2Freact-live-feed/", "/examples/x/y"]:
        response = await api.client.get(path)
        assert response.status_code == 404, path
        assert SECRET not in response.text


async def test_the_board_is_its_four_files_and_config(api: Api, examples: Path) -> None:
    types = {
        "index.html": "text/html; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "style.css": "text/css; charset=utf-8",
        "vendor/socket.io.min.js": "text/javascript; charset=utf-8",
    }
    for name, text in BOARD_FILES.items():
        response = await api.client.get(f"{BOARD}/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == types[name], name
        assert response.headers["cache-control"] == "no-cache", name
        assert response.text == text, name

    page = await api.client.get(f"{BOARD}/")
    assert page.text == BOARD_FILES["index.html"]
    redirect = await api.client.get(BOARD)
    assert redirect.status_code in {307, 308}
    assert redirect.headers["location"].endswith(f"{BOARD}/")

    config = await api.client.get(f"{BOARD}/config.js")
    assert config.status_code == 200
    assert config.headers["content-type"] == "text/javascript; charset=utf-8"
    expected = 'window.livebaseConfig = {"socketEnabled":true,"socketPath":"/realtime"};\n'
    assert config.text == expected


@pytest.mark.parametrize(
    "path",
    [
        "package.json",
        ".gitignore",
        "vendor/",
        "vendor/notes.txt",
        "..%2Fsecret.txt",
        "%2e%2e/secret.txt",
        "vendor/..%2F..%2Fsecret.txt",
        "..%5Csecret.txt",
        "/etc/passwd",
        "index.html%00.js",
    ],
)
async def test_nothing_else_of_the_board(api: Api, examples: Path, path: str) -> None:
    response = await api.client.get(f"{BOARD}/{path}")
    assert response.status_code == 404, (path, response.text)
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert SECRET not in response.text


async def test_the_board_without_its_vendored_client_says_how_to_get_it(
    api: Api, examples: Path
) -> None:
    (examples / "collab-board" / "vendor" / "socket.io.min.js").unlink()
    response = await api.client.get(f"{BOARD}/vendor/socket.io.min.js")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "the Socket.IO client is not vendored yet: run make demo-assets",
        "code": "NOT_FOUND",
    }


@pytest.mark.parametrize("settings_overrides", [{"DEMO_ENABLED": False}])
async def test_demo_disabled_serves_no_example(api: Api, examples: Path) -> None:
    for path in [
        "/examples/live-feed/",
        f"{BUILT}/",
        f"{BUILT}/assets/index-abc123.js",
        f"{BOARD}/",
        f"{BOARD}/app.js",
        f"{BOARD}/config.js",
    ]:
        response = await api.client.get(path)
        assert response.status_code == 404, path
