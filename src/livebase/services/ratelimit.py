"""A sliding-window rate limiter per key (client IP).

In one process the window lives in memory. With Redis (a cluster), the
window is a sorted set per key shared by every process, so a client cannot
multiply its allowance by the number of processes; while Redis is away each
process falls back to its own window.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any

from livebase.services.errors import RateLimited
from livebase.storage.redis import RedisLink

# KEYS[1]: the key's window; ARGV: now (ms), window (ms), limit, a unique member.
# Returns 0 when the hit counts, else the milliseconds until the oldest hit expires.
_HIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


class RateLimiter:
    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        max_keys: int = 100_000,
        shared: RedisLink | None = None,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._shared = shared
        self._script: Any = shared.client.register_script(_HIT) if shared else None

    async def hit(self, key: str) -> None:
        """Count one attempt for ``key``; raise :class:`RateLimited` past the limit."""
        if self.limit <= 0:
            return
        if self._shared is not None:
            now_ms, window_ms = int(time.time() * 1000), int(self.window * 1000)
            wait_ms = await self._shared.attempt(
                self._script(
                    keys=[self._shared.key("ratelimit", key)],
                    args=[now_ms, window_ms, self.limit, uuid.uuid4().hex],
                )
            )
            if wait_ms is not None:
                if wait_ms:
                    retry = int(wait_ms) // 1000 + 1
                    raise RateLimited(f"too many attempts; try again in {retry} s")
                return
        self._hit_here(key)

    def _hit_here(self, key: str) -> None:
        now = time.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._forget_idle(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = int(hits[0] + self.window - now) + 1
            raise RateLimited(f"too many attempts; try again in {retry} s")
        hits.append(now)

    def _forget_idle(self, now: float) -> None:
        # Bounded memory under a flood of distinct addresses.
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            self._hits.clear()
