"""BodySizeLimit over an inline ASGI app: declared lengths, chunked bodies, exemptions."""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Receive, Scope, Send

from livebase.api.limits import BodySizeLimit

LIMIT = 10


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _call(
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    path: str = "/x",
    exempt: set[tuple[str, str]] | None = None,
) -> tuple[int, bytes]:
    app = BodySizeLimit(_echo, LIMIT, exempt=exempt)
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": path, "headers": headers}
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_a_declared_length_within_the_limit_passes() -> None:
    assert await _call([b"0123456789"], [(b"content-length", b"10")]) == (200, b"0123456789")


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    status, body = await _call([b"x" * 11], [(b"content-length", b"11")])
    assert status == 413 and b"PAYLOAD_TOO_LARGE" in body


async def test_a_chunked_body_is_counted_as_it_streams_in() -> None:
    chunked = [(b"transfer-encoding", b"chunked")]
    assert (await _call([b"01234", b"56789"], chunked))[0] == 200
    assert (await _call([b"012345", b"6789ab"], chunked))[0] == 413
    # Transfer-Encoding wins over a Content-Length sent along with it.
    both = [(b"content-length", b"3"), (b"transfer-encoding", b"chunked")]
    assert (await _call([b"012345", b"6789ab"], both))[0] == 413


async def _call_exempt(content_type: bytes, chunks: list[bytes]) -> int:
    headers = [(b"content-type", content_type), (b"transfer-encoding", b"chunked")]
    status, _ = await _call(chunks, headers, path="/files", exempt={("POST", "/files")})
    return status


async def test_an_exempt_route_is_exempt_for_multipart_bodies_only() -> None:
    # Uploads enforce their own limit; any other body sent to the upload route
    # (read whole by the JSON depth check) is held to the general one.
    big = [b"x" * 8, b"x" * 8]
    assert await _call_exempt(b"multipart/form-data; boundary=b", big) == 200
    assert await _call_exempt(b"application/json", big) == 413
    assert await _call_exempt(b"text/plain", big) == 413
