"""A sliding-window rate limiter per key (client IP), in process memory."""

from __future__ import annotations

import time
from collections import deque

from livebase.services.errors import RateLimited


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> None:
        """Count one attempt for ``key``; raise :class:`RateLimited` past the limit."""
        if self.limit <= 0:
            return
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
