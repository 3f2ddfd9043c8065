"""Caps on request bodies: their size, counted as they stream in, and what their JSON may hold."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livebase.api.bodies import read_body, replay
from livebase.api.responses import error_response
from livebase.services.errors import ServiceError
from livebase.services.nesting import MAX_JSON_DEPTH, check_depth
from livebase.services.surrogates import check_surrogates


class _TooLarge(HTTPException):
    # An HTTPException, so that FastAPI's body parsing lets it through to the
    # error handlers as a 413 instead of wrapping it in a 400.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


def _media_type(scope: Scope) -> bytes | None:
    """The Content-Type without its parameters, lower-cased; None when absent."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower()
    return None


def _declared_length(scope: Scope) -> int | None:
    """Content-Length, unless absent, malformed or overridden by Transfer-Encoding."""
    length = None
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return None
        if name == b"content-length" and value.isdigit():
            length = int(value)
    return length


class BodySizeLimit:
    """Refuse bodies over ``limit`` bytes with 413.

    A declared Content-Length over the limit is refused before reading; a
    body without one (chunked) is counted as it streams in. Within a declared
    length the server itself stops at that many bytes.

    ``exempt`` (method, path) pairs — file uploads — enforce their own limit,
    for multipart bodies only: any other body sent there is held to ``limit``,
    since the JSON depth check would otherwise read it whole.
    """

    def __init__(
        self, app: ASGIApp, limit: int, exempt: set[tuple[str, str]] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt or set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        length = _declared_length(scope)
        if length is not None:
            if length > self.limit:
                await self._refuse(scope, receive, send)
                return
            # The server reads exactly Content-Length bytes of body, so this one
            # cannot grow past the limit: no need to count it as it comes.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    def _exempt(self, scope: Scope) -> bool:
        return (scope["method"], scope["path"]) in self.exempt and _media_type(
            scope
        ) == b"multipart/form-data"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"request body is larger than {self.limit} bytes", "PAYLOAD_TOO_LARGE"
        )
        await response(scope, receive, send)


def _may_be_json(scope: Scope) -> bool:
    """Whether a JSON parser may read this body: a JSON content type, or none at all."""
    media = _media_type(scope)
    return (
        media is None
        or media == b"application/json"
        or (media.startswith(b"application/") and media.endswith(b"+json"))
    )


class JsonBodyGuard:
    """Refuse, with 400 before any route parses it, a JSON body that no route could use.

    One check in front of every route — the create fast path, FastAPI's body
    parsing, extension routes — so that no parser recurses into a body nested
    deeper than ``limit``, and no handler receives a string it could not store
    (a lone surrogate escape).
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_be_json(scope):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        try:
            check_depth(body, "request body", self.limit)
            check_surrogates(body, "request body")
        except ServiceError as refusal:
            response = error_response(refusal.status, refusal.message, refusal.code)
            await response(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)
