"""The per-socket history the delivery trace reads stays bounded (docs/operations.md,
"Delivery trace"): a flood of connects, or of room changes, cannot grow it without limit."""

from __future__ import annotations

import pytest

from livebase.realtime import history
from livebase.realtime.connections import Connection
from livebase.realtime.history import SocketHistory
from livebase.realtime.offsets import Progress
from livebase.services.accountability import Accountability


def _connection(n: int, user: str = "u1") -> Connection:
    return Connection(sid=f"sid-{n}", eio_sid=f"eio-{n}", who=Accountability(user, "user"))


def _book(retention: float = 3600) -> SocketHistory:
    return SocketHistory(Progress(), retention, lambda eio_sid: "websocket")


def test_gone_sockets_are_capped_oldest_forgotten_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "GONE_SOCKETS", 5)
    book = _book()
    for n in range(50):
        connection = _connection(n)
        book.connected(connection)
        book.disconnected(connection, "client disconnect")
    assert book.sizes()["gone"] == 5 and book.sizes()["connected"] == 0
    kept = [t["sid"] for t in book.of_user("u1", {}, lambda sid: False)]
    assert kept == [f"sid-{n}" for n in range(45, 50)]


def test_gone_sockets_are_kept_for_the_retention_at_most() -> None:
    book = _book(retention=0.000001)
    connection = _connection(1)
    book.connected(connection)
    book.disconnected(connection, "client disconnect")
    assert book.of_user("u1", {}, lambda sid: False) == []
    assert book.sizes()["gone"] == 0


def test_room_changes_per_socket_are_capped_and_the_forgotten_part_is_marked() -> None:
    progress = Progress()
    book = SocketHistory(progress, 3600, lambda eio_sid: "websocket")
    connection = _connection(1)
    book.connected(connection)
    for n in range(3 * history.TRAIL_EVENTS):
        progress.position = n
        book.joined(connection.sid, "lobby", "joined on request")
    (trail,) = book.of_user("u1", {connection.sid: connection}, lambda sid: False)
    assert len(trail["events"]) == history.TRAIL_EVENTS
    assert trail["forgottenUpTo"] == 2 * history.TRAIL_EVENTS - 1


def test_refused_recoveries_waiting_for_their_socket_are_capped() -> None:
    book = _book()
    for n in range(3 * history.REFUSALS):
        book.refused(f"eio-{n}", "unknown or expired session")
    assert len(book._refusals) == history.REFUSALS


def test_gone_sockets_are_capped_in_bytes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "GONE_BYTES", 100_000)
    book = _book()
    for n in range(200):
        connection = _connection(n)
        connection.rooms = {f"room-{r}-" + "x" * 190 for r in range(128)}  # the most it may
        book.connected(connection)
        book.disconnected(connection, "client disconnect")
    sizes = book.sizes()
    assert 0 < sizes["gone"] < 10 and sizes["goneBytes"] <= 100_000
