"""``/stats/realtime``: this process's sockets, rooms and deliveries, and in a cluster every
process's, from the stats each one publishes with its heartbeat (:mod:`nodes`)."""

from __future__ import annotations

from typing import Any

from livebase.realtime.cluster import NAMESPACE, Manager
from livebase.realtime.connections import Connections
from livebase.realtime.delivery import Delivery
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.nodes import NodeDirectory
from livebase.realtime.recovery import Recovery


class RealtimeStats:
    def __init__(
        self,
        manager: Manager,
        connections: Connections,
        delivery: Delivery,
        nodes: NodeDirectory | None,
        recovery: Recovery | None,
        live: LiveQueries,
    ) -> None:
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
