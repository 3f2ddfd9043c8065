"""The Redis a cluster shares: one client, and whether Redis is reachable right now.

Every user of Redis (cross-process delivery, presence, rate limits, stats)
reports its successes and failures here, so that an outage is logged once
when it starts and once when it ends, never once per event, and ``/health``
can say whether Redis is up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis import asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

_log = logging.getLogger("livebase.redis")
T = TypeVar("T")

# Fail fast while Redis is away: every caller has a local fallback.
CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0
PING_TIMEOUT = 1.0


def redacted(url: str) -> str:
    """The URL without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


class RedisLink:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            # One immediate retry replaces a pooled connection that died with the
            # last Redis; redis-py's default backs off for up to 10 s per command.
            retry=Retry(NoBackoff(), 1),
        )
        self.up: bool | None = None  # unknown until the first command
        self._down_since = 0.0  # time.monotonic() when the current outage began
        self._reset: asyncio.Future[None] | None = None

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def failed(self, exc: BaseException) -> None:
        if self.up is not False:
            # Pooled connections to the Redis that went away would each fail
            # once more after it comes back: drop them all now.
            self._reset = asyncio.ensure_future(self.client.connection_pool.disconnect())
            self._down_since = time.monotonic()
            _log.warning(
                "Redis at %s is unreachable (%s): cross-process delivery, cluster presence "
                "and shared rate limits are paused; this process keeps serving its own "
                "clients and retries by itself",
                redacted(self.url),
                exc,
                extra={
                    "event": "redis_outage_begin",
                    "redis": redacted(self.url),
                    "error": str(exc) or type(exc).__name__,
                },
            )
        self.up = False

    def recovered(self) -> None:
        if self.up is False:
            down_for = round(time.monotonic() - self._down_since, 3)
            _log.warning(
                "Redis at %s is reachable again (after %s s)",
                redacted(self.url),
                down_for,
                extra={
                    "event": "redis_outage_end",
                    "redis": redacted(self.url),
                    "down_seconds": down_for,
                },
            )
        self.up = True

    async def attempt(self, command: Awaitable[T]) -> T | None:
        """Run one command; on a Redis or network error note the outage and return None."""
        try:
            result = await command
        except (RedisError, OSError) as exc:
            self.failed(exc)
            return None
        self.recovered()
        return result

    async def ping(self) -> bool:
        probe: Any = self.client.ping()
        try:
            await asyncio.wait_for(probe, PING_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            return False
        self.recovered()
        return True

    async def close(self) -> None:
        await self.client.aclose()
