"""Extension hooks around item actions (docs/extensions.md), in the BAASIX guide's shape.

A hook table is ``{"id": ..., "events": [{"collection", "action", "handler"}]}``.
``items.<action>`` handlers run before the write, inside the request: they
receive the incoming data (or, for ``read``, the query as a dict) and return
it, changed or not; raising refuses the request with a 4xx and nothing is
written. ``items.<action>.after`` handlers receive the committed item and run
after commit in a background worker, in commit order and registration order:
the HTTP response does not wait for them, and one that raises is logged with
its hook id while the write stands and the other hooks still run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livebase.services.accountability import Accountability
from livebase.services.errors import BadRequest, ServiceError

_log = logging.getLogger("livebase.hooks")

ACTIONS = ("items.create", "items.read", "items.update", "items.delete")
Handler = Callable[[Any, "HookContext"], Any | Awaitable[Any]]


@dataclass(frozen=True)
class HookContext:
    """What a handler learns: who acts, on which collection, and the services."""

    accountability: dict[str, Any]
    collection: str
    action: str
    services: Any


@dataclass(frozen=True)
class _Registration:
    hook_id: str
    collection: str
    action: str
    handler: Handler


@dataclass
class HookRegistry:
    services: Any = None  # what handlers get as context.services, set at start-up
    _hooks: list[_Registration] = field(default_factory=list)
    _after: asyncio.Queue[tuple[_Registration, Any, HookContext]] | None = None
    _worker: asyncio.Task[None] | None = None

    def register(self, table: object, source: str = "extension") -> None:
        """Add a hook table; a malformed one raises ``ValueError`` naming what is wrong."""
        if not isinstance(table, dict) or not isinstance(table.get("events"), list):
            raise ValueError(f"{source}: hook must be a dict with an 'events' list")
        hook_id = str(table.get("id") or source)
        for index, entry in enumerate(table["events"]):
            where = f"{source}: hook {hook_id!r} event {index}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where} must be a dict")
            collection, action, handler = (
                entry.get(k) for k in ("collection", "action", "handler")
            )
            if not isinstance(collection, str) or not collection:
                raise ValueError(f"{where}: 'collection' must be a name or '*'")
            if action not in ACTIONS and action not in {f"{a}.after" for a in ACTIONS}:
                raise ValueError(
                    f"{where}: 'action' must be one of {', '.join(ACTIONS)} (+ '.after')"
                )
            if not callable(handler):
                raise ValueError(f"{where}: 'handler' must be callable")
            self._hooks.append(_Registration(hook_id, collection, str(action), handler))

    def _matching(self, collection: str, action: str) -> list[_Registration]:
        return [h for h in self._hooks if h.action == action and h.collection in (collection, "*")]

    def has(self, collection: str, action: str) -> bool:
        return bool(self._matching(collection, action))

    def context(self, who: Accountability, collection: str, action: str) -> HookContext:
        user = None if who.user_id is None else {"id": who.user_id}
        return HookContext(
            accountability={"user": user, "role": who.role},
            collection=collection,
            action=action,
            services=self.services,
        )

    async def before(
        self, who: Accountability, collection: str, action: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Run the ``action`` handlers; each gets the previous one's result."""
        for hook in self._matching(collection, action):
            try:
                result = hook.handler(data, self.context(who, collection, action))
                if inspect.isawaitable(result):
                    result = await result
            except ServiceError:
                raise
            except Exception as exc:
                raise BadRequest(
                    str(exc) or f"refused by hook {hook.hook_id!r}", "HOOK_REFUSED"
                ) from None
            if not isinstance(result, dict):
                raise BadRequest(
                    f"hook {hook.hook_id!r} returned {type(result).__name__}, not the data",
                    "HOOK_FAILED",
                )
            data = result
        return data

    def after(self, who: Accountability, collection: str, action: str, item: Any) -> None:
        """Queue the ``.after`` handlers for a committed change (not awaited)."""
        for hook in self._matching(collection, f"{action}.after"):
            if self._after is None:
                self._after = asyncio.Queue()
                self._worker = asyncio.ensure_future(self._run_after())
            self._after.put_nowait((hook, item, self.context(who, collection, f"{action}.after")))

    async def _run_after(self) -> None:
        assert self._after is not None
        while True:
            hook, item, context = await self._after.get()
            try:
                result = hook.handler(item, context)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _log.exception("after hook %r (%s) failed", hook.hook_id, context.action)
            finally:
                self._after.task_done()

    async def drain(self) -> None:
        """Wait until every queued ``.after`` handler has run (tests, shutdown)."""
        if self._after is not None:
            await self._after.join()

    async def close(self) -> None:
        await self.drain()
        if self._worker is not None:
            self._worker.cancel()
