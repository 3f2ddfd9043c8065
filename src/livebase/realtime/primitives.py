"""asyncio's Queue and Event, sized for one per connection.

A process holding 10 000 sockets holds several of each per socket; the
standard ones allocate a ``collections.deque`` (~600 bytes) for every
waiter list and item buffer, used or not.
"""

from __future__ import annotations

import asyncio
from typing import Any


class SmallEvent(asyncio.Event):
    """``asyncio.Event`` with a list of waiters (it only appends, iterates and removes)."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: Any = []


class SmallQueue:
    """The part of ``asyncio.Queue`` that python-engineio and uvicorn use, unbounded.

    ``asyncio.Queue`` allocates four deques (~2.5 KB) per instance. A
    connection's queues are empty nearly all the time, so here the items
    are one list and futures exist only while someone waits.
    """

    __slots__ = ("_getters", "_joiners", "_queue", "_unfinished")

    def __init__(self) -> None:
        self._queue: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None  # made when someone waits
        self._unfinished = 0
        self._joiners: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._queue)

    def empty(self) -> bool:
        return not self._queue

    def put_nowait(self, item: Any) -> None:
        self._queue.append(item)
        self._unfinished += 1
        self._wake_getter()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._queue:
            raise asyncio.QueueEmpty
        return self._queue.pop(0)

    async def get(self) -> Any:
        while not self._queue:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                if self._queue and not getter.cancelled():
                    self._wake_getter()  # it was woken, then cancelled: pass the turn on
                raise
        return self._queue.pop(0)

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            joiner = asyncio.get_running_loop().create_future()
            if self._joiners is None:
                self._joiners = []
            self._joiners.append(joiner)
            await joiner

    def discard_all(self) -> None:
        """Drop every waiting item, as if each had been taken and done."""
        while self._queue:
            self._queue.pop()
            self.task_done()

    def _wake_getter(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return
