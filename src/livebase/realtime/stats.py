"""``/stats/realtime``: this process's sockets, rooms and deliveries, and in a cluster every
process's, from the stats each one publishes with its heartbeat (:mod:`nodes`); and the
figures ``/metrics`` reads when it is scraped (:meth:`RealtimeStats.figures`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from livebase.realtime.cluster import NAMESPACE, Manager
from livebase.realtime.connections import Connections
from livebase.realtime.delivery import Delivery
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.nodes import NodeDirectory
from livebase.realtime.recovery import Recovery


@dataclass
class Figures:
    """This process's sockets, as the metrics show them (and an inspector would)."""

    transports: dict[str, int] = field(default_factory=lambda: {"websocket": 0, "polling": 0})
    roles: dict[str, int] = field(default_factory=dict)
    queued_bytes: int = 0
    live_subscriptions: int = 0


class RealtimeStats:
    def __init__(
        self,
        eio_sockets: dict[str, Any],
        manager: Manager,
        connections: Connections,
        delivery: Delivery,
        nodes: NodeDirectory | None,
        recovery: Recovery | None,
        live: LiveQueries,
    ) -> None:
        self._eio_sockets = eio_sockets  # python-engineio's eio_sid -> session table
        self._manager = manager
        self._connections = connections
        self._delivery = delivery
        self._nodes = nodes
        self._recovery = recovery
        self._live = live

    def here(self) -> dict[str, Any]:
        rooms = {
            name: len(members)
            for name, members in self._manager.rooms.get(NAMESPACE, {}).items()
            if name is not None and name not in self._connections.by_sid
        }
        return {
            "nodeId": self._manager.node_id,
            "connections": len(self._connections),
            "users": self._connections.users,
            "rooms": rooms,
            "delivered": self._delivery.delivered,
            "liveQueries": self._live.stats(),
            **({"recovery": dict(self._recovery.counts)} if self._recovery else {}),
            **({"pubsub": self._manager.counters()} if self._manager.clustered else {}),
        }

    def figures(self) -> Figures:
        """Open sockets by transport and role, the bytes waiting for them, their live
        queries: one pass over this process's sockets."""
        figures = Figures()
        roles: Counter[str] = Counter()
        sessions = self._eio_sockets
        for connection in self._connections.by_sid.values():
            roles[connection.role] += 1
            session = sessions.get(connection.eio_sid)
            if session is None:
                continue
            figures.transports["websocket" if session.upgraded else "polling"] += 1
            figures.queued_bytes += session.bytes_waiting()
        figures.roles = dict(roles)
        figures.live_subscriptions = int(self._live.stats()["subscriptions"])
        return figures

    async def beat(self) -> None:
        """Cluster only: publish this process's stats (and that it is alive)."""
        if self._nodes is not None:
            await self._nodes.beat(self.here())

    async def cluster(self) -> dict[str, Any] | None:
        """Every process's stats and the totals, or None for one process (or Redis away)."""
        if self._nodes is None:
            return None
        nodes = await self._nodes.nodes()
        if nodes is None:
            return None
        here = self.here()
        nodes = [here] + [n for n in nodes if n.get("nodeId") != here["nodeId"]]
        nodes.sort(key=lambda n: str(n.get("nodeId")))
        return {
            "nodes": nodes,
            "total": {
                "nodes": len(nodes),
                "connections": sum(int(n.get("connections", 0)) for n in nodes),
                "delivered": sum(int(n.get("delivered", 0)) for n in nodes),
            },
        }
