#!/usr/bin/env python3
"""Three session-recovery races that bench/chaos.py ran into, each made deterministic.

    .venv/bin/python bench/recovery_races.py            # all three, ~1 minute
    .venv/bin/python bench/recovery_races.py flap slow  # some of them

Each prints what a client got back (``recovered`` True/False) and the
servers' ``recovery refused`` lines; every reconnect below is within the
recovery window, by the same user with a valid token, so SPEC §11 says each
should be recovered. See bench/README.md ("Findings") for the analysis.

- ``flap``: connect to node 0, drop, recover on node 1, drop again ``gap``
  seconds after that recovery, reconnect to node 0 at once. Node 1 took the
  session out of Redis and writes it back only ``WRITE_AFTER`` (50 ms) later
  (realtime/stored_sessions.py), so for small gaps node 0 finds nothing.
- ``slow``: a reconnect whose recovery handshake is slow (here: the change
  log is locked from outside for 1.8 s). The client (python-socketio, as
  LivebaseClient uses it) gives up on the CONNECT reply after 1 s and tries
  again; the first attempt still holds the session it took, so the second is
  refused "unknown or expired session" and starts a new one.
- ``stranded``: no server. ``SessionBook.save`` while the book's writer is
  inside a flush (awaiting the store) schedules no new write; the session
  stays unwritten until some later save on that process.

Needs what bench/chaos.py needs (PostgreSQL and Redis on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chaos  # bench/chaos.py
import fanout  # bench/fanout.py

SCENARIOS = ("flap", "slow", "stranded")


async def until(check: Any, within: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise TimeoutError("gave up waiting")
        await asyncio.sleep(0.001)


class Steered(chaos.Client):
    """A chaos client that reconnects only when told, to the node it is told."""

    def __init__(self, index: int, user: tuple[str, str, str], run: chaos.Run) -> None:
        super().__init__(index, *user, 0, run)
        self.sio.reconnection = False
        self.target = 0

    def _url(self) -> str:
        self.node = self.target
        return f"http://{chaos.HOST}:{self.run.proxies[self.target].port}"

    async def to(self, node: int) -> bool:
        """Connect (with the session it has) to ``node``; whether it was recovered."""
        self.target = node
        await self.sio.connect(
            self._url,
            socketio_path=chaos.SOCKET_PATH,
            transports=["websocket"],
            auth=self.sio._recovery_auth,  # keeps pid and offset (LivebaseClient.connect)
            wait_timeout=10,
        )
        await until(lambda: not self.hello_pending)
        return bool(self.sio.recovered)

    async def cut(self) -> None:
        link = self.link()
        assert link is not None
        link.abort()
        await until(lambda: not self.sio.connected)


async def flap(run: chaos.Run, users: list[tuple[str, str, str]]) -> None:
    print("flap: recover on node 1, drop `gap` s later, reconnect to node 0 at once")
    for n, gap in enumerate((0.0, 0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.3)):
        client = Steered(n, users[n % len(users)], run)
        run.clients.append(client)
        await client.connect()
        await until(lambda c=client: c.ready)  # type: ignore[misc]
        await asyncio.sleep(0.3)  # its session is stored
        await client.cut()
        await asyncio.sleep(0.3)  # node 0's write of the gone session has landed
        first = await client.to(1)
        await asyncio.sleep(gap)
        await client.cut()
        second = await client.to(0)
        print(f"  gap {gap:4.2f} s: recovered on node 1 {first}, then on node 0 {second}")
        await client.sio.disconnect()


async def slow(run: chaos.Run, users: list[tuple[str, str, str]], database_url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    print("slow: the change log locked for 1.8 s while a client reconnects by itself")
    client = chaos.Client(100, *users[0], 0, run)  # python-socketio's own reconnection
    run.clients.append(client)
    await client.connect()
    await until(lambda: client.ready)
    await run.ok(0, "POST", "/items/notes", 201, json={"text": "x", "team": "red", "v": 0})
    await asyncio.sleep(0.5)
    db = await asyncpg.connect(database_url)
    try:
        lock = db.transaction()
        await lock.start()
        await db.execute("LOCK TABLE livebase_changes IN ACCESS EXCLUSIVE MODE")
        print(f"  {chaos.stamp()} change log locked; cutting the client's connection")
        client.cause = "reset"
        link = client.link()
        assert link is not None
        link.abort()
        await asyncio.sleep(1.8)
        await lock.rollback()
        print(f"  {chaos.stamp()} change log unlocked")
    finally:
        await db.close()
    await until(lambda: client.ready, 30)
    for line in client.history[1:]:
        print(f"  {line}")
    await client.sio.disconnect()


async def stranded() -> None:
    from livebase.realtime.connections import Connection
    from livebase.realtime.stored_sessions import SessionBook, pid_key
    from livebase.services.accountability import Accountability

    class SlowStore:
        """A session store whose writes take 20 ms (a Redis round trip under load)."""

        def __init__(self) -> None:
            self.data: dict[str, str] = {}

        async def put(self, records: list[tuple[str, int, str, float]]) -> None:
            await asyncio.sleep(0.02)
            self.data.update((key, record) for key, _, record, _ in records)

        async def take(self, key: str) -> str | None:
            return self.data.pop(key, None)

        async def keep(self, keys: list[str], ttl: float) -> None:
            return None

        async def prune(self) -> None:
            return None

    print("stranded: a save while the session book is writing")
    store = SlowStore()
    book = SessionBook(store, 120)
    who = Accountability(user_id="u1", role="user")
    a = Connection(sid="A" * 20, eio_sid="a", who=who, pid="a" * 24)
    b = Connection(sid="B" * 20, eio_sid="b", who=who, pid="b" * 24)
    book.save(a)  # written 50 ms later
    await asyncio.sleep(0.06)  # ... that write is under way now
    book.save(b)
    for waited in (0.1, 1.0, 3.0):
        await asyncio.sleep(waited)
        print(f"  {waited:3.1f} s later: b stored {pid_key(b.pid) in store.data}")  # type: ignore[arg-type]
    book.save(a)  # any later save on the process
    await asyncio.sleep(0.2)
    print(f"  after another save: b stored {pid_key(b.pid) in store.data}")  # type: ignore[arg-type]


async def on_servers(args: argparse.Namespace, cluster: fanout.Cluster, wanted: list[str]) -> None:
    await cluster.start()
    run = chaos.Run(args, [s.port for s in cluster.servers])
    try:
        for proxy in run.proxies:
            await proxy.start()
        users = await run.setup()
        run.owners = [uid for uid, _, _ in users]
        if "flap" in wanted:
            await flap(run, users)
        if "slow" in wanted:
            assert cluster.database_url is not None
            await slow(run, users, cluster.database_url)
    finally:
        await run.close()
    refused = chaos.server_log_counts([s.log_path for s in cluster.servers])["refused"]
    print(f"servers: recovery refused {dict(refused)}")


def main() -> int:
    wanted = [name for name in sys.argv[1:] if name in SCENARIOS] or list(SCENARIOS)
    args = chaos.parse_args(["--users", "3", "--seed", "1"])
    chaos.quiet_clients()
    if "stranded" in wanted:
        asyncio.run(stranded())
    if "flap" in wanted or "slow" in wanted:
        with chaos.two_nodes(args) as cluster:
            asyncio.run(on_servers(args, cluster, wanted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
