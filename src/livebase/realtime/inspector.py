"""The inspector (``/admin/``; docs/operations.md, "Inspector"): every node's sockets,
the change log's newest entries and headline figures, for administrators only.

Two ways in, both for administrators:

- ``GET /stats/realtime/sockets``: :meth:`Inspector.sockets` once;
- the room :data:`ROOM` (``admin:inspector``), which only administrators may
  join (:mod:`rooms`): while at least one of this process's sockets is in it,
  this process sends them ``inspector.tail`` (entries as they are committed,
  read from the shared log every :data:`TAIL_EVERY` seconds, so a change made
  through any node shows) and every :data:`FIGURES_EVERY` seconds
  ``inspector.sockets`` and ``inspector.figures``.

Nothing runs while nobody here watches: the loop only looks at the room.
Each process feeds only its own watchers, straight to their sockets (never
through the cluster's emit), so two watchers on two nodes never get a frame
twice, and each frame is checked against the watcher's role when sent: a
socket whose role stopped being administrator gets nothing more (and
:mod:`memberships` takes it out of the room). Answers are bounded:
:data:`MAX_SOCKETS` sockets (the newest connected first) with the total,
:data:`MAX_ROOMS` rooms per socket with their count, :data:`TAIL_LIMIT`
entries per read.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livebase.metrics import DELIVERY_LATENCY, SLOW_CONSUMER_DISCONNECTS
from livebase.realtime.cluster import NAMESPACE, Manager
from livebase.realtime.connections import Connection, Connections
from livebase.realtime.offsets import offset
from livebase.realtime.rooms import INSPECTOR_ROOM as ROOM
from livebase.realtime.stats import RealtimeStats
from livebase.services.accountability import SYSTEM
from livebase.services.items import ItemsService
from livebase.services.query import Query
from livebase.services.relay import ChangeRelay

_log = logging.getLogger("livebase.realtime")

QUESTION = "inspector.sockets"  # what other processes are asked (Manager.ask)
MAX_SOCKETS = 500  # sockets in one answer, over the whole cluster
MAX_ROOMS = 50  # rooms shown per socket (roomCount has them all)
TAIL_LIMIT = 50  # entries per read of the log; a larger burst shows its newest
TAIL_START = 20  # entries a watcher gets when it joins
TAIL_EVERY = 0.5  # seconds between reads of the log while someone watches
FIGURES_EVERY = 2.0  # seconds between socket lists and figures while someone watches
LATENCY_WINDOW = 30  # pushes of the figures (a minute) the delivery latency p99 covers

Ask = Callable[[str, Any], Awaitable[list[tuple[str, Any]]]]
Tell = Callable[[str, str, Any], None]


class Inspector:
    def __init__(
        self,
        eio_sockets: dict[str, Any],
        manager: Manager,
        connections: Connections,
        stats: RealtimeStats,
        relay: ChangeRelay,
        items: ItemsService,
        tell: Tell,
        ask: Ask,
    ) -> None:
        self._eio_sockets = eio_sockets  # python-engineio's eio_sid -> session
        self._manager = manager
        self._connections = connections
        self._stats = stats
        self._relay = relay
        self._items = items
        self._tell = tell
        self._ask = ask
        self._seen: set[str] = set()  # the watchers already fed
        self._tail_after: int | None = None  # the newest entry the watchers were sent
        # The totals at the last pushes: rates over the last one, p99 over them all.
        self._previous: deque[tuple[float, _Counted]] = deque(maxlen=LATENCY_WINDOW)

    # -- the socket list ---------------------------------------------------------------------

    async def sockets(self, limit: int = MAX_SOCKETS) -> dict[str, Any]:
        """Every node's sockets, the newest connected first, at most ``limit``."""
        listing = await self._gather(limit)
        del listing["figures"]
        return listing

    async def _gather(self, limit: int) -> dict[str, Any]:
        """:meth:`sockets`, with every node's running totals added up (``figures``)."""
        here = self.here(limit)
        answers = await self._ask(QUESTION, {"limit": limit})
        listings = [here] + [body for _node, body in answers if isinstance(body, dict)]
        sockets = [s for listing in listings for s in listing.get("sockets", [])]
        sockets.sort(key=lambda s: str(s.get("connectedAt")), reverse=True)
        sockets = sockets[:limit]
        await self._add_emails(sockets)
        return {
            "sockets": sockets,
            "total": sum(int(listing.get("total", 0)) for listing in listings),
            "limit": limit,
            "nodes": {"clustered": self._manager.clustered, "answered": len(listings)},
            "figures": _summed([listing.get("figures", {}) for listing in listings]),
        }

    async def answer(self, what: str, body: Any) -> Any:
        """Another process's question: this process's sockets."""
        if what != QUESTION or not isinstance(body, dict):
            return None
        limit = body.get("limit")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SOCKETS:
            limit = MAX_SOCKETS
        return self.here(limit)

    def here(self, limit: int) -> dict[str, Any]:
        """This process's sockets (the newest ``limit``), their count and its figures."""
        newest = heapq.nlargest(
            limit, self._connections.by_sid.values(), key=lambda c: c.connected_at
        )
        return {
            "sockets": [self._socket(c) for c in newest],
            "total": len(self._connections),
            "figures": self._figures_here(),
        }

    def _socket(self, connection: Connection) -> dict[str, Any]:
        session = self._eio_sockets.get(connection.eio_sid)
        rooms = sorted(
            room
            for room in self._manager.get_rooms(connection.sid, NAMESPACE)
            if room != connection.sid
        )
        return {
            "sid": connection.sid,
            "node": self._manager.node_id,
            "userId": connection.user_id,
            "role": connection.role,
            "transport": _transport(session),
            "rooms": rooms[:MAX_ROOMS],
            "roomCount": len(rooms),
            "connectedAt": connection.connected_at.isoformat(),
            "queuedBytes": session.bytes_waiting() if session is not None else 0,
        }

    def _figures_here(self) -> dict[str, Any]:
        """What this process counted since it started (the asker takes differences)."""
        return {
            "delivered": int(self._stats.here().get("delivered", 0)),
            "slowConsumerDisconnects": _counter_total(SLOW_CONSUMER_DISCONNECTS),
            "latencyBuckets": _buckets(DELIVERY_LATENCY),
        }

    async def _add_emails(self, sockets: list[dict[str, Any]]) -> None:
        ids = sorted({s["userId"] for s in sockets if s.get("userId")})
        emails: dict[str, str] = {}
        if ids:
            query = Query(filter={"id": {"in": ids}}, fields=["id", "email"], limit=None)
            try:
                users, _count = await self._items.read_many("users", query, SYSTEM)
            except Exception:
                _log.exception("the inspector could not read the sockets' users")
                users = []
            emails = {str(user["id"]): str(user.get("email")) for user in users}
        for socket in sockets:
            socket["email"] = emails.get(socket.get("userId") or "")

    # -- what watchers get ---------------------------------------------------------------

    def watchers(self) -> list[str]:
        """This process's sockets in the room that may still be there (a role changed
        since is taken out of the room by :mod:`memberships`; until then, it gets nothing)."""
        members = self._manager.rooms.get(NAMESPACE, {}).get(ROOM)
        watching = []
        for sid in list(members or ()):
            connection = self._connections.get(sid)
            if connection is not None and connection.who.is_admin and not connection.dropped:
                watching.append(sid)
        return watching

    async def run(self) -> None:
        """Feed this process's watchers for as long as the server runs."""
        last_figures = 0.0
        while True:
            await asyncio.sleep(TAIL_EVERY)
            watching = self.watchers()
            if not watching:
                self._seen, self._tail_after = set(), None
                self._previous.clear()
                continue
            try:
                new = [sid for sid in watching if sid not in self._seen]
                self._seen = set(watching)
                await self._send_tail(watching, new)
                if new or time.monotonic() - last_figures >= FIGURES_EVERY:
                    last_figures = time.monotonic()
                    await self._send_figures(watching)
            except Exception:
                _log.exception("the inspector's feed failed; trying again")

    async def _send_tail(self, watching: list[str], new: list[str]) -> None:
        """New watchers: the log's newest entries; everyone: the entries since the last read.
        (A page shows each offset once: the two may overlap.)"""
        if new:
            entries = await self._relay.log.tail(0, TAIL_START)
            for sid in new:
                self._tell(sid, "inspector.tail", {"entries": [_entry(e) for e in entries]})
            if self._tail_after is None:
                self._tail_after = entries[-1].position if entries else 0
                return
        assert self._tail_after is not None
        entries = await self._relay.log.tail(self._tail_after, TAIL_LIMIT)
        if not entries:
            return
        self._tail_after = entries[-1].position
        payload = {"entries": [_entry(e) for e in entries]}
        for sid in watching:
            self._tell(sid, "inspector.tail", payload)

    async def _send_figures(self, watching: list[str]) -> None:
        listing = await self._gather(MAX_SOCKETS)
        status = await self._relay.status()
        figures = self._headline(listing, status)
        sockets = {k: listing[k] for k in ("sockets", "total", "limit", "nodes")}
        for sid in watching:
            self._tell(sid, "inspector.sockets", sockets)
            self._tell(sid, "inspector.figures", figures)

    def _headline(self, listing: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Open sockets; events and frames per second since the last figures; delivery
        latency p99 over the last minute; slow-consumer disconnects; the log's lag."""
        summed = listing["figures"]
        now = time.monotonic()
        current = _Counted(
            int(status["lastPosition"]), summed["delivered"], summed["latencyBuckets"]
        )
        events_per_second = frames_per_second = p99 = None
        if self._previous:
            then, before = self._previous[-1]
            elapsed = max(now - then, 1e-3)
            events_per_second = round(max(0, current.position - before.position) / elapsed, 2)
            frames_per_second = round(max(0, current.frames - before.frames) / elapsed, 2)
            _oldest, first = self._previous[0]
            if len(first.buckets) == len(current.buckets):
                pairs = zip(current.buckets, first.buckets, strict=True)
                p99 = quantile(0.99, _LATENCY_BOUNDS, [max(0, a - b) for a, b in pairs])
        self._previous.append((now, current))
        return {
            "openSockets": listing["total"],
            "nodes": listing["nodes"],
            "eventsPerSecond": events_per_second,
            "framesPerSecond": frames_per_second,
            "framesDelivered": current.frames,
            "latencyP99": None if p99 is None else round(p99, 4),
            "slowConsumerDisconnects": summed["slowConsumerDisconnects"],
            "changeLog": {
                "lastPosition": current.position,
                "behind": status["behind"],
                "entries": status["entries"],
            },
            "at": time.time(),
        }


@dataclass(frozen=True)
class _Counted:
    """The cluster's running totals at one push of the figures."""

    position: int  # the change log's newest position
    frames: int  # frames delivered, every node together
    buckets: list[int]  # the delivery latency histogram's cumulative buckets, summed


def _summed(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Every node's figures added up (numbers, and bucket lists position by position)."""
    total: dict[str, Any] = {"delivered": 0, "slowConsumerDisconnects": 0, "latencyBuckets": []}
    for one in figures:
        for name, value in one.items():
            if isinstance(value, int):
                total[name] = total.get(name, 0) + value
            elif isinstance(value, list) and name == "latencyBuckets":
                mine = total[name]
                if not mine:
                    total[name] = [int(v) for v in value]
                elif len(mine) == len(value):
                    total[name] = [a + int(b) for a, b in zip(mine, value, strict=True)]
    return total


def _counter_total(counter: Any) -> int:
    """A prometheus-client counter's value in this process, all its labels together."""
    samples = (s for metric in counter.collect() for s in metric.samples)
    return int(sum(s.value for s in samples if s.name.endswith("_total")))


def _buckets(histogram: Any) -> list[int]:
    """A prometheus-client histogram's cumulative bucket counts in this process."""
    samples = (s for metric in histogram.collect() for s in metric.samples)
    return [int(s.value) for s in samples if s.name.endswith("_bucket")]


def _bounds(histogram: Any) -> list[float]:
    """Its buckets' finite upper bounds (``le``), in order."""
    samples = (s for metric in histogram.collect() for s in metric.samples)
    return [float(s.labels["le"]) for s in samples if s.name.endswith("_bucket")][:-1]


_LATENCY_BOUNDS = _bounds(DELIVERY_LATENCY)


def quantile(q: float, bounds: list[float], counts: list[int]) -> float | None:
    """Prometheus's ``histogram_quantile``: the ``q`` quantile of cumulative bucket
    ``counts`` (``bounds`` their upper bounds, then +Inf), interpolated linearly
    inside its bucket; None without observations. In the +Inf bucket: the
    highest finite bound, as Prometheus says."""
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    below, lower = 0, 0.0
    for bound, count in zip(bounds, counts, strict=False):
        if count >= rank:
            return lower + (bound - lower) * (rank - below) / max(count - below, 1)
        below, lower = count, bound
    return bounds[-1]


def _transport(session: Any) -> str:
    if session is None:
        return "unknown"
    return "websocket" if session.upgraded else "polling"


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "offset": offset(entry.position),
        "collection": entry.collection,
        "key": entry.key,
        "action": entry.action,
        "userId": entry.user_id,
        "time": entry.changed_at.isoformat(),
    }
