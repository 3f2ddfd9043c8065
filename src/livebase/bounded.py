"""A cache that empties itself when full, for entries that are cheap to make again.

Tokens, session states, compiled conditions and statements are each kept
to save work on every request; their keys come from clients or users, so
each cache needs a bound, and starting over is simpler than evicting and
costs one recomputation per key.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(dict[K, V], Generic[K, V]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value

    def get_or_make(self, key: K, make: Callable[[K], V]) -> V:
        value = self.get(key)
        return self.put(key, make(key)) if value is None else value
