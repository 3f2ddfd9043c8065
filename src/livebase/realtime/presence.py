"""Who is online: ``user.connected`` / ``user.disconnected`` with a grace period."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from livebase.realtime.rooms import PRESENCE
from livebase.realtime.router import stamped

Announce = Callable[[str, str, dict[str, object]], None]  # (room, event, payload)


class Presence:
    """A user is online from their first socket until their last one has been
    gone for ``grace`` seconds; a reconnect within the grace emits nothing."""

    def __init__(self, grace: float, announce: Announce) -> None:
        self._grace = grace
        self._announce = announce
        self._leaving: dict[str, asyncio.TimerHandle] = {}

    def arrived(self, user_id: str, sid: str, sockets_now: int) -> None:
        pending = self._leaving.pop(user_id, None)
        if pending is not None:
            pending.cancel()  # back within the grace: still online, say nothing
            return
        if sockets_now == 1:
            self._announce(
                PRESENCE, "user.connected", stamped({"userId": user_id, "socketId": sid})
            )

    def left(self, user_id: str, sid: str, sockets_now: int) -> None:
        if sockets_now > 0 or user_id in self._leaving:
            return
        loop = asyncio.get_running_loop()
        self._leaving[user_id] = loop.call_later(self._grace, self._gone, user_id, sid)

    def _gone(self, user_id: str, sid: str) -> None:
        self._leaving.pop(user_id, None)
        self._announce(PRESENCE, "user.disconnected", stamped({"userId": user_id, "socketId": sid}))

    def close(self) -> None:
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()
