"""Configuration: every variable of the README's table, from the environment or `.env`."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

_log = logging.getLogger("livebase")

CommaList = Annotated[list[str], NoDecode]


class ConfigError(Exception):
    """Bad configuration; the message is one line naming the variable."""


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    ENV: Literal["development", "production", "test"] = "development"
    HOST: str = "127.0.0.1"
    PORT: int = Field(8056, ge=0, le=65535)
    DATA_DIR: Path = Path("./data")
    DATABASE_URL: str = "sqlite:///./data/livebase.db"
    SECRET_KEY: str | None = None
    ACCESS_TOKEN_EXPIRES_IN: int = Field(604800, gt=0)
    PUBLIC_REGISTRATION: bool = True
    ADMIN_EMAIL: str = "admin@example.com"
    ADMIN_PASSWORD: str | None = None

    SOCKET_ENABLED: bool = True
    SOCKET_PATH: str = "/realtime"
    SOCKET_CORS_ENABLED_ORIGINS: CommaList = []
    CACHE_REDIS_URL: str | None = None
    SOCKET_REDIS_URL: str | None = None
    SOCKET_REDIS_KEY: str = "livebase"
    SOCKET_EXCLUDE_COLLECTIONS: CommaList = []
    SOCKET_AUTO_JOIN_COLLECTIONS: bool = True
    SOCKET_ALLOW_ANONYMOUS: bool = True
    SOCKET_PRESENCE_GRACE: float = Field(5.0, ge=0)
    SOCKET_MAX_MESSAGE_SIZE: int = Field(1_048_576, gt=0)
    # orjson cannot encode deeper than 255 (an ack echoing the payload would fail).
    SOCKET_MAX_PAYLOAD_DEPTH: int = Field(64, ge=1, le=255)
    SOCKET_PING_INTERVAL: float = Field(25, gt=0)
    SOCKET_PING_TIMEOUT: float = Field(20, gt=0)
    SOCKET_MAX_QUEUE: int = Field(1000, gt=0)
    SOCKET_MAX_QUEUE_BYTES: int = Field(4 * 1024 * 1024, gt=0)
    SOCKET_MAX_ROOMS: int = Field(128, gt=0)
    # Seconds a dropped socket's session stays recoverable (0: no recovery).
    SOCKET_RECOVERY_WINDOW: float = Field(120, ge=0)
    # Past this many missed events a reconnect starts a new session instead.
    SOCKET_RECOVERY_MAX_EVENTS: int = Field(10_000, gt=0)
    # Broadcasts a socket may send a second (docs/realtime.md, "Broadcast").
    SOCKET_BROADCAST_RATE: float = Field(30, gt=0)
    # Live queries a socket may hold at once (docs/realtime.md, "Live queries").
    SOCKET_MAX_SUBSCRIPTIONS: int = Field(100, ge=0)
    # Seconds the change log keeps published entries (recovery replays from it).
    CHANGE_LOG_RETENTION: float = Field(86400, gt=0)

    STORAGE_PATH: Path = Path("./data/uploads")
    MAX_UPLOAD_FILE_SIZE: float = Field(50, gt=0)
    MAX_REQUEST_BODY_SIZE: int = Field(10 * 1024 * 1024, gt=0)
    # SQLite: commit lone creates on the event loop rather than in a thread
    # (docs/decisions.md: off, because a slow disk would then stall everything).
    SQLITE_LOOP_WRITES: bool = False
    EXTENSIONS_PATH: Path = Path("./extensions")
    RATE_LIMIT_AUTH: int = Field(20, ge=0)
    # Peers whose X-Forwarded-For names the client (uvicorn's and gunicorn's
    # setting): IPs, networks or "*". Unset, no peer is: otherwise any local
    # process could pick the address its login attempts are counted under.
    FORWARDED_ALLOW_IPS: CommaList = []
    LOG_LEVEL: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # "json": every log line one JSON object (docs/operations.md, "Logs").
    LOG_FORMAT: Literal["text", "json"] = "text"
    # A bearer token that may read /metrics (besides administrators); unset: none.
    METRICS_TOKEN: str | None = None
    # Serve the live demo page (examples/live-feed) at /examples/live-feed/.
    DEMO_ENABLED: bool = True
    # Serve the inspector page at /admin/ (administrators log in; docs/operations.md).
    ADMIN_UI_ENABLED: bool = True

    _split = field_validator(
        "SOCKET_CORS_ENABLED_ORIGINS",
        "SOCKET_EXCLUDE_COLLECTIONS",
        "FORWARDED_ALLOW_IPS",
        mode="before",
    )(_split_commas)

    @field_validator("FORWARDED_ALLOW_IPS")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address, a network or *: {entry!r}") from None
        return value

    @field_validator("LOG_LEVEL", "LOG_FORMAT", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("DATABASE_URL")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except Exception as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"use sqlite:///path or postgresql://user:pw@host/db, not {backend!r}")
        return value

    @field_validator("CACHE_REDIS_URL", "SOCKET_REDIS_URL")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"not a Redis URL (redis://host:port/db): {value!r}")
        return value

    @field_validator("SECRET_KEY")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < 32:
            raise ValueError("must be at least 32 bytes (HS256 keys shorter than that are weak)")
        return value or None

    @field_validator("METRICS_TOKEN")
    @classmethod
    def _check_metrics_token(cls, value: str | None) -> str | None:
        if value is not None and 0 < len(value.encode()) < 16:
            raise ValueError("must be at least 16 bytes (it guards the metrics)")
        return value or None

    @field_validator("SOCKET_PATH")
    @classmethod
    def _check_socket_path(cls, value: str) -> str:
        if not value.startswith("/") or len(value) < 2:
            raise ValueError("must start with '/' and name a path, e.g. /realtime")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_needs_secret(self) -> Settings:
        if self.ENV == "production" and not self.SECRET_KEY:
            raise ValueError("SECRET_KEY: required when ENV=production")
        return self

    @property
    def redis_url(self) -> str | None:
        """The Redis used by the realtime layer (SOCKET_REDIS_URL wins)."""
        return self.SOCKET_REDIS_URL or self.CACHE_REDIS_URL

    @property
    def sqlite_path(self) -> Path | None:
        url = make_url(self.DATABASE_URL)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database)


def load_settings(**overrides: Any) -> Settings:
    """Read settings; raise :class:`ConfigError` with one line naming the culprit."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not location:  # model-level check: the message names the variable
            raise ConfigError(message) from None
        raw = error.get("input")
        shown = f" (got {raw!r})" if isinstance(raw, str | int | float) else ""
        raise ConfigError(f"{location}: {message}{shown}") from None


def prepare_filesystem(settings: Settings) -> None:
    """Create the data directories and make sure they are writable."""
    paths = [("DATA_DIR", settings.DATA_DIR), ("STORAGE_PATH", settings.STORAGE_PATH)]
    if settings.sqlite_path is not None:
        paths.append(("DATABASE_URL", settings.sqlite_path.parent))
    for name, path in paths:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"{name}: directory {str(path)!r} is not writable ({exc.strerror})"
            ) from None


def resolve_secret_key(settings: Settings) -> str:
    """SECRET_KEY, or one generated once and kept in DATA_DIR (with a warning)."""
    if settings.SECRET_KEY:
        return settings.SECRET_KEY
    key_file = settings.DATA_DIR / "secret_key"
    try:
        if key_file.exists():
            return key_file.read_text().strip()
        key = secrets.token_urlsafe(48)
        key_file.write_text(key)
        key_file.chmod(0o600)
    except OSError as exc:
        raise ConfigError(
            f"SECRET_KEY: not set and {key_file} is unusable ({exc.strerror})"
        ) from None
    _log.warning("SECRET_KEY is not set: generated one and kept it in %s", key_file)
    return key
