"""Timers for many connections at once: one event-loop timer per tick, not per connection.

Every connected socket waits on two timers (its next heartbeat and its
token's expiry). An asyncio ``TimerHandle`` with uvloop's ``UVTimer``
behind it costs ~500 bytes; 10 000 sockets held ~10 MB of them. Here a
timer is an entry in the dict of the tick it falls in (rounded up to
``tick`` seconds), and the loop has one timer per tick that has entries.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("livebase.realtime")


class Timers:
    def __init__(self, tick: float = 0.1) -> None:
        self._tick = tick
        self._due: dict[int, dict[Any, Callable[[], None]]] = {}

    def call_later(self, delay: float, key: Any, callback: Callable[[], None]) -> int:
        """Call ``callback()`` in ``delay`` seconds, up to a tick later; cancel with (slot, key)."""
        loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + delay) / self._tick)
        entries = self._due.get(slot)
        if entries is None:
            entries = self._due[slot] = {}
            loop.call_at(slot * self._tick, self._fire, slot)
        entries[key] = callback
        return slot

    def cancel(self, slot: int | None, key: Any) -> None:
        entries = self._due.get(slot) if slot is not None else None
        if entries is not None:
            entries.pop(key, None)

    def _fire(self, slot: int) -> None:
        for callback in self._due.pop(slot, {}).values():
            try:
                callback()
            except Exception:
                _log.exception("a timer callback failed")
