"""Counting HTTP requests by method, route template and status, with their durations.

The route is the template a request matched (``/items/{collection}``), never
its path: paths hold ids, and every distinct label value is a new time
series. ``POST /items/{c}`` answered by :mod:`fast_create` outside FastAPI's
routing names its template in the scope (:data:`ROUTE_TEMPLATE`). A request
answered before routing (a body too large, not JSON) is matched against the
routes afterwards; one that matches none is ``unmatched``. The Socket.IO
endpoint is not a route here: its figures are the realtime ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livebase.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

ROUTE_TEMPLATE = "livebase.route"  # the scope's key for a template set outside the router
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self._routes = routes  # the app's own list: routes added later are in it
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            count, duration = self._series(scope, status)
            count.inc()
            duration.observe(time.perf_counter() - started)

    def _series(self, scope: Scope, status: int) -> tuple[Any, Any]:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = self._template(scope)
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(method, route, str(status)),
                HTTP_REQUEST_DURATION.labels(method, route),
            )
            self._children[key] = children
        return children

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", UNMATCHED))
        template = scope.get(ROUTE_TEMPLATE)
        if template is not None:
            return str(template)
        for candidate in self._routes:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                return str(getattr(candidate, "path", UNMATCHED))
        return UNMATCHED
