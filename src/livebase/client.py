"""A Python client for livebase's realtime API that recovers its session, as socket.io-client does.

python-socketio's ``AsyncClient`` calls an event handler with every argument
of the event, and livebase ends each event with an offset for recovery
(docs/realtime.md, "Reconnecting without losing events"), so a plain
``AsyncClient`` must connect with ``auth={"token": ..., "recovery": False}``
and never recovers. :class:`LivebaseClient` speaks the protocol instead:

- it keeps the private session id (``pid``) of the CONNECT reply, and the
  offset of the last event it received;
- each reconnect sends them with the auth the application gave, so the
  server replays what was missed, in order, before anything newer;
- handlers receive the payload alone, as with socket.io-client;
- :attr:`LivebaseClient.recovered` says whether the last connect recovered
  the session (``connected`` says so too, with ``missed``).

Needs python-socketio's client extras (``pip install "python-socketio[asyncio_client]"``).
"""

from __future__ import annotations

from typing import Any

import socketio

__all__ = ["LivebaseClient"]


class LivebaseClient(socketio.AsyncClient):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pid: str | None = None
        self.offset: str | None = None
        self.recovered = False
        self._auth: Any = None

    async def connect(self, url: str, *args: Any, auth: Any = None, **kwargs: Any) -> None:
        """python-socketio's ``connect``; ``auth`` (a dict, or a function returning one)
        is sent with the session to recover on every reconnect. ``wait_timeout``
        defaults to 10 s (python-socketio's 1 s gives up on a busy server's
        handshake, and the retry waits for the abandoned one)."""
        kwargs.setdefault("wait_timeout", 10)
        if auth != self._recovery_auth:  # python-socketio's reconnects pass it back
            self._auth = auth
            self.pid = self.offset = None
            self.recovered = False
        await super().connect(url, *args, auth=self._recovery_auth, **kwargs)

    async def _recovery_auth(self) -> dict[str, Any]:
        auth = await self._get_real_value(self._auth) or {}
        if self.pid is not None and self.offset is not None:
            return {**auth, "pid": self.pid, "offset": self.offset}
        return dict(auth)

    async def _handle_connect(self, namespace: Any, data: Any) -> None:
        pid = data.get("pid") if isinstance(data, dict) else None
        self.recovered = pid is not None and pid == self.pid
        if not self.recovered:
            self.offset = None
        self.pid = pid if isinstance(pid, str) else None
        await super()._handle_connect(namespace, data)

    async def _handle_event(self, namespace: Any, id: Any, data: Any) -> None:
        # [event, payload, offset]: every event livebase sends a recovering socket.
        if self.pid is not None and isinstance(data, list) and len(data) >= 3:
            *data, offset = data
            if isinstance(offset, str):
                self.offset = offset
        await super()._handle_event(namespace, id, data)
