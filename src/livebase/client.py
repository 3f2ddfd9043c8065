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
  the session (``connected`` says so too, with ``missed``);
- :meth:`LivebaseClient.live_query` subscribes to a query and keeps its
  result in sync (:class:`LiveQuery`), subscribing again after a reconnect
  that did not recover.

Needs python-socketio's client extras (``pip install "python-socketio[asyncio_client]"``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio

__all__ = ["LiveQuery", "LiveQueryRefused", "LivebaseClient"]

Listener = Callable[["LiveQuery", str, dict[str, Any]], Any]


class LiveQueryRefused(Exception):
    """The server refused a subscription (the message says why)."""


class LivebaseClient(socketio.AsyncClient):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pid: str | None = None
        self.offset: str | None = None
        self.recovered = False
        self._auth: Any = None
        self._live: dict[str, LiveQuery] = {}  # by subscription id

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
        if not self.recovered and self._live:  # a new session: its subscriptions are gone
            for query in list(self._live.values()):
                self.start_background_task(query.start)

    async def live_query(
        self, request: dict[str, Any], on_change: Listener | None = None
    ) -> LiveQuery:
        """Subscribe to ``request`` (``{collection, filter?, fields?, sort?, limit?}``)
        and keep its result in :attr:`LiveQuery.items`; raises
        :class:`LiveQueryRefused` with the server's message."""
        query = LiveQuery(self, request, on_change)
        await query.start()
        return query

    async def _handle_event(self, namespace: Any, id: Any, data: Any) -> None:
        # [event, payload, offset]: every event livebase sends a recovering socket.
        if self.pid is not None and isinstance(data, list) and len(data) >= 3:
            *data, offset = data
            if isinstance(offset, str):
                self.offset = offset
        if isinstance(data, list) and len(data) >= 2 and isinstance(data[1], dict):
            query = self._live.get(str(data[1].get("subscription")))
            if query is not None and isinstance(data[0], str):
                query.changed(data[0], data[1])
        await super()._handle_event(namespace, id, data)


class LiveQuery:
    """A live query's result, kept in sync (docs/realtime.md, "Live queries").

    :attr:`items` maps each item's id to the item, in the snapshot's order
    and then in the order items were added; ``on_change(query, event,
    payload)`` is called after each change. :attr:`ended` holds the server's
    reason once it ended the subscription.
    """

    def __init__(
        self, client: LivebaseClient, request: dict[str, Any], on_change: Listener | None
    ) -> None:
        self._client = client
        self.request = dict(request)
        self.on_change = on_change
        self.id: str | None = None
        self.offset: str | None = None
        self.items: dict[Any, dict[str, Any]] = {}
        self.ended: str | None = None
        self._starting: asyncio.Lock = asyncio.Lock()

    async def start(self) -> None:
        """Subscribe (again): the snapshot replaces :attr:`items`."""
        async with self._starting:
            answer = await self._client.call("subscribe", self.request, timeout=10)
            if not isinstance(answer, dict) or answer.get("success") is not True:
                message = answer.get("message") if isinstance(answer, dict) else answer
                raise LiveQueryRefused(str(message))
            self.id, self.offset, self.ended = answer["subscription"], answer["offset"], None
            self.items = {item["id"]: item for item in answer["items"]}
            self._client._live[self.id] = self

    async def stop(self) -> None:
        if self.id is not None and self._client._live.pop(self.id, None) is not None:
            await self._client.call("unsubscribe", {"subscription": self.id}, timeout=10)

    def changed(self, event: str, payload: dict[str, Any]) -> None:
        item = payload.get("item") or {}
        if event in ("subscription.added", "subscription.changed"):
            self.items[item["id"]] = item
        elif event == "subscription.removed":
            self.items.pop(item.get("id"), None)
        elif event == "subscription.ended":
            self.ended = str(payload.get("reason"))
            self._client._live.pop(str(self.id), None)
        else:
            return
        if self.on_change is not None:
            self.on_change(self, event, payload)
