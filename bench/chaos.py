#!/usr/bin/env python3
"""Chaos test of connection state recovery (SPEC §11) on a two-process cluster.

    .venv/bin/python bench/chaos.py                          # 200 clients, 60 s
    .venv/bin/python bench/chaos.py --clients 40 --duration 15 --rate 10

Not part of the test suite: it runs for about two minutes and wants most of
a 2-core machine. Exit status 0 when every client ends with exactly what it
may read and no event came twice or out of order; 1 otherwise; 2 when the
run itself failed (a server did not start, clients never came back...).

What it does, all on 127.0.0.1:

1. creates a throwaway PostgreSQL database on postgresql://postgres@127.0.0.1:5432
   (trust auth; ``livebase_fanout_<random>``, dropped afterwards WITH (FORCE):
   bench/fanout.py's cluster code does this part) and starts two ``livebase serve``
   processes of this checkout (``.venv/bin/livebase``) on free ports, sharing
   it and Redis (``--redis-url``) under a SOCKET_REDIS_KEY of the run's own,
   whose keys are deleted afterwards. The servers are stopped by PID at the
   end, on Ctrl-C and on errors;
2. sets up permissions under which every client may read a different subset:
   a collection ``notes`` (``text``, ``owner`` UUID, ``team``, ``v`` integer),
   roles ``red``, ``green`` and ``blue`` whose read rule is a condition:

   - red:   ``owner = $CURRENT_USER or team = $CURRENT_ROLE or team = "all"``
   - green: the same, but only the fields ``id, owner, team, v`` (no ``text``)
   - blue:  ``owner = $CURRENT_USER or team = $CURRENT_ROLE``

   ``--users`` users spread over the three roles, and a few administrators'
   sockets (they read everything). A collection ``marks`` that every role
   reads carries the final sentinel;
3. connects ``--clients`` :class:`livebase.client.LivebaseClient` sockets,
   alternately to each node, through a small TCP proxy in this process (one
   listener per node) that can cut a connection the ways a network does;
4. for ``--duration`` seconds writes ``--rate`` changes a second through REST
   as the administrator, alternately on each node (creates, updates that
   increment ``v``, deletes; never two writes at once on one item; items
   never move between owners or teams), while every ``--drop-every`` seconds
   or so it cuts 1..``--drop-batch`` random clients' connections, one of:

   - ``close``: the client closes its WebSocket (no Socket.IO goodbye), as
     ``drop()`` in tests/realtime/test_recovery.py does;
   - ``reset``: the proxy aborts both TCP sides at once;
   - ``half-open``: the proxy aborts the client's side only and keeps the
     server's side open and silent, as a dead network would: the server
     believes the old socket alive until its ping timeout, so the reconnect
     *takes over* a session whose socket is still connected, here or on the
     other node;
   - ``replay``: a ``reset``, and the reconnect is reset again 0-20 ms after
     its CONNECT reply, that is while the missed events are replayed;
   - ``reload``: a page reload: a clean disconnect, then a new connection
     without the old session (no pid), so ``recovered: false`` on purpose;

   and now and then (``--mass-drop``) a quarter of all clients at once.
   Clients reconnect by themselves (python-socketio's reconnection, first
   attempt after ``--reconnect-delay`` s); each reconnect goes to the other
   node with probability ``--switch``, as behind a load balancer. A connect
   that is not recovered (``recovered: false``) refetches
   ``GET /items/notes?limit=-1`` like an app would, buffering the events that
   arrive meanwhile and applying those newer than what it fetched. The server
   disconnecting a socket for good (python-socketio does not reconnect then)
   is answered by a new connect after 1 s, and counted;
5. stops writing and cutting, waits until every client is connected and
   synced, creates a sentinel item in ``marks`` and waits for every client to
   have received it, then checks every client against REST with its own token
   (``GET /items/notes?limit=-1``).

What is checked, per client:

- **final state**: the items it holds (applying created / updated / deleted)
  equal exactly what REST returns to it now: same ids, same ``v``, same
  fields (``missing`` / ``extra`` / ``stale`` below);
- **duplicates**: no item created twice, no update ``v`` seen twice, no
  delete twice (over the client's whole life, across sessions too);
- **order**: per item, versions strictly increase and nothing follows a delete;
- **gaps**: within one session (a chain of recovered reconnects), an update
  whose ``v`` skips versions, or a delete of a version never seen, means the
  events between were lost (rights never change here, so every event of an
  item a client may read is owed to it);
- **rights**: no event carries an item or a field its role may not read;
- **recovery**: a recovered reconnect keeps its sid; ``connected`` comes
  before the replayed events and agrees with the client's own view;
- **silence**: a disconnect the script did not cause, after more than
  ``--ping-interval`` + 1 s without any packet (not even a ping), means the
  server had stopped writing to a socket whose connection stayed open.

Printed: clients, cuts by kind, reconnects recovered / not recovered (with
the servers' ``recovery refused ...: <reason>`` lines counted by reason),
recoveries on the other node, takeovers, replayed (``missed``) events, time
away (disconnect to ``connected``), events received, and lost / duplicated /
out-of-order / unauthorized counts, with the first ``--show`` cases of each
(and of each reconnect not recovered) in detail: the client's connection
history just before, timestamped like the servers' log lines. Also the CPU
seconds of each server process and of this script. ``--histories FILE``
writes every client's whole history; ``--keep`` keeps the servers' logs and
the database. The servers' own INFO lines are made visible through a
``sitecustomize`` module on their PYTHONPATH (``livebase serve`` configures
uvicorn's loggers only).

Exit status: 1 if anything was lost, duplicated, out of order,
unauthorized, or a recovery misbehaved (sid, ``connected``); reconnects not
recovered and silent sockets are reported but do not fail the run.

Clients are python-socketio clients, not socket.io-client under Node: the
checks need every event in Python anyway, and at the default rate this
process needs well under one core (its CPU is printed; ``--rate`` and
``--clients`` scale it). See bench/README.md for measured figures.

Needs Linux, the project's virtualenv with the dev extras (python-socketio's
client needs aiohttp), PostgreSQL and Redis on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import aiohttp

    from livebase.client import LivebaseClient
except ImportError:  # pragma: no cover
    sys.exit("bench/chaos.py needs the project's virtualenv: .venv/bin/python bench/chaos.py")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout

HOST = "127.0.0.1"
SOCKET_PATH = "/realtime"
ROLES = ("red", "green", "blue")
TEAMS = ("red", "green", "blue", "all", "none")
FIELDS = ("id", "owner", "team", "v", "text")  # what the check compares
GREEN_FIELDS = ("id", "owner", "team", "v")
MODES = ("close", "reset", "half-open", "replay", "reload")


def log(*parts: object) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def stamp() -> str:
    """Wall-clock time with milliseconds, as in the servers' log lines."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


def may_read(role: str, user_id: str | None, item: dict[str, Any]) -> bool:
    """The read rules this script creates, in Python (a check on what events carry)."""
    if role == "administrator":
        return True
    if item.get("owner") is not None and item.get("owner") == user_id:
        return True
    return item.get("team") == role or (role != "blue" and item.get("team") == "all")


def readable_fields(role: str) -> tuple[str, ...]:
    return GREEN_FIELDS if role == "green" else FIELDS


def view(item: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(item.get(name) for name in FIELDS)


# ---------------------------------------------------------------- a proxy that cuts


class Link:
    """One proxied TCP connection: client <-> proxy <-> server."""

    def __init__(
        self,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        sreader: asyncio.StreamReader,
        swriter: asyncio.StreamWriter,
    ) -> None:
        self.creader, self.cwriter, self.sreader, self.swriter = creader, cwriter, sreader, swriter
        self.silent = False  # half-open: the client is gone, the server is not told

    async def run(self) -> None:
        await asyncio.gather(self._up(), self._down())

    async def _up(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await self.creader.read(65536):
                if self.silent:
                    continue
                self.swriter.write(data)
                await self.swriter.drain()
        if not self.silent:
            self.abort()

    async def _down(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await self.sreader.read(65536):
                if self.silent:
                    continue  # read and forgotten: the server's writes keep succeeding
                self.cwriter.write(data)
                await self.cwriter.drain()
        self.abort()

    def abort(self) -> None:
        for writer in (self.cwriter, self.swriter):
            writer.transport.abort()

    def half_open(self) -> None:
        self.silent = True
        self.cwriter.transport.abort()


class Proxy:
    """A TCP proxy to one node; links are found by the client's local port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.links: dict[int, Link] = {}
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, HOST, 0, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        peer = cwriter.get_extra_info("peername")[1]
        try:
            sreader, swriter = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            cwriter.transport.abort()
            return
        for writer in (cwriter, swriter):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(creader, cwriter, sreader, swriter)
        self.links[peer] = link
        try:
            await link.run()
        except asyncio.CancelledError:  # the run is over (Ctrl-C): nobody awaits this handler
            link.abort()
        finally:
            if self.links.get(peer) is link:
                del self.links[peer]

    async def close(self) -> None:
        self.closing = True
        if self.server is not None:
            self.server.close()
        for link in list(self.links.values()):
            link.abort()


# ---------------------------------------------------------------- bookkeeping


@dataclass
class Anomaly:
    kind: str  # lost, duplicate, disorder, unauthorized, recovery
    client: int
    detail: str
    history: list[str]


@dataclass
class Totals:
    drops: collections.Counter[str] = field(default_factory=collections.Counter)
    mass_drops: int = 0
    connects: int = 0
    recovered: int = 0
    recovered_other_node: int = 0
    not_recovered: int = 0
    reloads: int = 0  # new sessions on purpose: no pid sent
    not_recovered_after: collections.Counter[str] = field(default_factory=collections.Counter)
    missed: int = 0
    events: int = 0
    connect_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    refetches: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    refused: list[Anomaly] = field(default_factory=list)  # reconnects not recovered
    server_drops: int = 0  # disconnects the script did not cause
    downtimes: list[float] = field(default_factory=list)  # disconnect -> `connected`, s
    failed_attempts: collections.Counter[str] = field(default_factory=collections.Counter)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def anomaly(self, kind: str, client: Client, detail: str, amount: int = 1) -> None:
        self.counts[kind] += amount
        self.anomalies.append(Anomaly(kind, client.index, detail, client.history[-6:]))


# ---------------------------------------------------------------- a client


class Client:
    """A LivebaseClient that keeps the items it may read, as an app would, and checks
    each event on the way."""

    def __init__(
        self,
        index: int,
        user_id: str,
        role: str,
        token: str,
        home: int,
        run: Run,
    ) -> None:
        self.index, self.user_id, self.role, self.token = index, user_id, role, token
        self.run = run
        self.node = home  # where it is, or last was, connected
        self.connected_to: int | None = None
        self.rng = random.Random(run.args.seed * 1_000_003 + index)
        self.sio = LivebaseClient(
            reconnection_delay=run.args.reconnect_delay,
            reconnection_delay_max=2,
            randomization_factor=run.args.reconnect_delay / 2,
        )
        self.items: dict[str, dict[str, Any]] = {}
        self.last: dict[str, tuple[int, int]] = {}  # item -> (v of its last event, session)
        self.created: set[str] = set()
        self.deleted: set[str] = set()
        self.session = 0  # grows with each connect that is not recovered
        self.sid: str | None = None
        self.synced = False  # its items are complete (no refetch under way)
        self.buffer: list[tuple[str, dict[str, Any]]] = []
        self.fetch_task: asyncio.Task[None] | None = None
        self.cause = ""  # the cut under way, if the script made one
        self.away_cause = "first connect"  # why the client is (re)connecting
        self.replay_drop = False
        self.reloading = False
        self.hello_pending = False  # a CONNECT came, its ``connected`` not yet
        self.marks: set[int] = set()
        self.history: list[str] = []
        self.connects = 0
        self.last_rx = time.monotonic()  # the last Engine.IO packet received (pings too)
        self.down_since: float | None = None
        self.previous_node: int | None = None  # where its last `connected` came from
        receive = self.sio.eio._receive_packet

        async def received(packet: Any) -> None:
            self.last_rx = time.monotonic()
            await receive(packet)

        self.sio.eio._receive_packet = received
        # python-socketio's reconnects call self.sio.connect(...): note each attempt,
        # and give it --connect-timeout s for the CONNECT reply instead of 1 s.
        connect = self.sio.connect

        async def attempt(*args: Any, **kwargs: Any) -> None:
            if run.args.connect_timeout is not None:
                kwargs["wait_timeout"] = run.args.connect_timeout
            started = time.monotonic()
            try:
                await connect(*args, **kwargs)
            except Exception as exc:
                run.totals.failed_attempts[type(exc).__name__] += 1
                self.history.append(
                    f"{stamp()} connect attempt to node {self.node} failed after "
                    f"{time.monotonic() - started:.1f} s: {exc}"
                )
                raise

        self.sio.connect = attempt  # type: ignore[method-assign]
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("connected", self._on_connected)
        for kind in ("created", "updated", "deleted"):
            self.sio.on(f"item.{kind}", self._handler(kind))

    # -- connecting

    def _url(self) -> str:
        """Called for every connect attempt: sometimes the other node, like a load balancer."""
        if self.connects > 0 and self.rng.random() < self.run.args.switch:
            self.node = 1 - self.node
        return f"http://{HOST}:{self.run.proxies[self.node].port}"

    async def connect(self) -> None:
        await self.sio.connect(
            self._url,
            socketio_path=SOCKET_PATH,
            transports=["websocket"],
            auth={"token": self.token},
            wait_timeout=30,
        )

    def local_port(self) -> int | None:
        ws = getattr(self.sio.eio, "ws", None)
        if ws is None:
            return None
        with contextlib.suppress(Exception):
            return int(ws.get_extra_info("sockname")[1])
        return None

    def link(self) -> Link | None:
        port = self.local_port()
        if port is None or self.connected_to is None:
            return None
        return self.run.proxies[self.connected_to].links.get(port)

    async def _on_connect(self) -> None:
        self.connects += 1
        self.connected_to = self.node
        self.hello_pending = True
        if self.replay_drop:
            self.replay_drop = False
            link = self.link()
            if link is not None:
                delay = self.rng.uniform(0, 0.02)
                asyncio.get_running_loop().call_later(delay, self._reset_during_replay, link)

    def _reset_during_replay(self, link: Link) -> None:
        self.history.append(f"{stamp()} cut: reset during replay")
        self.cause = "reset during replay"
        link.abort()

    async def _on_disconnect(self, reason: Any = None) -> None:
        now = time.monotonic()
        self.down_since = now
        silence = now - self.last_rx
        self.history.append(
            f"{stamp()} disconnect ({reason}) from node {self.connected_to}, "
            f"{silence:.1f} s after the last packet received"
        )
        if self.hello_pending:
            self.history.append(f"{stamp()}   (before its `connected`)")
        if self.run.closing:
            return
        self.away_cause, self.cause = self.cause or f"server ({reason})", ""
        if self.away_cause.startswith("server"):
            self.run.totals.server_drops += 1
            # The server pings every --ping-interval s: this long without a packet,
            # the server had stopped writing to a socket whose connection was open.
            if silence > self.run.args.ping_interval + 1:
                self.run.totals.anomaly(
                    "silent", self, f"no packet for {silence:.1f} s before the client gave up"
                )
        self.connected_to = None

    async def _on_connect_error(self, data: Any = None) -> None:
        message = data.get("message") if isinstance(data, dict) else str(data)
        self.run.totals.connect_errors[str(message)] += 1
        self.history.append(f"{stamp()} connect_error {message!r}")

    async def _on_connected(self, hello: dict[str, Any]) -> None:
        totals = self.run.totals
        totals.connects += 1
        if not self.hello_pending:
            totals.anomaly("recovery", self, "`connected` without a CONNECT reply before it")
        self.hello_pending = False
        recovered = bool(hello.get("recovered"))
        sid = self.sio.get_sid("/")
        if recovered != self.sio.recovered:
            totals.anomaly(
                "recovery", self, f"`connected` says recovered={recovered}, the pid says otherwise"
            )
        note = (
            f"{stamp()} connected to node {self.connected_to} "
            f"({self.away_cause}): recovered={recovered} missed={hello.get('missed')}"
        )
        self.history.append(note)
        if self.down_since is not None:
            totals.downtimes.append(time.monotonic() - self.down_since)
            self.down_since = None
        if recovered:
            totals.recovered += 1
            totals.missed += int(hello.get("missed") or 0)
            if self.history_node_changed():
                totals.recovered_other_node += 1
            if sid != self.sid:
                totals.anomaly("recovery", self, f"recovered with sid {sid}, was {self.sid}")
        else:
            if self.away_cause == "reload":
                totals.reloads += 1
            elif self.connects > 1:
                totals.not_recovered += 1
                totals.not_recovered_after[self.away_cause] += 1
                totals.refused.append(Anomaly("not recovered", self.index, "", self.history[-6:]))
            self.session += 1
            self.synced = False
            self.buffer = []
            if self.fetch_task is not None:
                self.fetch_task.cancel()
            self.fetch_task = asyncio.create_task(self._refetch(self.session))
        self.sid = sid
        self.previous_node = self.connected_to

    def history_node_changed(self) -> bool:
        return self.previous_node is not None and self.previous_node != self.connected_to

    async def _refetch(self, session: int) -> None:
        """What an app does after a reconnect that lost its session."""
        totals = self.run.totals
        totals.refetches += 1
        while True:
            try:
                items = await self.run.list_notes(self.node, self.token)
                break
            except Exception as exc:
                self.history.append(f"{stamp()} refetch failed: {exc!r}")
                await asyncio.sleep(0.5)
        if session != self.session:
            return
        self.items = {item["id"]: item for item in items}
        for kind, item in self.buffer:
            self._apply(kind, item)
        self.buffer = []
        self.synced = True

    # -- events

    def _handler(self, kind: str) -> Any:
        async def handle(data: dict[str, Any]) -> None:
            self._event(kind, data)

        return handle

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        collection, item = data.get("collection"), data.get("item") or {}
        if collection == "marks":
            if kind == "created":
                self.marks.add(int(item.get("n", -1)))
            return
        if collection != "notes":
            return
        totals = self.run.totals
        totals.events += 1
        if self.hello_pending:
            totals.anomaly("disorder", self, f"item.{kind} before `connected`")
        key, v = item.get("id"), item.get("v")
        if not isinstance(key, str) or not isinstance(v, int):
            totals.anomaly("unauthorized", self, f"item.{kind} without id or v: {item!r}")
            return
        if not may_read(self.role, self.user_id, item):
            totals.anomaly("unauthorized", self, f"item.{kind} {key} v{v} {item!r}")
        extra = set(item) - set(readable_fields(self.role)) - {"createdAt", "updatedAt"}
        if extra:
            totals.anomaly("unauthorized", self, f"item.{kind} {key} carries {sorted(extra)}")
        self._check(kind, key, v)
        if self.synced:
            self._apply(kind, item)
        else:
            self.buffer.append((kind, item))

    def _check(self, kind: str, key: str, v: int) -> None:
        totals, session = self.run.totals, self.session
        last = self.last.get(key)
        where = f"item {key[:8]} {kind} v{v}"
        if last is not None:
            where += f" (last seen v{last[0]} in session {last[1]}, now session {session})"
        if kind == "created":
            if key in self.created:
                totals.anomaly("duplicate", self, f"{where}: created twice")
            elif v != 0:
                totals.anomaly("disorder", self, f"{where}: created with v != 0")
            self.created.add(key)
        elif kind == "updated":
            if key in self.deleted:
                totals.anomaly("disorder", self, f"{where}: after its delete")
            elif last is not None and v == last[0]:
                totals.anomaly("duplicate", self, f"{where}: v{v} twice")
            elif last is not None and v < last[0]:
                totals.anomaly("disorder", self, f"{where}: older than v{last[0]}")
            elif last is not None and last[1] == session and v > last[0] + 1:
                totals.anomaly(
                    "lost", self, f"{where}: v{last[0] + 1}..v{v - 1} missing", v - last[0] - 1
                )
        else:
            if key in self.deleted:
                totals.anomaly("duplicate", self, f"{where}: deleted twice")
            elif last is not None and last[1] == session and v > last[0]:
                totals.anomaly("lost", self, f"{where}: v{last[0] + 1}..v{v} missing", v - last[0])
            self.deleted.add(key)
        self.last[key] = (v, session)

    def _apply(self, kind: str, item: dict[str, Any]) -> None:
        """Apply an event to what the client holds; tolerant of events older than a refetch."""
        key = item["id"]
        if kind == "deleted":
            self.items.pop(key, None)
            return
        held = self.items.get(key)
        if held is None or held.get("v", -1) < item["v"]:
            self.items[key] = item

    # -- chaos

    async def drop(self, mode: str) -> bool:
        """Cut the connection; False if it is not connected right now."""
        if not self.sio.connected or self.connected_to is None or self.hello_pending:
            return False
        link = self.link()
        if link is None:
            return False
        self.history.append(f"{stamp()} cut: {mode}")
        self.cause = mode
        self.run.totals.drops[mode] += 1
        if mode == "close":
            closing = asyncio.create_task(self.sio.eio.ws.close())
            self.run.background.add(closing)
            closing.add_done_callback(self.run.background.discard)
        elif mode == "reset":
            link.abort()
        elif mode == "half-open":
            link.half_open()
        elif mode == "replay":
            self.replay_drop = True
            link.abort()
        elif mode == "reload":
            reload = asyncio.create_task(self._reload())
            self.run.background.add(reload)
            reload.add_done_callback(self.run.background.discard)
        return True

    async def _reload(self) -> None:
        """A page reload: a goodbye, then a new connection without the old session."""
        self.reloading = True
        try:
            await self.sio.disconnect()
            await asyncio.sleep(self.rng.uniform(0, 0.3))
            await self.connect()  # a new auth dict: LivebaseClient forgets pid and offset
        except Exception as exc:
            self.history.append(f"{stamp()} reload failed: {exc!r}")
        finally:
            self.reloading = False

    @property
    def ready(self) -> bool:
        return self.sio.connected and not self.hello_pending and self.synced


# ---------------------------------------------------------------- the run


class Run:
    def __init__(self, args: argparse.Namespace, ports: list[int]) -> None:
        self.args = args
        self.ports = ports
        self.proxies = [Proxy(port) for port in ports]
        self.totals = Totals()
        self.clients: list[Client] = []
        self.http: aiohttp.ClientSession | None = None
        self.admin = ""
        self.t0 = time.monotonic()
        self.rng = random.Random(args.seed)
        # The writer's view: item id -> v, and items a write is under way on.
        self.notes: dict[str, int] = {}
        self.busy: set[str] = set()
        self.writes: collections.Counter[str] = collections.Counter()
        self.write_errors: list[str] = []
        self.owners: list[str] = []
        self.background: set[asyncio.Task[Any]] = set()
        self.lags: list[float] = []  # event loop lateness, s, every 0.1 s
        self.closing = False  # the end: clients disconnect on purpose
        self.revived = 0  # clients the server disconnected, connected again by the watchdog

    def clock(self) -> float:
        return time.monotonic() - self.t0

    def url(self, node: int, path: str) -> str:
        return f"http://{HOST}:{self.ports[node]}{path}"

    async def request(
        self, node: int, method: str, path: str, token: str | None = None, json: Any = None
    ) -> tuple[int, Any]:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        async with self.http.request(method, self.url(node, path), json=json, headers=headers) as r:
            body = await r.json(content_type=None) if r.status != 204 else None
            return r.status, body

    async def ok(self, node: int, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        got, body = await self.request(node, method, path, **kw)
        if got != status:
            raise RuntimeError(f"{method} {path}: {got} {body!r}")
        return body

    async def list_notes(self, node: int, token: str) -> list[dict[str, Any]]:
        body = await self.ok(node, "GET", "/items/notes?limit=-1", token=token)
        return list(body["data"])

    # -- set-up

    async def setup(self) -> list[tuple[str, str, str]]:
        """Collections, roles, rules, users; returns (user id, role, token) per user."""
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=60)
        )
        async with self.http.post(
            self.url(0, "/auth/login"),
            json={"email": fanout.ADMIN_EMAIL, "password": fanout.ADMIN_PASSWORD},
        ) as r:
            assert r.status == 200, await r.text()
            self.admin = (await r.json())["token"]
        fields = {
            "text": {"type": "String"},
            "owner": {"type": "UUID"},
            "team": {"type": "String"},
            "v": {"type": "Integer", "allowNull": False, "defaultValue": 0},
        }
        for name, schema in (("notes", fields), ("marks", {"n": {"type": "Integer"}})):
            body = {"collectionName": name, "schema": {"name": name, "fields": schema}}
            await self.ok(0, "POST", "/schemas", 201, json=body)
        mine = {"owner": {"eq": "$CURRENT_USER"}}
        team = {"team": {"eq": "$CURRENT_ROLE"}}
        everyone = {"team": {"eq": "all"}}
        rules = {
            "red": ({"OR": [mine, team, everyone]}, ["*"]),
            "green": ({"OR": [mine, team, everyone]}, list(GREEN_FIELDS)),
            "blue": ({"OR": [mine, team]}, ["*"]),
        }
        for role, (conditions, fields_) in rules.items():
            await self.ok(0, "POST", "/roles", 201, json={"name": role})
            rule = {"role": role, "collection": "notes", "action": "read"}
            await self.ok(
                0,
                "POST",
                "/permissions",
                201,
                json={**rule, "fields": fields_, "conditions": conditions},
            )
            mark = {"role": role, "collection": "marks", "action": "read", "fields": ["*"]}
            await self.ok(0, "POST", "/permissions", 201, json=mark)
        semaphore = asyncio.Semaphore(4)

        async def user(n: int) -> tuple[str, str, str]:
            role = ROLES[n % len(ROLES)]
            email = f"u{n}@chaos.local"
            login = {"email": email, "password": fanout.USER_PASSWORD}
            async with semaphore:
                body = await self.ok(n % 2, "POST", "/auth/register", 201, json=login)
                uid = body["user"]["id"]
                await self.ok(0, "PATCH", f"/items/users/{uid}", json={"role": role})
                assert self.http is not None
                async with self.http.post(self.url(n % 2, "/auth/login"), json=login) as r:
                    assert r.status == 200, await r.text()
                    got = await r.json()
            return uid, role, got["token"]

        return list(await asyncio.gather(*(user(n) for n in range(self.args.users))))

    async def connect_all(self, users: list[tuple[str, str, str]]) -> None:
        admin_id = (await self.ok(0, "GET", "/auth/me"))["data"]["id"]
        every = self.args.admin_every
        for index in range(self.args.clients):
            if every and index % every == every - 1:
                uid, role, token = admin_id, "administrator", self.admin
            else:
                uid, role, token = users[index % len(users)]
            self.clients.append(Client(index, uid, role, token, index % 2, self))
        semaphore = asyncio.Semaphore(10)

        async def one(client: Client) -> None:
            async with semaphore:
                await client.connect()

        await asyncio.gather(*(one(c) for c in self.clients))
        await self.until(lambda: all(c.ready for c in self.clients), 60, "first connects")

    async def until(self, check: Any, within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not done after {within:.0f} s")
            await asyncio.sleep(0.1)

    # -- writes

    async def writer(self, stop: asyncio.Event) -> None:
        """``--rate`` writes a second, alternately on each node, a few in flight at most."""
        interval = 1 / self.args.rate
        in_flight = asyncio.Semaphore(8)
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        next_at = time.monotonic()
        while not stop.is_set():
            next_at += interval
            await in_flight.acquire()
            task = asyncio.create_task(self.write(n % 2, n, in_flight))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        if tasks:
            await asyncio.gather(*tasks)

    async def write(self, node: int, n: int, in_flight: asyncio.Semaphore) -> None:
        try:
            free = [key for key in self.notes if key not in self.busy]
            roll = self.rng.random()
            if len(free) < 20 or roll < 0.45:
                await self.create(node, n)
            elif roll < 0.9:
                await self.update(node, self.rng.choice(free))
            else:
                await self.delete(node, self.rng.choice(free))
        finally:
            in_flight.release()

    async def create(self, node: int, n: int) -> None:
        owner = self.rng.choice(self.owners) if self.rng.random() < 0.6 else None
        body = {"text": f"note {n}", "owner": owner, "team": self.rng.choice(TEAMS), "v": 0}
        status, got = await self._write(node, "POST", "/items/notes", body)
        if status == 201:
            self.notes[got["data"]["id"]] = 0
            self.writes["create"] += 1

    async def update(self, node: int, key: str) -> None:
        self.busy.add(key)
        v = self.notes[key] + 1
        status, _ = await self._write(
            node, "PATCH", f"/items/notes/{key}", {"v": v, "text": f"v{v}"}
        )
        if status == 200:
            self.notes[key] = v
            self.busy.discard(key)
            self.writes["update"] += 1
        # Otherwise it stays busy: its version is unknown, so it is never written again.

    async def delete(self, node: int, key: str) -> None:
        self.busy.add(key)
        status, _ = await self._write(node, "DELETE", f"/items/notes/{key}", None)
        if status in (200, 204):
            del self.notes[key]
            self.busy.discard(key)
            self.writes["delete"] += 1

    async def _write(self, node: int, method: str, path: str, body: Any) -> tuple[int, Any]:
        try:
            status, got = await self.request(node, method, path, json=body)
        except Exception as exc:
            self.write_errors.append(f"{method} {path} on node {node}: {exc!r}")
            return 0, None
        if status >= 300:
            self.write_errors.append(f"{method} {path} on node {node}: {status} {got!r}")
        return status, got

    # -- chaos

    async def chaos(self, stop: asyncio.Event) -> None:
        args = self.args
        modes = args.modes
        while not stop.is_set():
            pause = self.rng.uniform(0.5, 1.5) * args.drop_every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            if stop.is_set():
                break
            if self.rng.random() < args.mass_drop:
                self.totals.mass_drops += 1
                victims = self.rng.sample(self.clients, len(self.clients) // 4)
            else:
                victims = self.rng.sample(self.clients, self.rng.randint(1, args.drop_batch))
            for client in victims:
                await client.drop(self.rng.choice(modes))

    async def loop_lag(self, stop: asyncio.Event) -> None:
        """How late this process's event loop wakes up: when it is busy, every client
        reads late, and a client that reads ``--ping-timeout`` s late loses its
        connection to the server's heartbeat (the server is right to close it)."""
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.1)
            self.lags.append(time.monotonic() - before - 0.1)

    async def watchdog(self, stop: asyncio.Event) -> None:
        """python-socketio does not reconnect after the server disconnected the socket
        (a Socket.IO DISCONNECT, e.g. an eviction): connect again, as an app would."""
        away: dict[int, float] = {}
        while not stop.is_set():
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for client in self.clients:
                reconnecting = client.sio._reconnect_task is not None or client.reloading
                if client.sio.connected or reconnecting or client.sio.eio.state != "disconnected":
                    away.pop(client.index, None)
                    continue
                since = away.setdefault(client.index, now)
                if now - since > 1.0:
                    away.pop(client.index, None)
                    self.revived += 1
                    client.history.append(f"{stamp()} server ended it: connect again")
                    client.away_cause = "connect again after a server disconnect"
                    with contextlib.suppress(Exception):
                        await client.connect()

    # -- the end

    async def sentinel(self) -> None:
        await self.until(lambda: all(c.ready for c in self.clients), 120, "reconnects")
        await self.ok(1, "POST", "/items/marks", 201, json={"n": 1})
        try:
            await self.until(lambda: all(1 in c.marks for c in self.clients), 60, "sentinel")
        except TimeoutError:
            late = [c.index for c in self.clients if 1 not in c.marks]
            log(f"no sentinel after 60 s on clients {late}")
            for c in self.clients:
                if 1 not in c.marks:
                    self.totals.anomaly("lost", c, "never received the sentinel")
        await asyncio.sleep(0.5)

    async def verify(self) -> dict[str, int]:
        found = collections.Counter[str]()
        semaphore = asyncio.Semaphore(16)

        async def one(client: Client) -> None:
            async with semaphore:
                expected = {
                    i["id"]: i for i in await self.list_notes(client.index % 2, client.token)
                }
            held = client.items
            for key in expected.keys() - held.keys():
                found["missing"] += 1
                self.totals.anomaly(
                    "lost", client, f"item {key[:8]} v{expected[key].get('v')} missing at the end"
                )
            for key in held.keys() - expected.keys():
                found["extra"] += 1
                self.totals.anomaly(
                    "lost",
                    client,
                    f"item {key[:8]} v{held[key].get('v')} held but gone or unreadable",
                )
            for key in expected.keys() & held.keys():
                if view(expected[key]) != view(held[key]):
                    found["stale"] += 1
                    self.totals.anomaly(
                        "lost",
                        client,
                        f"item {key[:8]}: holds {view(held[key])}, REST says {view(expected[key])}",
                    )
            found["items"] += len(expected)

        await asyncio.gather(*(one(c) for c in self.clients))
        return dict(found)

    async def close(self) -> None:
        self.closing = True
        await asyncio.gather(*(c.sio.disconnect() for c in self.clients), return_exceptions=True)
        for proxy in self.proxies:
            await proxy.close()
        if self.http is not None:
            await self.http.close()


# ---------------------------------------------------------------- main


def write_histories(path: Path, clients: list[Client]) -> None:
    lines = []
    for client in clients:
        lines.append(f"client {client.index} ({client.role}, user {client.user_id})\n")
        lines.extend(f"  {line}\n" for line in client.history)
    path.write_text("".join(lines))


def server_log_counts(paths: list[Path]) -> dict[str, collections.Counter[str]]:
    refused = collections.Counter[str]()
    other = collections.Counter[str]()
    problems: list[str] = []
    pattern = re.compile(r"recovery refused for user \S+: (.*)$")
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if m := pattern.search(line):
                refused[m.group(1).strip()] += 1
            elif "taken over by its recovery" in line:
                other["takeovers"] += 1
            elif re.search(r"Traceback|ERROR|Exception| 500 ", line):
                other["error lines"] += 1
                problems.append(f"{path.parent.name}: {line.strip()[:300]}")
    return {"refused": refused, "other": other, "problems": collections.Counter(problems)}


async def chaos_run(args: argparse.Namespace, cluster: fanout.Cluster) -> int:
    await cluster.start()
    ports = [s.port for s in cluster.servers]
    log(cluster.describe())
    run = Run(args, ports)
    try:
        for proxy in run.proxies:
            await proxy.start()
        users = await run.setup()
        run.owners = [uid for uid, _, _ in users]
        log(f"{len(users)} users; connecting {args.clients} clients")
        await run.connect_all(users)
        log(f"{len(run.clients)} clients connected; {args.duration:.0f} s of writes and cuts")
        cpu0 = {s.name: fanout.cpu_seconds(s.pid) for s in cluster.servers}
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        stop_writes, stop_chaos = asyncio.Event(), asyncio.Event()
        writer = asyncio.create_task(run.writer(stop_writes))
        chaos = asyncio.create_task(run.chaos(stop_chaos))
        stop_watchdog = asyncio.Event()
        watchdog = asyncio.create_task(run.watchdog(stop_watchdog))
        lag = asyncio.create_task(run.loop_lag(stop_watchdog))
        while time.monotonic() - t0 < args.duration:
            await asyncio.sleep(min(10, args.duration - (time.monotonic() - t0)))
            up = sum(c.sio.connected for c in run.clients)
            log(
                f"t={time.monotonic() - t0:5.1f}s writes {dict(run.writes)} cuts "
                f"{sum(run.totals.drops.values())} connected {up}/{len(run.clients)} "
                f"recovered {run.totals.recovered} not {run.totals.not_recovered} "
                f"events {run.totals.events} anomalies {sum(run.totals.counts.values())}"
            )
        stop_chaos.set()
        stop_writes.set()
        await chaos
        await writer
        elapsed = time.monotonic() - t0
        cpu1 = {s.name: fanout.cpu_seconds(s.pid) for s in cluster.servers}
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        log("writes stopped; waiting for every client, then the sentinel")
        await run.sentinel()
        stop_watchdog.set()
        await watchdog
        await lag
        found = await run.verify()
        if args.histories:
            write_histories(Path(args.histories), run.clients)
    finally:
        await run.close()
    return report(args, run, cluster, found, elapsed, cpu0, cpu1, self0, self1)


def report(
    args: argparse.Namespace,
    run: Run,
    cluster: fanout.Cluster,
    found: dict[str, int],
    elapsed: float,
    cpu0: dict[str, float],
    cpu1: dict[str, float],
    self0: Any,
    self1: Any,
) -> int:
    t = run.totals
    logs = server_log_counts([s.log_path for s in cluster.servers])
    counts = t.counts
    lost = counts["lost"]
    print()
    print(f"chaos: {args.clients} clients on 2 nodes, {elapsed:.0f} s, seed {args.seed}")
    print(
        f"  writes         {dict(run.writes)} ({sum(run.writes.values()) / elapsed:.1f}/s), "
        f"failed {len(run.write_errors)}"
    )
    print(f"  cuts           {sum(t.drops.values())} {dict(t.drops)}, mass cuts {t.mass_drops}")
    print(f"  reconnects     {t.connects - len(run.clients)} (connects {t.connects})")
    print(
        f"  recovered      {t.recovered} (on the other node {t.recovered_other_node}), "
        f"missed events replayed {t.missed}"
    )
    print(f"  not recovered  {t.not_recovered} {dict(t.not_recovered_after)}")
    print(f"  new sessions   {t.reloads} (reloads: no pid sent, so not recovered on purpose)")
    print(f"    server says  {dict(logs['refused'])}")
    print(f"  takeovers      {logs['other']['takeovers']} (server log)")
    print(f"  failed attempts {dict(t.failed_attempts)} (connect attempts, retried by the client)")
    print(
        f"  connect errors {dict(t.connect_errors)}; disconnected by the server and "
        f"connected again {run.revived}"
    )
    downs = sorted(t.downtimes) or [0.0]
    print(
        f"  time away      p50 {fanout.percentile(downs, 50):.2f} s, "
        f"p99 {fanout.percentile(downs, 99):.2f} s, max {downs[-1]:.2f} s "
        f"(disconnect to `connected`)"
    )
    print(
        f"  not ours       {t.server_drops} disconnects the script did not cause, "
        f"of which silent {counts['silent']} (no ping for > --ping-interval + 1 s)"
    )
    print(f"  refetches      {t.refetches} (including the first one of each client)")
    print(f"  events         {t.events} item events received")
    print(
        f"  final state    {found.get('items', 0)} readable items over all clients; "
        f"missing {found.get('missing', 0)}, extra {found.get('extra', 0)}, "
        f"stale {found.get('stale', 0)}"
    )
    print(f"  lost           {lost} (gaps and final-state differences)")
    print(f"  duplicated     {counts['duplicate']}")
    print(f"  out-of-order   {counts['disorder']}")
    print(f"  unauthorized   {counts['unauthorized']}")
    print(f"  recovery       {counts['recovery']} (sid changed, `connected` late or wrong)")
    for s in cluster.servers:
        print(
            f"  cpu {s.name:<10} {cpu1[s.name] - cpu0[s.name]:6.1f} s "
            f"({(cpu1[s.name] - cpu0[s.name]) / elapsed:.0%} of a core)"
        )
    mine = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    print(f"  cpu this script {mine:6.1f} s ({mine / elapsed:.0%} of a core; clients and proxy)")
    lags = sorted(run.lags) or [0.0]
    print(
        f"  script's loop  late by p50 {fanout.percentile(lags, 50) * 1000:.0f} ms, "
        f"p99 {fanout.percentile(lags, 99) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )
    if run.write_errors:
        print("  write errors (first 5):")
        for line in run.write_errors[:5]:
            print(f"    {line}")
    if logs["problems"]:
        print(f"  server error lines: {sum(logs['problems'].values())} (first 10 distinct):")
        for line, n in list(logs["problems"].items())[:10]:
            print(f"    {n}x {line}")
    shown = collections.Counter[str]()
    for a in [*t.refused, *t.anomalies]:
        shown[a.kind] += 1
        if shown[a.kind] > args.show:
            continue
        print(f"  {a.kind}: client {a.client}: {a.detail}")
        for line in a.history:
            print(f"      {line}")
    bad = (
        lost
        + counts["duplicate"]
        + counts["disorder"]
        + counts["unauthorized"]
        + counts["recovery"]
    )
    print(f"  result         {'FAIL' if bad else 'OK'}")
    return 1 if bad else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60, help="seconds of writes and cuts")
    ap.add_argument("--rate", type=float, default=20, help="REST writes a second, both nodes")
    ap.add_argument("--users", type=int, default=30)
    ap.add_argument("--admin-every", type=int, default=20, help="every Nth client is an admin's")
    ap.add_argument("--drop-every", type=float, default=2.0, help="mean seconds between cuts")
    ap.add_argument("--drop-batch", type=int, default=8, help="at most this many clients a cut")
    ap.add_argument("--mass-drop", type=float, default=0.05, help="chance a cut takes 1/4 of all")
    ap.add_argument("--modes", default=",".join(MODES), help=f"cut kinds, of {','.join(MODES)}")
    ap.add_argument("--switch", type=float, default=0.5, help="chance a reconnect changes node")
    ap.add_argument(
        "--reconnect-delay", type=float, default=0.1, help="first reconnect after s (+-50%%)"
    )
    ap.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        help="s a connect attempt waits for the CONNECT reply (default: python-socketio's, "
        "1 s on reconnects; socket.io-client waits 20 s)",
    )
    ap.add_argument("--ping-interval", type=float, default=5)
    ap.add_argument("--ping-timeout", type=float, default=5)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--show", type=int, default=5, help="cases shown per kind of anomaly")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--livebase", default=str(Path(sys.executable).with_name("livebase")))
    ap.add_argument("--histories", help="write every client's connection history to this file")
    ap.add_argument("--keep", action="store_true", help="keep server logs and the database")
    args = ap.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown or not args.modes:
        ap.error(f"--modes: one or more of {','.join(MODES)}")
    if args.seed is None:
        args.seed = secrets.randbelow(1_000_000)
    return args


# ``livebase serve`` configures uvicorn's loggers only: livebase's own INFO lines
# ("recovery refused for user ...: <reason>", "socket ... taken over by its
# recovery") reach no handler. The servers import this from PYTHONPATH at start.
SITECUSTOMIZE = """\
import logging, sys
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
_logger = logging.getLogger("livebase")
_logger.addHandler(_handler)
_logger.setLevel(logging.INFO)
_logger.propagate = False
"""


def interrupted(*_: Any) -> None:
    raise KeyboardInterrupt


def quiet_clients() -> None:
    for name in ("socketio", "socketio.client", "engineio", "engineio.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def two_nodes(args: argparse.Namespace) -> Iterator[fanout.Cluster]:
    """Two servers, not yet started, sharing a throwaway database and a Redis key of
    their own (bench/fanout.py's Cluster); stopped by PID and cleaned up afterwards."""
    cluster_args = argparse.Namespace(
        processes=2, shared=True, redis_url=args.redis_url, database_url=None,
        livebase=args.livebase, keep=args.keep, server=None,
    )  # fmt: skip
    cluster = fanout.Cluster(cluster_args)
    cluster.redis_key = f"livebase-chaos-{secrets.token_hex(6)}"  # SOCKET_REDIS_KEY
    logging_dir = Path(tempfile.mkdtemp(prefix="livebase-chaos-"))
    (logging_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    try:
        cluster.setup()
        for server in cluster.servers:
            server.env.update(
                LOG_LEVEL="info",  # "recovery refused ...: <reason>" and takeovers are info lines
                SOCKET_PING_INTERVAL=str(args.ping_interval),
                SOCKET_PING_TIMEOUT=str(args.ping_timeout),
                DEMO_ENABLED="false",
                PYTHONPATH=str(logging_dir),
            )
        yield cluster
    except Exception:
        for server in cluster.servers:
            log(f"{server.name} log tail:\n{server.tail(2000)}")
        raise
    finally:
        if args.keep:
            log("server logs: " + ", ".join(str(s.log_path) for s in cluster.servers))
        cluster.stop()
        shutil.rmtree(logging_dir, ignore_errors=True)


def main() -> int:
    args = parse_args()
    fanout.raise_fd_limit()
    quiet_clients()
    signal.signal(signal.SIGTERM, interrupted)
    try:
        with two_nodes(args) as cluster:
            return asyncio.run(chaos_run(args, cluster))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 2
    except Exception as exc:
        log(f"the run failed: {exc!r}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
