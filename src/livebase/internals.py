"""Start-up checks for livebase's workarounds of other libraries' internals.

livebase subclasses, patches and reads private parts of python-socketio,
python-engineio, uvicorn, websockets, SQLAlchemy and aiosqlite
(``docs/internals.md`` lists each one, why, and the test that covers it).
Those internals change without notice between releases, and several
workarounds fail silently: python-engineio making its own sessions again
would bypass livebase's delivery bounds, a packet whose cached encoding is
ignored would reach clients empty. So before serving, :func:`check_internals`

- refuses any installed version of those libraries other than the one the
  workarounds were written for (:data:`PINNED`, the same pins as
  ``pyproject.toml``), and
- checks that each workaround took effect.

Either failure is :class:`IncompatibleLibrary`, one line naming the library.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable

import aiosqlite
import socketio
from engineio import async_server, async_socket
from engineio import packet as eio_packet
from engineio.async_drivers import asgi as eio_asgi
from engineio.payload import Payload
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)

from livebase.realtime import engine, session
from livebase.realtime.websocket import WebSocketProtocol

__all__ = ["PINNED", "IncompatibleLibrary", "check_internals", "check_patches", "check_versions"]

# Library (its distribution name) -> the exact version the workarounds were written for.
PINNED: dict[str, str] = {
    "python-socketio": "5.18.1",
    "python-engineio": "4.15.1",
    "uvicorn": "0.54.0",
    "websockets": "17.4",
    "SQLAlchemy": "2.1.9",
    "aiosqlite": "0.22.1",
}


class IncompatibleLibrary(Exception):
    """A library livebase patches is not as its workarounds expect; one line naming it."""


@functools.cache
def _installed(library: str) -> str | None:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_versions() -> None:
    """Refuse any installed version of a patched library other than its pinned one."""
    for library, wanted in PINNED.items():
        found = _installed(library)
        if found != wanted:
            installed = "is not installed" if found is None else f"{found} is installed"
            raise IncompatibleLibrary(
                f"{library} {installed}, but livebase's workarounds of its internals were "
                f"written for {wanted} exactly (docs/internals.md): "
                f"install {library}=={wanted}"
            )


def _has(owner: type, *names: str) -> Callable[[], bool]:
    return lambda: all(hasattr(owner, name) for name in names)


def _sessions_are_ours() -> bool:
    # python-engineio makes its sessions with ``async_socket.AsyncSocket(server, sid)``.
    return (
        async_socket.AsyncSocket is session.Session
        and async_server.async_socket is async_socket
        and session.Session.__mro__[1].__module__ == async_socket.__name__
    )


def _encoded_once() -> bool:
    pkt = eio_packet.Packet(eio_packet.MESSAGE)
    pkt.encode_cache = '42["probe",{}]'
    return bool(pkt.encode() == '42["probe",{}]')


def _direct_writes_find_uvicorn() -> bool:
    sansio = session._SansIO
    return sansio is not None and issubclass(WebSocketProtocol, sansio)


def _engineio_keeps_asgi_send() -> bool:
    # The direct-write path finds uvicorn's protocol as ``ws.asgi_send.__self__``.
    return "asgi_send" in eio_asgi.WebSocket.__call__.__code__.co_names


# (library, what the workaround is, whether it took)
_PATCHES: list[tuple[str, str, Callable[[], bool]]] = [
    (
        "python-engineio",
        "its sessions are livebase's Session (engineio.async_socket.AsyncSocket)",
        _sessions_are_ours,
    ),
    (
        "python-engineio",
        "Session overrides the session methods it calls",
        _has(
            session.Session.__mro__[1],
            "poll",
            "receive",
            "send",
            "check_ping_timeout",
            "handle_post_request",
            "close",
            "schedule_ping",
            "_websocket_handler",
        ),
    ),
    ("python-engineio", "a packet's encode() returns its encode_cache", _encoded_once),
    (
        "python-engineio",
        "a long-polling POST may carry 1024 packets (Payload.max_decode_packets)",
        lambda: Payload.max_decode_packets >= 1024,
    ),
    (
        "python-engineio",
        "its ASGI WebSocket keeps the server's send (asgi_send)",
        _engineio_keeps_asgi_send,
    ),
    (
        "python-socketio",
        "the server's connect, event and message handlers are the ones EngineWorkarounds overrides",
        _has(
            socketio.AsyncServer,
            "_handle_event",
            "_handle_event_internal",
            "_handle_eio_message",
            "_handle_connect",
            "_send_packet",
        ),
    ),
    (
        "python-socketio",
        "the server is EngineWorkarounds",
        lambda: issubclass(engine.EngineWorkarounds, socketio.AsyncServer),
    ),
    (
        "python-socketio",
        "the client manager's connect and room methods are the ones livebase's manager uses",
        _has(
            socketio.AsyncManager,
            "connect",
            "basic_enter_room",
            "basic_leave_room",
            "basic_disconnect",
            "sid_from_eio_sid",
        ),
    ),
    (
        "uvicorn",
        "direct frame writes find its sans-I/O WebSocket protocol "
        "(uvicorn.protocols.websockets.websockets_sansio_impl)",
        _direct_writes_find_uvicorn,
    ),
    (
        "SQLAlchemy",
        "its aiosqlite cursor and connection have the hooks storage/sqlite.py overrides",
        lambda: (
            _has(
                AsyncAdapt_aiosqlite_cursor,
                "_execute_async",
                "_executemany_async",
                "_async_soft_close",
            )()
            and _has(AsyncAdapt_aiosqlite_connection, "_cursor_cls")()
        ),
    ),
    (
        "aiosqlite",
        "a connection runs a function in its thread (Connection._execute, _conn)",
        _has(aiosqlite.Connection, "_execute", "_conn"),
    ),
]


def check_patches() -> None:
    """Make sure each workaround of another library's internals took effect."""
    for library, what, took in _PATCHES:
        if not took():
            raise IncompatibleLibrary(
                f"a workaround of {library}'s internals did not take: {what} "
                f"(docs/internals.md); livebase would misbehave, so it does not start"
            )


def check_internals() -> None:
    """Both checks; :class:`IncompatibleLibrary` names the first library that fails."""
    check_versions()
    check_patches()
