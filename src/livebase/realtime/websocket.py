"""uvicorn's sans-I/O WebSocket protocol, holding less per connection.

Selected in ``livebase serve`` (``SERVER_OPTIONS["ws"]``). After the
handshake it forgets the upgrade request's and response's headers (~2 KB
a connection, and nothing reads them again), and its receive queue
and write gate are :mod:`primitives` instead of ``asyncio`` ones (~3 KB).
Everything else is uvicorn's.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from livebase.realtime.primitives import SmallEvent, SmallQueue


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = SmallQueue()  # type: ignore[assignment]
        self.writable = SmallEvent()
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # websockets' parser generator keeps the request in a local for good:
            # empty its headers rather than only letting go of it here.
            self.request.headers.clear()
            self.response.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]
