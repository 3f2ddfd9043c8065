#!/usr/bin/env python3
"""Realtime fan-out benchmark for livebase: REST writes -> ``item.created`` on N sockets.

    .venv/bin/python bench/fanout.py                      # N=1000 subscribers, M=200 writes, C=4
    .venv/bin/python bench/fanout.py -n 100 -m 50 --json  # smaller, one JSON line
    .venv/bin/python bench/fanout.py --processes 2        # a cluster: PostgreSQL + Redis

What it does, all on 127.0.0.1:

1. starts ``livebase serve`` on a free port with a throwaway SQLite database and
   data directory (removed afterwards unless ``--keep``);
2. logs in as the administrator, creates the collection ``posts`` (``title``,
   ``sentAt``), lets role ``user`` read it, registers ``--users`` users;
3. connects N subscribers, spread round-robin over those users, with a
   minimal client speaking Engine.IO v4 / Socket.IO v5 by hand over
   ``websockets`` (open ``0{...}``, ``40{"token": ...}``, ping ``2`` -> ``3``,
   events ``42[...]``): far cheaper per frame than ``python-socketio``'s client;
4. sends a few warm-up writes, waits until the server is quiet, then makes M
   ``POST /items/posts`` with C in flight, each stamped with the client clock
   (``sentAt``, epoch ms) just before it is sent;
5. waits until every subscriber has every item (or nothing arrives for
   ``--drain-timeout`` s), and prints the figures;
6. stops the server by its PID, whatever happened.

Figures: delivered messages/s over the delivery phase (first measured write
to the last expected frame); server CPU (utime+stime of the server PID from
/proc/<pid>/stat) per delivered message; latency p50/p99 from just before the
REST call to the frame's receipt (includes this client's own queueing); lost
and duplicated deliveries per (socket, item); server RSS per connected socket
(VmRSS before/after connecting, from /proc/<pid>/status); this client's own
CPU, which should stay well below 100 % for the server to be the bottleneck.

Cluster mode (``--processes P``, P > 1, or ``--shared`` for one process on the
same setup): P ``livebase serve`` processes,
started one after the other (each waited for on ``GET /health``), share a
PostgreSQL database (``--database-url``; by default a throwaway database with a
random name on postgresql://postgres@127.0.0.1:5432, trust authentication,
dropped afterwards WITH (FORCE)) and Redis (``--redis-url``, default
redis://127.0.0.1:6379/0) with one SECRET_KEY and a SOCKET_REDIS_KEY of their
own, so that runs never share channels or keys; the run's keys (``key:*``) are
deleted afterwards. Subscribers are spread round-robin over the processes,
every write goes to the first one. Server CPU and RSS are summed over the
processes; ``delivered_per_server`` counts deliveries on each process's
sockets; Redis's own CPU (its PID from ``INFO server``, then /proc) over the
delivery phase is reported as ``redis_cpu_s`` and ``redis_cpu_us_per_msg``.
Redis must run on this machine for its CPU to be read (else: null).

Needs Linux (/proc) and the project's virtualenv (``websockets`` is a runtime
dependency; ``orjson`` is used when present; cluster mode uses the runtime
dependencies ``redis`` and ``asyncpg``). No other package, nothing outside this repository.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

try:
    from websockets.asyncio.client import connect as ws_connect
except ImportError:  # pragma: no cover
    sys.exit("bench/fanout.py needs the project's virtualenv: .venv/bin/python bench/fanout.py")

try:
    import orjson

    loads: Any = orjson.loads
except ImportError:  # pragma: no cover
    loads = json.loads

HOST = "127.0.0.1"
SOCKET_PATH = "/realtime"
COLLECTION = "posts"
EVENT_PREFIX = '42["item.created",'
ADMIN_EMAIL = "admin@bench.local"
ADMIN_PASSWORD = "Bench-Passw0rd-admin"
USER_PASSWORD = "Bench-Passw0rd-user"
SCHEMA = {
    "collectionName": COLLECTION,
    "schema": {
        "name": COLLECTION,
        "timestamps": True,
        "fields": {
            "title": {"type": "String", "values": {"length": 255}},
            "sentAt": {"type": "Double"},
        },
    },
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"  # trust auth: throwaway databases
# --server STACK: the same app under another server (bench/stacks.py), same environment.
STACKS_COMMAND = [sys.executable, str(Path(__file__).resolve().with_name("stacks.py"))]
STACKS = (
    "uvicorn-sansio", "uvicorn-sansio-queue", "uvicorn-websockets", "uvicorn-wsproto",
    "granian", "aiohttp",
)  # fmt: skip


def log(*parts: object) -> None:
    print("[fanout]", *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc accounting


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="latin-1") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="latin-1") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def quiesce(pids: list[int], servers: int, min_s: float = 1.0, max_s: float = 60.0) -> float:
    """Wait (at least min_s, at most max_s) until the servers use < 10 % of a core each."""
    t0 = time.monotonic()
    await asyncio.sleep(min_s)
    prev, prev_t = sum(map(cpu_seconds, pids)), time.monotonic()
    while time.monotonic() - t0 < max_s:
        await asyncio.sleep(0.5)
        cur, now = sum(map(cpu_seconds, pids)), time.monotonic()
        if (cur - prev) / (now - prev_t) < 0.1 * servers:
            break
        prev, prev_t = cur, now
    return time.monotonic() - t0


def raise_fd_limit() -> int:
    """One descriptor per socket, here and in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def descendants(pid: int) -> list[int]:
    """The PIDs of a process's children, grandchildren... (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="latin-1") as f:
                children = [int(child) for child in f.read().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    rank = int(-(-len(ordered) * p // 100))  # ceil(len * p / 100), the nearest-rank method
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


# ---------------------------------------------------------------- a tiny HTTP/1.1 client


class Http:
    """One keep-alive HTTP/1.1 connection to the server (stdlib only, JSON bodies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        )
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        data = head.encode() + b"\r\n" + payload
        for attempt in (1, 2):
            reused = self.writer is not None
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            assert self.reader is not None
            try:
                self.writer.write(data)
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("connection closed")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: retry once
                raise
            return await self._response(status_line)
        raise AssertionError("unreachable")

    async def _response(self, status_line: bytes) -> tuple[int, Any]:
        assert self.reader is not None
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            raw = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            raw = b"".join(chunks)
        else:
            raw = await self.reader.read()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        try:
            return status, loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ---------------------------------------------------------------- the server


class Server:
    def __init__(
        self, exe: str, keep: bool, env: dict[str, str], name: str = "server",
        stack: str | None = None,
    ) -> None:  # fmt: skip
        self.exe, self.keep, self.name = exe, keep, name
        self.stack = stack  # None: `livebase serve`; else a bench/stacks.py stack
        self.children: list[int] = []  # its worker processes (granian), found once healthy
        self.env = env  # overrides: SECRET_KEY, and the cluster's database and Redis
        self.tmp = Path(tempfile.mkdtemp(prefix="livebase-fanout-"))
        self.port = self._free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.terminated = False
        self.log_path = self.tmp / "server.log"

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as s:
            s.bind((HOST, 0))
            return int(s.getsockname()[1])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """The server and its worker processes: CPU and RSS are summed over them."""
        return [self.pid, *self.children]

    def start(self) -> None:
        extensions = self.tmp / "extensions"
        extensions.mkdir()
        env = dict(
            os.environ,
            HOST=HOST,
            PORT=str(self.port),
            ENV="development",
            DATABASE_URL=f"sqlite:///{self.tmp / 'livebase.db'}",  # unless overridden
            DATA_DIR=str(self.tmp / "data"),
            STORAGE_PATH=str(self.tmp / "uploads"),
            EXTENSIONS_PATH=str(extensions),
            ADMIN_EMAIL=ADMIN_EMAIL,
            ADMIN_PASSWORD=ADMIN_PASSWORD,
            RATE_LIMIT_AUTH="1000000",
            LOG_LEVEL="warning",
            SOCKET_PATH=SOCKET_PATH,
            CACHE_REDIS_URL="",  # one process, no Redis, whatever the caller's shell says
            SOCKET_REDIS_URL="",
        )
        env.update(self.env)
        with open(self.log_path, "wb") as logf:  # cwd = temp dir: no stray .env is read
            self.proc = subprocess.Popen(
                [self.exe, "serve"] if self.stack is None else [*STACKS_COMMAND, self.stack],
                cwd=self.tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_healthy(self, limit_s: float = 60.0) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            http = Http(self.port)
            try:
                status, _ = await http.request("GET", "/health")
                if status == 200:
                    self.children = descendants(self.pid)
                    return
            except OSError:
                pass
            finally:
                http.close()
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not healthy after {limit_s:.0f} s:\n{self.tail()}")

    def tail(self, size: int = 3000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace")

    def terminate(self) -> None:
        """SIGTERM by PID, once (a second one would cut uvicorn's graceful shutdown short)."""
        if self.proc is not None and self.proc.poll() is None and not self.terminated:
            self.terminated = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after 15 s; then remove the temp dir (unless keep)."""
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                for child in self.children:  # workers the killed parent could not stop
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
        if self.keep:
            kept = "server.log" if "DATABASE_URL" in self.env else "server.log, livebase.db"
            log(f"kept {self.tmp} ({kept})")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Cluster:
    """The servers under test: one on SQLite, or P sharing PostgreSQL and Redis."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.size: int = args.processes
        self.shared: bool = args.processes > 1 or args.shared  # PostgreSQL and Redis
        self.redis_url: str = args.redis_url
        self.redis_key = f"livebase-fanout-{secrets.token_hex(6)}"  # SOCKET_REDIS_KEY
        self.redis_pid: int | None = None
        self.database_url: str | None = args.database_url
        self.created_database: str | None = None  # ours to drop
        self.servers: list[Server] = []

    def setup(self) -> None:
        """Check Redis and create the throwaway database (P > 1); the servers, not started."""
        env = {"SECRET_KEY": secrets.token_urlsafe(36)}  # 48 characters, shared by all
        if self.shared:
            self.redis_pid = redis_pid(self.redis_url)
            if self.database_url is None:
                name = f"livebase_fanout_{secrets.token_hex(6)}"
                try:
                    postgres_execute(f'CREATE DATABASE "{name}"')
                except Exception as exc:
                    raise RuntimeError(
                        f"cannot create a database on {POSTGRES_URL}: {exc}"
                    ) from None
                self.created_database, self.database_url = name, f"{POSTGRES_URL}/{name}"
            env.update(
                DATABASE_URL=self.database_url,
                CACHE_REDIS_URL=self.redis_url,
                SOCKET_REDIS_KEY=self.redis_key,
            )
        names = ["server"] if self.size == 1 else [f"server {i + 1}" for i in range(self.size)]
        self.servers = [
            Server(self.args.livebase, self.args.keep, env, name, self.args.server)
            for name in names
        ]

    async def start(self) -> None:
        """One after the other: the first creates the tables and the administrator."""
        for server in self.servers:
            server.start()
            await server.wait_healthy()

    @property
    def pids(self) -> list[int]:
        return [pid for server in self.servers for pid in server.pids]

    def server_cpu(self) -> float:
        return sum(map(cpu_seconds, self.pids))

    def redis_cpu(self) -> float | None:
        if self.redis_pid is None:
            return None
        try:
            return cpu_seconds(self.redis_pid)
        except OSError:
            return None

    def describe(self) -> str:
        if self.size == 1:
            return f"server pid {self.servers[0].pid} on port {self.servers[0].port}"
        listed = ", ".join(f"{s.pid} on port {s.port}" for s in self.servers)
        return f"{self.size} servers (pids {listed}), Redis key {self.redis_key}"

    def stop(self) -> None:
        """Every server by PID, then the throwaway database and the run's Redis keys."""
        for server in self.servers:
            server.terminate()  # all at once: their graceful shutdowns overlap
        for server in self.servers:
            try:
                server.stop()
            except Exception as exc:  # the next servers must still be stopped
                log(f"stopping {server.name} (pid {server.proc and server.proc.pid}): {exc}")
        if self.created_database is not None:
            if self.args.keep:
                log(f"kept the database {self.database_url}")
            else:
                try:
                    postgres_execute(
                        f'DROP DATABASE IF EXISTS "{self.created_database}" WITH (FORCE)'
                    )
                except Exception as exc:
                    log(f"could not drop the database {self.created_database}: {exc}")
        if self.shared and self.servers:  # servers were prepared: Redis was up
            try:
                deleted = redis_delete_keys(self.redis_url, f"{self.redis_key}:*")
                log(f"deleted {deleted} Redis keys {self.redis_key}:*")
            except Exception as exc:
                log(f"could not delete the Redis keys {self.redis_key}:*: {exc}")


def redis_pid(url: str) -> int | None:
    """Redis's PID from INFO server (raises if Redis is unreachable); None if not ours to read."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        pid = int(client.info("server")["process_id"])
    except redis.RedisError as exc:
        raise RuntimeError(f"--processes > 1 needs Redis at {url}: {exc}") from None
    finally:
        client.close()
    try:
        with open(f"/proc/{pid}/comm", encoding="latin-1") as f:
            comm = f.read().strip()
    except OSError:
        comm = ""
    if "redis" not in comm and "valkey" not in comm:  # another host, a container...
        log(f"Redis PID {pid} is not a local Redis process ({comm!r}): no Redis CPU figures")
        return None
    return pid


def redis_delete_keys(url: str, pattern: str) -> int:
    """SCAN MATCH pattern + DEL; the number of keys deleted."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        return len(keys)
    finally:
        client.close()


def postgres_execute(sql: str) -> None:
    """One statement on the maintenance database of POSTGRES_URL (asyncpg, its own loop)."""
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(f"{POSTGRES_URL}/postgres", timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


# ---------------------------------------------------------------- subscribers


class Stats:
    """Delivery bookkeeping shared by every subscriber."""

    def __init__(self, total_writes: int) -> None:
        self.total_writes = total_writes  # warm-up + measured: sequence numbers 0..total-1
        self.measured_from = total_writes  # first measured sequence number (set later)
        self.unique = 0  # first arrivals of (socket, item) in the current phase
        self.frames = 0  # every item.created frame of the current phase, duplicates included
        self.target = -1
        self.done: asyncio.Event = asyncio.Event()
        self.on_done: Any = None
        self.latencies: list[float] = []
        self.pings = 0
        self.bad_frames = 0
        self.disconnects = 0
        self.last_progress = time.monotonic()

    def start_phase(self, first_seq: int, target: int, on_done: Any) -> None:
        self.measured_from, self.target, self.on_done = first_seq, target, on_done
        self.unique = self.frames = 0
        self.latencies = []
        self.done = asyncio.Event()
        self.last_progress = time.monotonic()
        if target <= 0:
            self._finish()

    def _finish(self) -> None:
        if not self.done.is_set():
            if self.on_done is not None:
                self.on_done()
            self.done.set()


class Subscriber:
    __slots__ = ("closing", "counts", "error", "index", "server", "task", "token", "up", "ws")
    event_prefix = EVENT_PREFIX  # the frames counted (bench/live_queries.py counts others)

    def __init__(self, index: int, token: str, total_writes: int, server: int = 0) -> None:
        self.index, self.token = index, token
        self.server = server  # index of the process it connects to
        self.counts = bytearray(total_writes)  # frames received per item (saturates at 255)
        self.up = False
        self.error: str | None = None
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None
        self.closing = False

    async def run(self, url: str, stats: Stats, connected: asyncio.Future[None]) -> None:
        try:
            self.ws = await ws_connect(
                url,
                compression=None,
                proxy=None,  # loopback only, never an environment proxy
                ping_interval=None,  # Engine.IO has its own heartbeat
                open_timeout=60,
                max_queue=None,
                user_agent_header=None,
            )
            opening = await self.ws.recv()
            if not opening.startswith("0"):
                raise RuntimeError(f"expected an Engine.IO open packet, got {opening[:80]!r}")
            await self.ws.send("40" + json.dumps({"token": self.token}))
            async for message in self.ws:
                if message.startswith(self.event_prefix):
                    self._event(message, stats)
                elif message == "2":
                    stats.pings += 1
                    await self.ws.send("3")
                elif message.startswith("40"):
                    self.up = True
                    if not connected.done():
                        connected.set_result(None)
                elif message.startswith("44"):
                    raise RuntimeError(f"connect_error {message[2:120]}")
                elif message.startswith("43"):
                    self.acked(message)
                # anything else ("connected" event, presence...) is ignored
        except Exception as exc:  # report, never raise into the gather
            self.error = self.error or f"{type(exc).__name__}: {exc}"[:160]
        finally:
            if self.up and not self.closing:
                stats.disconnects += 1
            if not connected.done():
                connected.set_result(None)

    def acked(self, message: str) -> None:
        """An ack (``43<id>[...]``): none is asked for here (see bench/live_queries.py)."""

    def _event(self, message: str, stats: Stats) -> None:
        received_ms = time.time() * 1000.0
        try:
            item = loads(message[2:])[1]["item"]
            seq = int(item["title"].rsplit(" ", 1)[1])
            sent_ms = float(item["sentAt"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            stats.bad_frames += 1
            return
        if not 0 <= seq < len(self.counts):
            stats.bad_frames += 1
            return
        count = self.counts[seq]
        if count < 255:
            self.counts[seq] = count + 1
        if seq < stats.measured_from:
            return  # a late frame of an earlier phase
        stats.frames += 1
        stats.last_progress = time.monotonic()
        if count == 0:
            stats.latencies.append(received_ms - sent_ms)
            stats.unique += 1
            if stats.unique == stats.target:
                stats._finish()


# ---------------------------------------------------------------- the benchmark


async def prepare(
    port: int, users: int, schema: dict[str, Any] = SCHEMA, conditions: Any = None
) -> tuple[str, list[str]]:
    """Admin login, collection, read permission for `user` (under ``conditions``, if
    given), K registered users."""
    http = Http(port)
    status, body = await http.request(
        "POST", "/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    if status != 200:
        raise RuntimeError(f"admin login failed: {status} {body}")
    admin = body["token"]
    status, body = await http.request("POST", "/schemas", schema, admin)
    if status not in (201, 409):
        raise RuntimeError(f"POST /schemas failed: {status} {body}")
    permission = {"role": "user", "collection": COLLECTION, "action": "read", "fields": ["*"]}
    if conditions is not None:
        permission["conditions"] = conditions
    status, body = await http.request("POST", "/permissions", permission, admin)
    if status not in (201, 409):
        raise RuntimeError(f"POST /permissions failed: {status} {body}")
    http.close()

    tokens: list[str] = [""] * users
    next_user = 0

    async def register_some() -> None:  # 4 in flight: password hashing is the slow part
        nonlocal next_user
        client = Http(port)
        try:
            while next_user < users:
                i = next_user
                next_user += 1
                creds = {"email": f"user{i + 1}@bench.local", "password": USER_PASSWORD}
                status, body = await client.request("POST", "/auth/register", creds)
                if status == 409:
                    status, body = await client.request("POST", "/auth/login", creds)
                if status not in (200, 201):
                    raise RuntimeError(f"register user{i + 1} failed: {status} {body}")
                tokens[i] = body["token"]
        finally:
            client.close()

    await asyncio.gather(*(register_some() for _ in range(min(4, users))))
    return admin, tokens


async def write_phase(
    port: int, token: str, first_seq: int, count: int, concurrency: int, stats: Stats,
    target: int, cluster: Cluster, drain_timeout: float,
    fields: Callable[[int], dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`count` POSTs with `concurrency` in flight; returns once every frame arrived (or
    stalled). ``fields(seq)``: more fields for write number ``seq``."""
    snap: dict[str, Any] = {}

    def take(name: str) -> None:
        snap[name] = (
            time.monotonic(), cluster.server_cpu(), time.process_time(), cluster.redis_cpu(),
        )  # fmt: skip

    stats.start_phase(first_seq, target, lambda: take("end"))
    take("begin")
    seq = first_seq
    write_ms: list[float] = []
    errors: list[str] = []
    writes_end = time.monotonic()

    async def writer() -> None:
        nonlocal seq, writes_end
        http = Http(port)
        try:
            while seq < first_seq + count:
                mine = seq
                seq += 1
                t = time.monotonic()
                body = {} if fields is None else fields(mine)
                body.update(title=f"bench {mine}", sentAt=time.time() * 1000.0)
                status, answer = await http.request("POST", f"/items/{COLLECTION}", body, token)
                write_ms.append((time.monotonic() - t) * 1000.0)
                if status != 201:
                    errors.append(f"{status} {str(answer)[:200]}")
            writes_end = time.monotonic()
        finally:
            http.close()

    await asyncio.gather(*(writer() for _ in range(min(concurrency, count))))
    stats.last_progress = max(stats.last_progress, time.monotonic())
    while not stats.done.is_set():
        if time.monotonic() - stats.last_progress > drain_timeout:
            log(f"gave up: no frame for {drain_timeout:.0f} s ({stats.unique}/{target} arrived)")
            take("end")
            snap["end"] = (stats.last_progress, *snap["end"][1:])
            stats.done.set()
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stats.done.wait(), 0.1)
    write_ms.sort()
    return {
        "snap": snap, "write_ms": write_ms, "errors": errors, "writes_end": writes_end,
    }  # fmt: skip


async def connect(
    subs: list[Subscriber], urls: list[str], stats: Stats, concurrency: int
) -> tuple[float, dict[str, int]]:
    """Connect every subscriber to ``urls[sub.server]``, ``concurrency`` handshakes in
    flight: how long it took, and the errors of those not connected (by message)."""
    t0 = time.monotonic()
    gate = asyncio.Semaphore(concurrency)

    async def connect_one(sub: Subscriber) -> None:
        async with gate:
            connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            sub.task = asyncio.create_task(sub.run(urls[sub.server], stats, connected))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connected, 60)
            if not sub.up and sub.error is None:
                sub.error = "timeout waiting for 40"

    await asyncio.gather(*(connect_one(s) for s in subs))
    errors: dict[str, int] = {}
    for s in subs:
        if not s.up:
            errors[s.error or "?"] = errors.get(s.error or "?", 0) + 1
    return time.monotonic() - t0, errors


async def benchmark(args: argparse.Namespace, cluster: Cluster) -> dict[str, Any]:
    n, m, c = args.subscribers, args.writes, args.concurrency
    warmup = 2 * c if args.warmup is None else args.warmup
    if m == 0:
        warmup = 0
    await cluster.start()
    pids, port = cluster.pids, cluster.servers[0].port  # every write goes to the first process
    t_prep = time.monotonic()
    admin, user_tokens = await prepare(port, args.users)
    log(f"{cluster.describe()}; prepared {args.users} users "
        f"in {time.monotonic() - t_prep:.1f} s")  # fmt: skip
    tokens = user_tokens or [admin]

    # ---- connect, round-robin over the processes
    stats = Stats(warmup + m)
    urls = [
        f"ws://{HOST}:{s.port}{SOCKET_PATH}/?EIO=4&transport=websocket" for s in cluster.servers
    ]
    subs = [Subscriber(i, tokens[i % len(tokens)], warmup + m, i % cluster.size) for i in range(n)]
    rss_before = sum(map(rss_kib, pids))
    connect_s, errors = await connect(subs, urls, stats, args.connect_concurrency)
    up = [s for s in subs if s.up]
    log(f"connected {len(up)}/{n} in {connect_s:.2f} s" + (f" errors: {errors}" if errors else ""))
    settle_s = await quiesce(pids, cluster.size)
    rss_after = sum(map(rss_kib, pids))

    report: dict[str, Any] = {
        "subscribers": n, "connected": len(up), "connect_errors": errors, "users": args.users,
        "connect_s": round(connect_s, 3), "settle_s": round(settle_s, 3),
        "writes": m, "concurrency": c, "warmup_writes": warmup,
    }  # fmt: skip
    if cluster.shared:
        report["processes"] = cluster.size
        report["connected_per_server"] = [
            sum(s.server == i for s in up) for i in range(cluster.size)
        ]

    if args.hold > 0:  # idle: what holding the sockets costs (Engine.IO pings)
        cpu0, pings0, t_hold = cluster.server_cpu(), stats.pings, time.monotonic()
        await asyncio.sleep(args.hold)
        held = time.monotonic() - t_hold
        report.update({
            "hold_s": round(held, 3), "hold_pings": stats.pings - pings0,
            "hold_cpu_pct": round(100 * (cluster.server_cpu() - cpu0) / held, 2),
        })  # fmt: skip

    # ---- warm-up, then the measured phase
    if warmup:
        w = await write_phase(
            port, admin, 0, warmup, c, stats, len(up) * warmup, cluster, args.drain_timeout
        )
        report["warmup_complete"] = stats.unique == len(up) * warmup and not w["errors"]
        await quiesce(pids, cluster.size, 0.3)
    if m:
        r = await write_phase(
            port, admin, warmup, m, c, stats, len(up) * m, cluster, args.drain_timeout
        )
        await asyncio.sleep(0.3)  # late duplicates would show up here
        report.update(phase_figures(r, stats, up, n - len(up), m, warmup))
        if cluster.shared:
            report.update(cluster_figures(r, up, warmup, cluster.size))
    else:
        report["complete"] = len(up) == n
    report.update({
        "rss_kib_before": rss_before, "rss_kib_after": rss_after,
        "rss_kib_end": sum(map(rss_kib, pids)),
        "kib_per_conn": _r((rss_after - rss_before) / len(up) if up else None),
        "pings": stats.pings, "disconnects": stats.disconnects,
    })  # fmt: skip
    for s in subs:
        s.closing = True
    await asyncio.gather(*(_close(s) for s in subs))
    return report


def phase_figures(
    r: dict[str, Any], stats: Stats, up: list[Subscriber], missing: int, m: int, warmup: int,
    expects: Callable[[Subscriber], Iterable[int]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The figures of the measured phase (``missing``: subscribers that never connected,
    each of which lost all ``m`` writes). ``expects(sub)``: the write numbers ``sub``
    is to receive (default: every measured one); frames of others are ``unexpected``."""
    (t_begin, cpu_begin, me_begin, _), (t_end, cpu_end, me_end, _) = (
        r["snap"]["begin"], r["snap"]["end"],
    )  # fmt: skip
    wall = max(t_end - t_begin, 1e-9)
    expected = lost = missing * m
    duplicates = unexpected = 0
    for s in up:
        counts = s.counts[warmup : warmup + m]
        received = len(counts) - counts.count(0)  # writes received at least once
        duplicates += sum(counts) - received
        wanted = range(warmup, warmup + m) if expects is None else expects(s)
        got = total = 0
        for seq in wanted:
            total += 1
            got += s.counts[seq] > 0
        expected += total
        lost += total - got
        unexpected += received - got
    lat = sorted(stats.latencies)
    cpu = cpu_end - cpu_begin
    delivered = stats.unique
    return {
        "expected": expected, "delivered": delivered, "frames": stats.frames,
        "lost": lost, "duplicates": duplicates, "unexpected": unexpected,
        "bad_frames": stats.bad_frames,
        "complete": lost == 0 and duplicates == 0 and unexpected == 0 and not r["errors"],
        "write_errors": len(r["errors"]), "last_write_error": (r["errors"] or [None])[-1],
        "wall_s": round(wall, 3), "msgs_per_s": round(delivered / wall, 1),
        "writes_per_s": round(m / max(r["writes_end"] - t_begin, 1e-9), 2),
        "write_p50_ms": _r(percentile(r["write_ms"], 50)),
        "write_p99_ms": _r(percentile(r["write_ms"], 99)),
        "latency_p50_ms": _r(percentile(lat, 50)),
        "latency_p99_ms": _r(percentile(lat, 99)),
        "latency_max_ms": _r(lat[-1] if lat else None),
        "latency_mean_ms": _r(statistics.fmean(lat) if lat else None),
        "server_cpu_s": round(cpu, 3), "server_cpu_pct": round(100 * cpu / wall, 1),
        "cpu_us_per_msg": _r(cpu * 1e6 / delivered if delivered else None),
        "cpu_us_per_write": _r(cpu * 1e6 / m),
        "client_cpu_s": round(me_end - me_begin, 3),
        "client_cpu_pct": round(100 * (me_end - me_begin) / wall, 1),
    }  # fmt: skip


def cluster_figures(
    r: dict[str, Any], up: list[Subscriber], warmup: int, processes: int
) -> dict[str, Any]:
    """Deliveries per process (on its own sockets) and what Redis spent relaying them."""
    delivered = [0] * processes
    for s in up:
        delivered[s.server] += sum(1 for count in s.counts[warmup:] if count)
    (t_begin, *_, redis_begin), (t_end, *_, redis_end) = r["snap"]["begin"], r["snap"]["end"]
    figures: dict[str, Any] = {"delivered_per_server": delivered}
    if redis_begin is None or redis_end is None:  # Redis's CPU is not ours to read
        return figures | {"redis_cpu_s": None, "redis_cpu_pct": None, "redis_cpu_us_per_msg": None}
    cpu, wall, total = redis_end - redis_begin, max(t_end - t_begin, 1e-9), sum(delivered)
    return figures | {
        "redis_cpu_s": round(cpu, 3), "redis_cpu_pct": round(100 * cpu / wall, 1),
        "redis_cpu_us_per_msg": _r(cpu * 1e6 / total if total else None),
    }  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def _close(sub: Subscriber) -> None:
    if sub.ws is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sub.ws.close(), 2)
    if sub.task is not None:
        sub.task.cancel()
        with contextlib.suppress(BaseException):
            await sub.task


def print_human(r: dict[str, Any]) -> None:
    lines = [
        f"livebase fan-out: {r['connected']}/{r['subscribers']} subscribers over "
        f"{r['users'] or 'the administrator'} user(s), {r['writes']} writes, "
        f"concurrency {r['concurrency']}",
        f"  connect           {r['connect_s']:.2f} s (then {r['settle_s']:.1f} s to settle)",
    ]
    if r["writes"]:
        lines += [
            f"  delivered         {r['delivered']}/{r['expected']} "
            f"(lost {r['lost']}, duplicates {r['duplicates']}) in {r['wall_s']:.2f} s",
            f"  messages/s        {r['msgs_per_s']:.0f}",
            f"  server CPU        {r['server_cpu_s']:.2f} s ({r['server_cpu_pct']:.0f} % of a core)"
            f" = {r['cpu_us_per_msg']} us per delivered message",
            f"  latency p50/p99   {r['latency_p50_ms']} / {r['latency_p99_ms']} ms "
            f"(REST call -> receipt; max {r['latency_max_ms']} ms)",
            f"  writes            {r['writes_per_s']}/s, p50 {r['write_p50_ms']} ms, "
            f"p99 {r['write_p99_ms']} ms, errors {r['write_errors']}",
            f"  this client CPU   {r['client_cpu_pct']:.0f} % of a core",
        ]
    if "processes" in r:
        lines.append(
            f"  processes         {r['processes']} (writes to the first): connected "
            + " / ".join(map(str, r["connected_per_server"]))
            + (
                ", delivered " + " / ".join(map(str, r["delivered_per_server"]))
                if r["writes"]
                else ""
            )
        )
        if r["writes"]:
            lines.append(
                f"  Redis CPU         {r['redis_cpu_s']} s ({r['redis_cpu_pct']} % of a core) = "
                f"{r['redis_cpu_us_per_msg']} us per delivered message"
            )
    if "hold_s" in r:
        lines.append(
            f"  idle hold         {r['hold_s']:.0f} s: server CPU {r['hold_cpu_pct']} % of a core, "
            f"{r['hold_pings']} pings answered"
        )
    lines += [
        f"  server RSS        {r['rss_kib_before']} -> {r['rss_kib_after']} KiB = "
        f"{r['kib_per_conn']} KiB per socket"
        + (f" (summed over {r['processes']} processes)" if "processes" in r else ""),
        f"  complete          {r['complete']}",
    ]
    if "server_stack" in r:
        lines.insert(1, f"  server stack      {r['server_stack']} (bench/stacks.py)")
    print("\n".join(lines), flush=True)


def default_executable() -> str:
    beside_python = Path(sys.executable).with_name("livebase")
    in_checkout = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "livebase"
    for candidate in (beside_python, in_checkout):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("livebase") or str(in_checkout)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", "--subscribers", type=int, default=1000, help="sockets (default 1000)")
    ap.add_argument("-m", "--writes", type=int, default=200, help="item creations (default 200)")
    ap.add_argument("-c", "--concurrency", type=int, default=4, help="writes in flight (4)")
    ap.add_argument(
        "-u", "--users", type=int, default=100,
        help="spread subscribers over K users of role `user` (default 100; 0 = all subscribers "
        "use the administrator's token)",
    )  # fmt: skip
    ap.add_argument("--warmup", type=int, help="writes before the measured phase (2 x C)")
    ap.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight")
    ap.add_argument("--drain-timeout", type=float, default=30, help="give up after this many s")
    ap.add_argument("--livebase", default=default_executable(), help="the livebase executable")
    ap.add_argument(
        "-p", "--processes", type=int, default=1,
        help="livebase processes (default 1; more share PostgreSQL and Redis)",
    )  # fmt: skip
    ap.add_argument(
        "--shared", action="store_true",
        help="PostgreSQL and Redis even for one process (the first point of a scaling series)",
    )  # fmt: skip
    ap.add_argument(
        "--redis-url", default=REDIS_URL, help=f"Redis for --processes > 1 (default {REDIS_URL})"
    )
    ap.add_argument(
        "--database-url",
        help="PostgreSQL for --processes > 1 (default: a throwaway database on "
        f"{POSTGRES_URL}, dropped afterwards)",
    )
    ap.add_argument(
        "--hold", type=float, default=0,
        help="after connecting, hold the idle sockets this many s and report the server's CPU",
    )  # fmt: skip
    ap.add_argument(
        "--server", choices=STACKS,
        help="serve with bench/stacks.py STACK instead of `livebase serve` (same app and "
        "environment; granian and aiohttp need the `bench` extra)",
    )  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server log, database)")
    args = ap.parse_args()
    if min(args.subscribers, args.concurrency) < 1 or min(args.writes, args.users) < 0:
        ap.error("need --subscribers >= 1, --concurrency >= 1, --writes >= 0, --users >= 0")
    if args.processes < 1:
        ap.error("need --processes >= 1")
    if args.database_url and not args.database_url.startswith("postgresql://"):
        ap.error("--database-url: postgresql://user@host:port/database")
    if not os.access(args.livebase, os.X_OK):
        ap.error(f"no livebase executable at {args.livebase} (run `make run` once, or --livebase)")
    return args


def main() -> int:
    args = parse_args()
    fd_limit = raise_fd_limit()
    if fd_limit < args.subscribers + 200:
        log(f"warning: open-file limit {fd_limit} is low for {args.subscribers} sockets")

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    cluster = Cluster(args)
    report: dict[str, Any] | None = None
    try:
        cluster.setup()
        report = asyncio.run(benchmark(args, cluster))
    except KeyboardInterrupt:
        log("interrupted")
    except Exception as exc:
        log(f"failed: {exc}")
        for server in cluster.servers:
            tail = server.tail()
            if tail and tail not in str(exc):
                log(f"--- end of the {server.name} log:\n{tail}")
    finally:
        cluster.stop()
    if report is None:
        return 2
    report["server_version"] = _version(args.livebase)
    if args.server:
        report["server_stack"] = args.server
    if args.json:
        print(json.dumps(report), flush=True)
    else:
        print_human(report)
    return 0 if report.get("complete") else 1


def _version(exe: str) -> str | None:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
