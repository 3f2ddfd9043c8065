"""The processes of a cluster, as Redis knows them.

Every process writes its stats under ``{key}:node:{id}`` every
``HEARTBEAT`` seconds with a short expiry: the keys are both the cluster
view of ``/stats/realtime`` and the liveness check that lets presence
forget a process that stopped without saying goodbye.
"""

from __future__ import annotations

from typing import Any

from livebase import encoding
from livebase.storage.redis import RedisLink

HEARTBEAT = 2.0  # seconds
EXPIRES = 10  # seconds without a heartbeat before a process counts as gone


class NodeDirectory:
    def __init__(self, link: RedisLink, node_id: str) -> None:
        self._link = link
        self.node_id = node_id
        self.prefix = link.key("node", "")

    async def beat(self, stats: dict[str, Any]) -> None:
        await self._link.attempt(
            self._link.client.set(self.prefix + self.node_id, encoding.dumps(stats), ex=EXPIRES)
        )

    async def leave(self) -> None:
        await self._link.attempt(self._link.client.delete(self.prefix + self.node_id))

    async def nodes(self) -> list[dict[str, Any]] | None:
        """Every live process's last stats, or None while Redis is away."""
        client = self._link.client
        keys = await self._link.attempt(_all_keys(client, self.prefix + "*"))
        if keys is None:
            return None
        if not keys:
            return []
        values = await self._link.attempt(client.mget(keys))
        if values is None:
            return None
        return [encoding.loads(value) for value in values if value is not None]


async def _all_keys(client: Any, pattern: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=pattern, count=1000)]
