#!/usr/bin/env python3
"""Live queries benchmark for livebase: the server's cost per change with 10 000 live
queries, against 10 of them and against a room (docs/realtime.md, "Live queries").

    .venv/bin/python bench/live_queries.py                # 2 rounds of the 5 scenarios (~10 min)
    .venv/bin/python bench/live_queries.py --rounds 1 -m 500 --scenarios live10,room10
    .venv/bin/python bench/live_queries.py --json         # one JSON line

Scenarios (N = --sockets, 10 000; V = --values, 1 000; R = N / V = 10 recipients):

- ``live10k``: N sockets; socket i subscribes to
  ``{collection: "posts", filter: {tag: {eq: i % V}}, fields: [title, sentAt, tag]}``;
  write number s carries ``tag = s % V``, so each change is a
  ``subscription.added`` for the R sockets of its tag (one group of R identical
  subscriptions, found through the index of pinned values);
- ``live10``: only the R sockets of tag 0 (the sockets 0, V, 2V... of live10k,
  with the same users), every write with ``tag = 0``: R subscriptions, one group;
- ``room10``: the same R sockets join the room ``collection:posts``
  instead of subscribing (the server runs with SOCKET_AUTO_JOIN_COLLECTIONS=false,
  so nobody else is in it), every write reaches them as ``item.created``;
- ``room10k``: N sockets connected, of which only those R join the room: what the
  N - R idle sockets alone add to room10;
- ``unpinned10k``: N sockets; socket i subscribes to ``{score: {gt: i}}`` (a filter
  that pins nothing: N distinct groups, each tested against every change);
  every write carries ``score = R``, so sockets 0..R-1 match.

Every scenario runs on a fresh server (``livebase serve`` on SQLite, as in
bench/fanout.py, whose server, client and figures this script uses), in rounds:
the scenarios in the order given, then in the reverse order, and so on, so
that a drift of the machine's load weighs on all of them alike. In each run:

1. start the server with SOCKET_AUTO_JOIN_COLLECTIONS=false (else every socket
   able to read ``posts`` would get ``item.created`` for every write on top of
   its subscription's events) and SOCKET_PING_INTERVAL=--ping-interval (300 s:
   heartbeats of 10 000 sockets would cost ~4 % of a core, none of it per change);
2. create ``posts`` (``title``, ``sentAt``, ``tag``, ``score``, ``owner``), let role ``user``
   read it (``--scope shared``: unconditionally, so the R recipients of a change,
   sockets of R different users, share one read scope and one group;
   ``--scope per-user``: under ``owner = $CURRENT_USER or tag >= 0``, true of every
   write (owner stays null) but naming ``$CURRENT_USER``, which makes
   every user's scope, and so every (user, tag) subscription, a group of its own),
   register --users users; logical socket i belongs to user ``i * users // N``;
3. connect the sockets (the minimal Engine.IO/Socket.IO client of fanout.py,
   recovery-capable: events carry the trailing offset), then each sends its
   ``subscribe`` (or ``join``) and waits for the ack; the server's CPU per
   subscribe and RSS per subscription are noted;
4. wait until the server is quiet, measure its idle CPU over --idle seconds,
   make --warmup writes, then the M measured ``POST /items/posts`` (C in flight),
   each stamped ``sentAt`` just before it is sent, until every expected frame
   has arrived;
5. read ``GET /stats/realtime`` (subscriptions and groups) and stop the server.

Figures per run: server CPU (utime+stime from /proc) over the phase, per change
(write) and per delivered frame, and per change net of the idle CPU (the idle rate
times the phase's wall time taken off); latency p50/p99 from just before the REST
call to the frame's receipt; lost, duplicated and unexpected frames (a frame to a
socket whose subscription does not match, or not in the room); writes/s; server
CPU per subscribe (or join) and RSS per subscription. The summary gives each
scenario's median over the rounds, and its CPU per change as a ratio to room10's
of the same round. The exit status is 0 only when every run delivered every
expected frame exactly once and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout
from fanout import Subscriber

COLLECTION = fanout.COLLECTION
FIELDS = ["title", "sentAt", "tag"]  # what every subscription asks for (id always comes)
SCHEMA = copy.deepcopy(fanout.SCHEMA)  # posts: title, sentAt, and
SCHEMA["schema"]["fields"].update(
    tag={"type": "Integer"},
    score={"type": "Integer"},
    owner={"type": "String", "values": {"length": 64}},  # --scope per-user
)
# --scope per-user: every row readable, but every user's resolved condition differs.
PER_USER = {"OR": [{"owner": {"eq": "$CURRENT_USER"}}, {"tag": {"gte": 0}}]}
SCENARIOS = ("live10k", "live10", "room10", "room10k", "unpinned10k")
BASELINE = "room10"


def log(*parts: object) -> None:
    print("[live_queries]", *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    sockets: list[int]  # logical socket numbers (of the N of live10k)
    event: str  # the frames counted
    request: Callable[[int], tuple[str, Any] | None]  # socket -> subscribe, join or nothing
    write: Callable[[int], dict[str, Any]]  # write number -> its tag and score
    expects: Callable[[int, range], Iterable[int]]  # socket, writes -> those it gets


def scenario(name: str, n: int, values: int) -> Scenario:
    per_value = n // values  # R: the sockets a change reaches

    def subscribe(condition: Callable[[int], Any]) -> Callable[[int], tuple[str, Any]]:
        def request(i: int) -> tuple[str, Any]:
            asked = {"collection": COLLECTION, "filter": condition(i), "fields": FIELDS}
            return "subscribe", asked

        return request

    pinned = subscribe(lambda i: {"tag": {"eq": i % values}})
    tag0 = [k * values for k in range(per_value)]
    if name == "live10k":
        return Scenario(
            name, list(range(n)), "subscription.added", pinned,
            lambda seq: {"tag": seq % values, "score": -1},
            lambda i, writes: range(
                writes.start + (i - writes.start) % values, writes.stop, values
            ),
        )  # fmt: skip
    if name == "live10":
        return Scenario(
            name, tag0, "subscription.added", pinned,
            lambda seq: {"tag": 0, "score": -1}, lambda i, writes: writes,
        )  # fmt: skip
    if name == "room10":
        return Scenario(
            name, tag0, "item.created", lambda i: ("join", f"collection:{COLLECTION}"),
            lambda seq: {"tag": 0, "score": -1}, lambda i, writes: writes,
        )  # fmt: skip
    if name == "room10k":
        return Scenario(
            name, list(range(n)), "item.created",
            lambda i: None if i % values else ("join", f"collection:{COLLECTION}"),
            lambda seq: {"tag": 0, "score": -1},
            lambda i, writes: () if i % values else writes,
        )  # fmt: skip
    if name == "unpinned10k":
        return Scenario(
            name, list(range(n)), "subscription.added",
            subscribe(lambda i: {"score": {"gt": i}}),
            lambda seq: {"tag": seq % values, "score": per_value},
            lambda i, writes: writes if i < per_value else (),
        )  # fmt: skip
    raise ValueError(name)


# ---------------------------------------------------------------- the client


class Socket(Subscriber):
    """fanout.py's subscriber, counting ``event`` frames, that can ask and wait for acks."""

    __slots__ = ("asked", "event_prefix", "logical", "replies")

    def __init__(self, index: int, logical: int, token: str, writes: int, event: str) -> None:
        super().__init__(index, token, writes)
        self.logical = logical  # its number among the N sockets of live10k
        self.event_prefix = f'42["{event}",'
        self.asked = 0
        self.replies: dict[int, asyncio.Future[Any]] = {}

    async def ask(self, event: str, argument: Any) -> Any:
        """Emit ``event`` with an ack id; the ack's first argument."""
        self.asked += 1
        ack_id = self.asked
        reply = self.replies[ack_id] = asyncio.get_running_loop().create_future()
        try:
            await self.ws.send(f"42{ack_id}" + json.dumps([event, argument]))
            return (await reply)[0]
        finally:
            self.replies.pop(ack_id, None)

    def acked(self, message: str) -> None:
        end = 2
        while end < len(message) and message[end].isdigit():
            end += 1
        reply = self.replies.get(int(message[2:end] or -1))
        if reply is not None and not reply.done():
            reply.set_result(fanout.loads(message[end:]))


# ---------------------------------------------------------------- one run


async def run(
    args: argparse.Namespace, cluster: fanout.Cluster, sc: Scenario, tokens: list[str]
) -> dict[str, Any]:
    """One scenario on a started server whose users are registered (``tokens``)."""
    pids, port = cluster.pids, cluster.servers[0].port
    admin, users = tokens[0], tokens[1:] or tokens[:1]
    warmup, m, n = args.warmup, args.writes, args.sockets
    total = warmup + m
    stats = fanout.Stats(total)
    url = f"ws://{fanout.HOST}:{port}{fanout.SOCKET_PATH}/?EIO=4&transport=websocket"
    socks = [
        Socket(j, i, users[i * len(users) // n], total, sc.event) for j, i in enumerate(sc.sockets)
    ]
    report: dict[str, Any] = {"scenario": sc.name, "sockets": len(socks)}

    connect_s, errors = await fanout.connect(socks, [url], stats, args.connect_concurrency)
    up = [s for s in socks if s.up]
    log(f"{sc.name}: server pid {cluster.servers[0].pid}; connected {len(up)}/{len(socks)} "
        f"in {connect_s:.1f} s"
        + (f" errors: {errors}" if errors else ""))  # fmt: skip
    await fanout.quiesce(pids, 1)

    # ---- subscribe (or join), each socket once, then wait for the ack
    rss0, cpu0, t0 = sum(map(fanout.rss_kib, pids)), cluster.server_cpu(), time.monotonic()
    gate = asyncio.Semaphore(args.connect_concurrency)
    refused: dict[str, int] = {}

    async def ask(sock: Socket) -> None:
        asked = sc.request(sock.logical)
        if asked is None:
            return
        event, argument = asked
        async with gate:
            try:
                answer = await asyncio.wait_for(sock.ask(event, argument), 60)
                ok = isinstance(answer, dict) and answer.get("success") and not answer.get("items")
                why = None if ok else str(answer)[:120]
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"[:120]
        if why is not None:
            refused[why] = refused.get(why, 0) + 1
            sock.up = False  # its losses are counted apart

    asking = sum(sc.request(s.logical) is not None for s in up)
    await asyncio.gather(*(ask(s) for s in up))
    subscribe_s, subscribe_cpu = time.monotonic() - t0, cluster.server_cpu() - cpu0
    await fanout.quiesce(pids, 1)
    rss1 = sum(map(fanout.rss_kib, pids))
    ready = [s for s in up if s.up]
    log(f"{sc.name}: {len(ready)} ready in {subscribe_s:.1f} s"
        + (f"; refused: {refused}" if refused else ""))  # fmt: skip
    report.update({
        "connected": len(up), "connect_errors": errors, "ready": len(ready),
        "refused": refused, "connect_s": round(connect_s, 2), "subscribe_s": round(subscribe_s, 2),
        "cpu_us_per_subscribe": fanout._r(subscribe_cpu * 1e6 / max(asking, 1)),
        "kib_per_subscription": fanout._r((rss1 - rss0) / max(asking, 1)),
    })  # fmt: skip

    # ---- idle, warm-up, measured writes
    cpu0, t0 = cluster.server_cpu(), time.monotonic()
    await asyncio.sleep(args.idle)
    report["idle_cpu_pct"] = round(100 * (cluster.server_cpu() - cpu0) / (time.monotonic() - t0), 2)

    def expected(writes: range) -> int:
        return sum(sum(1 for _ in sc.expects(s.logical, writes)) for s in ready)

    async def writes(first: int, count: int) -> dict[str, Any]:
        return await fanout.write_phase(
            port, admin, first, count, args.concurrency, stats,
            expected(range(first, first + count)), cluster, args.drain_timeout, fields=sc.write,
        )  # fmt: skip

    if warmup:
        await writes(0, warmup)
        await fanout.quiesce(pids, 1, 0.3)
    measured = await writes(warmup, m)
    await asyncio.sleep(0.3)  # late duplicates would show up here
    lost_apart = sum(
        sum(1 for _ in sc.expects(s.logical, range(warmup, total))) for s in socks if not s.up
    )
    figures = fanout.phase_figures(
        measured, stats, ready, 0, m, warmup,
        expects=lambda s: sc.expects(s.logical, range(warmup, total)),
    )  # fmt: skip
    figures["expected"] += lost_apart
    figures["lost"] += lost_apart
    figures["complete"] = figures["complete"] and lost_apart == 0
    # What the server spent anyway (sessions kept alive, Engine.IO's service task...):
    # idle CPU over the phase's wall time, taken off its CPU per change.
    idle = report["idle_cpu_pct"] / 100 * figures["wall_s"]
    figures["cpu_us_per_write_net"] = fanout._r((figures["server_cpu_s"] - idle) * 1e6 / m)
    report.update(figures)
    report["live"] = await live_stats(port, admin)
    for s in socks:
        s.closing = True
    await asyncio.gather(*(fanout._close(s) for s in socks))
    return report


async def live_stats(port: int, admin: str) -> Any:
    """The server's own count of subscriptions and groups (GET /stats/realtime)."""
    http = fanout.Http(port)
    try:
        status, body = await http.request("GET", "/stats/realtime", token=admin)
    finally:
        http.close()
    if status != 200 or not isinstance(body, dict):
        return None
    data = body.get("data", body)
    return data.get("liveQueries") if isinstance(data, dict) else None


async def prepared_run(
    args: argparse.Namespace, cluster: fanout.Cluster, sc: Scenario
) -> dict[str, Any]:
    await cluster.start()
    conditions = PER_USER if args.scope == "per-user" else None
    admin, users = await fanout.prepare(
        cluster.servers[0].port, args.users, SCHEMA, conditions
    )  # fmt: skip
    return await run(args, cluster, sc, [admin, *users])


def one_run(args: argparse.Namespace, sc: Scenario) -> dict[str, Any] | None:
    """``sc`` on a fresh server, stopped by PID whatever happens."""
    options = argparse.Namespace(
        processes=1, shared=False, redis_url=fanout.REDIS_URL, database_url=None,
        livebase=args.livebase, keep=args.keep, server=None,
    )  # fmt: skip
    cluster = fanout.Cluster(options)
    try:
        cluster.setup()
        cluster.servers[0].env.update(
            SOCKET_AUTO_JOIN_COLLECTIONS="false",
            SOCKET_PING_INTERVAL=str(args.ping_interval),
            DEMO_ENABLED="false",
        )
        load = os.getloadavg()
        report = asyncio.run(prepared_run(args, cluster, sc))
        report["load_before"] = [round(x, 2) for x in load]
        return report
    except Exception as exc:
        log(f"{sc.name} failed: {exc!r}")
        if cluster.servers:
            log(f"--- end of the server log:\n{cluster.servers[0].tail()}")
        return None
    finally:
        cluster.stop()


# ---------------------------------------------------------------- the summary


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each scenario's medians over the rounds, and its CPU per change over room10's of
    the same round (the median of those ratios)."""
    out: dict[str, Any] = {}
    by_round = {(r["scenario"], r["round"]): r for r in runs}
    for name in dict.fromkeys(r["scenario"] for r in runs):
        mine = [r for r in runs if r["scenario"] == name]
        entry: dict[str, Any] = {"runs": len(mine)}
        for key in ("cpu_us_per_write", "cpu_us_per_write_net", "cpu_us_per_msg",
                    "latency_p50_ms", "latency_p99_ms", "writes_per_s", "cpu_us_per_subscribe",
                    "kib_per_subscription", "idle_cpu_pct"):  # fmt: skip
            values = [r[key] for r in mine if r.get(key) is not None]
            entry[key] = fanout._r(statistics.median(values)) if values else None
        for key in ("cpu_us_per_write", "cpu_us_per_write_net"):
            ratios = []
            for r in mine:
                base = by_round.get((BASELINE, r["round"]))
                if base and base.get(key) and r.get(key):
                    ratios.append(round(r[key] / base[key], 3))
            entry[key.replace("cpu_us_per_write", "vs_room10")] = ratios
        entry["lost"] = sum(r["lost"] for r in mine)
        entry["duplicates"] = sum(r["duplicates"] for r in mine)
        entry["unexpected"] = sum(r["unexpected"] for r in mine)
        out[name] = entry
    return out


def print_table(
    runs: list[dict[str, Any]], summed: dict[str, Any], args: argparse.Namespace
) -> None:
    head = (
        f"{'scenario':<12} {'round':>5} {'sockets':>7} {'groups':>6} {'writes/s':>8} "
        f"{'us/change':>9} {'net':>5} {'us/frame':>8} {'vs room10':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'lost/dup/unexp':>14} {'idle %':>6} {'us/subscr':>9}"
    )
    lines = [
        f"livebase live queries: N={args.sockets}, V={args.values}, M={args.writes} writes, "
        f"C={args.concurrency}, {args.users} users, scope {args.scope}",
        head,
    ]
    by_round = {(r["scenario"], r["round"]): r for r in runs}
    for r in runs:
        base = by_round.get((BASELINE, r["round"]))
        ratio = (
            f"{r['cpu_us_per_write'] / base['cpu_us_per_write']:.2f}x"
            if base and base.get("cpu_us_per_write") else "-"
        )  # fmt: skip
        groups = (r.get("live") or {}).get("groups", "-")
        lines.append(
            f"{r['scenario']:<12} {r['round']:>5} {r['ready']:>7} {groups!s:>6} "
            f"{r['writes_per_s']:>8.0f} {r['cpu_us_per_write']:>9.0f} "
            f"{r['cpu_us_per_write_net']:>5.0f} {r['cpu_us_per_msg']:>8.1f} "
            f"{ratio:>9} {r['latency_p50_ms']:>7.1f} {r['latency_p99_ms']:>7.1f} "
            f"{r['latency_max_ms']:>7.1f} "
            f"{str(r['lost']) + '/' + str(r['duplicates']) + '/' + str(r['unexpected']):>14} "
            f"{r['idle_cpu_pct']:>6.1f} {r['cpu_us_per_subscribe']:>9.0f}"
        )
    lines.append("medians over the rounds (ratio: CPU per change / room10's, same round):")
    for name, e in summed.items():
        ratios = ", ".join(f"{x:.2f}x" for x in e["vs_room10"]) or "-"
        net = ", ".join(f"{x:.2f}x" for x in e["vs_room10_net"]) or "-"
        lines.append(
            f"  {name:<12} {e['cpu_us_per_write']} us/change ({e['cpu_us_per_write_net']} net "
            f"of idle), {e['cpu_us_per_msg']} us/frame, p50 {e['latency_p50_ms']} ms, "
            f"p99 {e['latency_p99_ms']} ms; vs room10 {ratios} (net {net})"
        )
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", "--sockets", type=int, default=10_000, help="N (default 10000)")
    ap.add_argument("--values", type=int, default=1000, help="V, distinct tags (default 1000)")
    ap.add_argument("-m", "--writes", type=int, default=2000, help="measured writes (2000)")
    ap.add_argument("-c", "--concurrency", type=int, default=2, help="writes in flight (2)")
    ap.add_argument("--warmup", type=int, default=50, help="writes before the measured ones")
    ap.add_argument("-u", "--users", type=int, default=100, help="users of role `user` (100)")
    ap.add_argument(
        "--scope", choices=("shared", "per-user"), default="shared",
        help="role `user` reads posts unconditionally (shared, default) or under a "
        "condition naming $CURRENT_USER (per-user: one group per user and tag)",
    )  # fmt: skip
    ap.add_argument(
        "--scenarios", default=",".join(SCENARIOS),
        help=f"comma-separated, run in this order (default {','.join(SCENARIOS)})",
    )  # fmt: skip
    ap.add_argument("--rounds", type=int, default=2, help="rounds, alternating order (2)")
    ap.add_argument("--ping-interval", type=float, default=300, help="SOCKET_PING_INTERVAL (300)")
    ap.add_argument("--idle", type=float, default=5, help="s of idle CPU measured before writes")
    ap.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight")
    ap.add_argument("--drain-timeout", type=float, default=20, help="give up after this many s")
    ap.add_argument("--livebase", default=fanout.default_executable(), help="the executable")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, databases)")
    args = ap.parse_args()
    args.scenario_names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenario_names) - set(SCENARIOS)
    if unknown or not args.scenario_names:
        ap.error(f"--scenarios: from {', '.join(SCENARIOS)}")
    if args.values < 1 or args.sockets < args.values or args.sockets % args.values:
        ap.error("--sockets must be a multiple of --values")
    if min(args.writes, args.concurrency, args.rounds, args.users) < 1 or args.warmup < 0:
        ap.error("need --writes, --concurrency, --rounds, --users >= 1 and --warmup >= 0")
    if not os.access(args.livebase, os.X_OK):
        ap.error(f"no livebase executable at {args.livebase} (or pass --livebase)")
    return args


def main() -> int:
    args = parse_args()
    if fanout.raise_fd_limit() < args.sockets + 200:
        log(f"warning: the open-file limit is low for {args.sockets} sockets")

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    scenarios = [scenario(name, args.sockets, args.values) for name in args.scenario_names]
    runs: list[dict[str, Any]] = []
    failed = 0
    started = os.getloadavg()
    try:
        for round_ in range(1, args.rounds + 1):
            for sc in scenarios if round_ % 2 else scenarios[::-1]:
                log(f"round {round_}: {sc.name} (load {os.getloadavg()[0]:.2f})")
                report = one_run(args, sc)
                if report is None:
                    failed += 1
                    continue
                report["round"] = round_
                runs.append(report)
                log(f"{sc.name}: {report['cpu_us_per_write']} us/change, "
                    f"p99 {report['latency_p99_ms']} ms, lost {report['lost']}")  # fmt: skip
    except KeyboardInterrupt:
        log("interrupted")
        return 2
    runs.sort(key=lambda r: (r["round"], args.scenario_names.index(r["scenario"])))
    summed = summary(runs)
    result = {
        "sockets": args.sockets, "values": args.values, "writes": args.writes,
        "concurrency": args.concurrency, "users": args.users, "scope": args.scope,
        "ping_interval": args.ping_interval, "load_start": [round(x, 2) for x in started],
        "load_end": [round(x, 2) for x in os.getloadavg()], "failed_runs": failed,
        "server_version": fanout._version(args.livebase), "summary": summed, "runs": runs,
    }  # fmt: skip
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print_table(runs, summed, args)
        print(f"load average: {result['load_start']} at the start, {result['load_end']} at the end")
    ok = not failed and all(r["complete"] for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
