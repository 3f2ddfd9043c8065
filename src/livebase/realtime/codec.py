"""Encoding for Socket.IO and Engine.IO: orjson, and packets encoded once for every recipient."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from engineio import packet as eio_packet

from livebase.encoding import dumps as json_bytes


class OrjsonCodec:
    """A ``json`` module stand-in for python-socketio and python-engineio."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        return json_bytes(obj).decode()

    @staticmethod
    def loads(text: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return orjson.loads(text)


def event_packet(event: str, payload: Any, offset: str | None = None) -> eio_packet.Packet:
    """One Engine.IO MESSAGE carrying a Socket.IO EVENT on ``/``, already encoded,
    with ``offset`` as its last argument when the socket recovers (:mod:`offsets`).

    The packet holds only its encoded form, which python-engineio's
    ``encode`` returns as its cache: sharing one object between all
    recipients of the same payload encodes it exactly once, and a packet
    waiting in a slow client's queue holds its bytes once, not twice.
    """
    pkt = eio_packet.Packet(eio_packet.MESSAGE)
    arguments = [event, payload] if offset is None else [event, payload, offset]
    pkt.encode_cache = "42" + json_bytes(arguments).decode()
    return pkt


def nested_deeper_than(values: Iterable[Any], limit: int) -> bool:
    """Whether any of ``values`` nests arrays/objects more than ``limit`` levels deep.

    Level by level rather than recursively: the point is to refuse, before any
    handler sees them, payloads that recursive code (python-socketio's binary
    walk, ``repr``, orjson's encoder, an extension) could not handle.
    """
    level = [value for value in values if isinstance(value, list | dict)]
    for _ in range(limit):
        if not level:
            return False
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, list | dict)
        ]
    return bool(level)
