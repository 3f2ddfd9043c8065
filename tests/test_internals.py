"""Start-up refuses libraries other than the ones livebase's workarounds were written for.

``livebase/internals.py``: an installed version other than the pinned one, or
a workaround that did not take, stops ``create_app`` and ``livebase serve``
with one line naming the library (docs/internals.md).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from livebase import cli, internals
from livebase.app import create_app
from livebase.internals import PINNED, IncompatibleLibrary, check_internals
from livebase.realtime.session import Session
from livebase.settings import Settings
from tests.api.conftest import make_settings

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@pytest.fixture(autouse=True)
def fresh_versions() -> Iterator[None]:
    """Installed versions are looked up once per process: forget them around each test."""
    internals._installed.cache_clear()
    yield
    internals._installed.cache_clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(f"sqlite:///{tmp_path / 'livebase.db'}", tmp_path)


def _refusal(settings: Settings) -> str:
    with pytest.raises(IncompatibleLibrary) as caught:
        create_app(settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_pins_are_pyprojects_and_installed() -> None:
    dependencies = tomllib.loads(_PYPROJECT.read_text())["project"]["dependencies"]
    pins = {}
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", requirement)
        assert match, requirement
        pins[match.group(1)] = match.group(2)
    assert {library: pins.get(library) for library in PINNED} == PINNED
    for library, version in PINNED.items():
        assert importlib.metadata.version(library) == version


def test_start_up_passes_with_the_pinned_libraries(settings: Settings) -> None:
    check_internals()
    assert create_app(settings).state.realtime is not None


def test_another_version_in_the_table_refuses_to_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PINNED, "python-engineio", "4.99.0")
    message = _refusal(settings)
    assert message.startswith("python-engineio 4.15.1 is installed")
    assert "written for 4.99.0" in message and "python-engineio==4.99.0" in message


def test_another_installed_version_refuses_to_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        return "2.2.0" if name == "SQLAlchemy" else real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    message = _refusal(settings)
    assert message.startswith("SQLAlchemy 2.2.0 is installed")
    assert "SQLAlchemy==2.1.9" in message


def test_a_library_not_installed_refuses_to_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PINNED, "no-such-library-livebase-patches", "1.0")
    assert _refusal(settings).startswith("no-such-library-livebase-patches is not installed")


_DELETE = object()
_ORIGINAL_SESSION = Session.__mro__[1]
# (what stops applying, how, the library the refusal names, a word of its message)
_UNDONE: list[tuple[str, Any, str, str]] = [
    ("engineio.async_socket.AsyncSocket", _ORIGINAL_SESSION, "python-engineio", "Session"),
    ("engineio.payload.Payload.max_decode_packets", 16, "python-engineio", "1024 packets"),
    ("engineio.packet.Packet.encode", lambda self, b64=False: "4", "python-engineio", "encode"),
    ("livebase.realtime.session._SansIO", None, "uvicorn", "sans-I/O"),
    ("socketio.AsyncServer._handle_event", _DELETE, "python-socketio", "EngineWorkarounds"),
    ("socketio.base_manager.BaseManager.basic_enter_room", _DELETE, "python-socketio", "room"),
    (
        "sqlalchemy.connectors.asyncio.AsyncAdapt_dbapi_cursor._execute_async",
        _DELETE,
        "SQLAlchemy",
        "storage/sqlite.py",
    ),
    ("aiosqlite.Connection._execute", _DELETE, "aiosqlite", "_execute"),
]


@pytest.mark.parametrize(
    ("target", "value", "library", "word"), _UNDONE, ids=[t for t, *_ in _UNDONE]
)
def test_a_workaround_that_did_not_take_refuses_to_start(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    value: Any,
    library: str,
    word: str,
) -> None:
    if value is _DELETE:
        monkeypatch.delattr(target)
    else:
        monkeypatch.setattr(target, value)
    message = _refusal(settings)
    assert message.startswith(f"a workaround of {library}'s internals did not take")
    assert word in message


def test_livebase_serve_refuses_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(PINNED, "uvicorn", "0.1.0")
    assert cli.main(["serve", "--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("livebase: uvicorn 0.54.0 is installed") and err.count("\n") == 1
    assert not (tmp_path / "data").exists()  # refused before anything was made
