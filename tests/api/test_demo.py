"""The example clients under /examples/: the built React and Vue apps.

Each test points the demo module at a fake source tree in ``tmp_path``: a
``dist/`` as ``vite build`` leaves it, and a secret next to it that no URL may
reach. (The vanilla page's routes are covered by tests/js/demo.test.mjs.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livebase.api import demo
from tests.helpers import Api

SECRET = "not for the web"
BUILT = "/examples/react-live-feed"


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


@pytest.mark.parametrize("settings_overrides", [{"DEMO_ENABLED": False}])
async def test_demo_disabled_serves_no_example(api: Api, examples: Path) -> None:
    for path in ["/examples/live-feed/", f"{BUILT}/", f"{BUILT}/assets/index-abc123.js"]:
        response = await api.client.get(path)
        assert response.status_code == 404, path
