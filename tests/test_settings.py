"""SPEC §1: bad configuration stops start-up with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from livebase.settings import ConfigError, Settings, load_settings, prepare_filesystem

BAD = [
    ({"PORT": "eighty"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"SOCKET_ENABLED": "maybe"}, "SOCKET_ENABLED"),
    ({"PUBLIC_REGISTRATION": "2"}, "PUBLIC_REGISTRATION"),
    ({"DATABASE_URL": "mysql://localhost/db"}, "DATABASE_URL"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"CACHE_REDIS_URL": "localhost:6379"}, "CACHE_REDIS_URL"),
    ({"ENV": "production"}, "SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"SOCKET_PATH": "realtime"}, "SOCKET_PATH"),
    ({"ACCESS_TOKEN_EXPIRES_IN": "-1"}, "ACCESS_TOKEN_EXPIRES_IN"),
]


@pytest.mark.parametrize(("env", "variable"), BAD)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**env)
    message = str(caught.value)
    assert message.startswith(variable) and "\n" not in message


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings come from this test alone, not from the machine's environment or a .env."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_spec() -> None:
    settings = load_settings()
    assert (settings.HOST, settings.PORT) == ("127.0.0.1", 8056)
    assert settings.DATABASE_URL == "sqlite:///./data/livebase.db"
    assert settings.SOCKET_PATH == "/realtime"
    assert settings.ACCESS_TOKEN_EXPIRES_IN == 604800
    assert settings.SOCKET_PRESENCE_GRACE == 5
    assert settings.SOCKET_MAX_MESSAGE_SIZE == 1048576
    assert settings.MAX_UPLOAD_FILE_SIZE == 50 and settings.RATE_LIMIT_AUTH == 20
    assert settings.redis_url is None


def test_comma_lists_and_redis_precedence() -> None:
    settings = load_settings(
        SOCKET_EXCLUDE_COLLECTIONS="logs, audit",
        CACHE_REDIS_URL="redis://127.0.0.1:6379/0",
        SOCKET_REDIS_URL="redis://127.0.0.1:6379/1",
    )
    assert settings.SOCKET_EXCLUDE_COLLECTIONS == ["logs", "audit"]
    assert settings.redis_url == "redis://127.0.0.1:6379/1"


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"^DATA_DIR"):
        prepare_filesystem(load_settings(DATA_DIR=blocker / "data"))


@pytest.mark.parametrize(("env", "variable"), [BAD[0], BAD[7]])
def test_the_command_exits_non_zero_with_one_line(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "livebase", "serve"],
        env={**os.environ, **env, "DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"livebase: configuration error: {variable}")
