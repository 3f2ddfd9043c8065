"""Bad configuration stops start-up with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from livebase.settings import ConfigError, Settings, load_settings, prepare_filesystem
from tests.servers import environment

ROOT = Path(__file__).resolve().parents[1]

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
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
    ({"SOCKET_PATH": "realtime"}, "SOCKET_PATH"),
    ({"ACCESS_TOKEN_EXPIRES_IN": "-1"}, "ACCESS_TOKEN_EXPIRES_IN"),
]


@pytest.mark.parametrize(("env", "variable"), BAD)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**env)
    message = str(caught.value)
    assert message.startswith(variable) and "\n" not in message


def test_defaults_match_the_readme() -> None:
    """The defaults that the README's configuration table lists."""
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
        env=environment(**env, DATA_DIR=str(tmp_path)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"livebase: configuration error: {variable}")


def test_a_test_sees_no_livebase_setting_and_no_env_file(tmp_path: Path) -> None:
    # The autouse clean_environment fixture (tests/conftest.py) at work.
    assert not set(Settings.model_fields) & set(os.environ)
    assert Path.cwd() == tmp_path and not Path(".env").exists()
    assert load_settings().model_dump() == {
        name: field.default for name, field in Settings.model_fields.items()
    }


def test_the_developers_shell_and_env_file_do_not_reach_the_tests(tmp_path: Path) -> None:
    # A whole pytest run started from a shell that sets livebase variables, in a
    # directory with a .env: the test above still sees the defaults alone.
    (tmp_path / ".env").write_text("CACHE_REDIS_URL=redis://10.0.0.1:1/0\nPORT=1\n")
    outer = {"DATABASE_URL": "mysql://bogus/db", "SOCKET_REDIS_URL": "redis://10.0.0.2:1/0"}
    test = f"{Path(__file__).resolve()}::test_a_test_sees_no_livebase_setting_and_no_env_file"
    config = [f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", *config],
        env={**os.environ, **outer},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
