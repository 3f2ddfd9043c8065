#!/usr/bin/env python3
"""Reads through relations (docs/relations.md, "Reading"): what ``fields`` paths cost
a page of 100 items, against the same page without them (issue #19).

    .venv/bin/python bench/relations.py                   # SQLite, 3 rounds of 4 scenarios
    .venv/bin/python bench/relations.py --rounds 2 -r 200 # shorter
    .venv/bin/python bench/relations.py --database-url postgresql://postgres@127.0.0.1/NAME
    .venv/bin/python bench/relations.py --json            # one JSON line

One ``livebase serve`` (bench/fanout.py's server, started and stopped by PID; SQLite
in a temp dir, or the PostgreSQL database of ``--database-url``, which must exist
and be empty) holds

- ``companies`` (``name``, ``owner``), 50 items;
- ``authors`` (``name``), M2O ``company`` -> companies, ``--authors`` items (300);
- ``posts`` (``title``), M2O ``author`` -> authors with alias ``posts``, ``--posts``
  items (2 000), post i by author i % A;
- ``tags`` (``label``), 20 items, M2M ``posts.tags``: post i has tags i, i+1, i+2 (mod 20).

A user of role ``user`` (not an administrator, so every hop goes through its own
read permission) reads all four with ``fields: ["*"]``; on ``companies`` under a
condition naming ``$CURRENT_USER``, true of every company
(``owner = $CURRENT_USER or name startsWith "c"``, owner stays null), so the
company hop resolves and applies a per-user condition.

Scenarios, each a page of 100 (``page`` cycling over the whole collection):

- ``plain``: ``GET /items/posts?limit=100&fields=*``;
- ``m2o``:   ``fields=*,author.name`` (one hop);
- ``deep``:  ``fields=*,author.company.name,tags.label`` (three hops: author, its
  company, the tags through the junction);
- ``o2m``:   ``GET /items/authors?limit=100&fields=*,posts.title`` (lists capped at 100).

They run in rounds, alternating the order (round 1 as given, round 2 reversed...),
so that a drift of the machine's load weighs on all of them alike. Each run:
``--warmup`` requests, wait until the server is quiet, then ``-r`` requests with
``-c`` in flight, each on its own keep-alive connection. Every answer is checked:
status 200, 100 items (or the last page's count), and each item's expansion as
the data was made (author's name, company's name, the 3 tag labels in key order,
each author's whole list of posts); a wrong answer makes the exit status 1.

Figures per run: requests/s; server CPU (utime+stime of its PID from /proc) over
the phase, per request, and as a ratio to ``plain``'s of the same round; p50/p99
latency of the requests (client side: includes this client's queueing); the share
of the server's CPU spent by its main thread, the event loop (``loop %``; the rest
is other threads', aiosqlite's among them); and SQL
statements per request, counted in the server by a SQLAlchemy
``before_cursor_execute`` listener on every Engine (a ``sitecustomize`` on the
server's PYTHONPATH that writes its count to a file on SIGUSR1; ``--no-statements``
leaves it out).

Needs Linux (/proc) and the project's virtualenv; asyncpg (a runtime dependency)
for ``--database-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fanout

PAGE = 100
COMPANIES = 50
TAGS = 20
TAGS_PER_POST = 3
BASELINE = "plain"
# True of every company (owner stays null, every name starts with "c"), but naming
# $CURRENT_USER: the reader's condition on that hop is resolved per user.
COMPANY_CONDITION = {"OR": [{"owner": {"eq": "$CURRENT_USER"}}, {"name": {"startsWith": "c"}}]}

# Counts every statement any SQLAlchemy engine of the server executes; on SIGUSR1
# writes the count to $BENCH_STATEMENTS_FILE (a rename, so a reader never sees half).
SITECUSTOMIZE = """
import os, signal
from sqlalchemy import event
from sqlalchemy.engine import Engine

_count = 0

@event.listens_for(Engine, "before_cursor_execute")
def _counted(*_args):
    global _count
    _count += 1

def _dump(*_args):
    path = os.environ["BENCH_STATEMENTS_FILE"]
    with open(path + ".tmp", "w") as f:
        f.write(str(_count))
    os.replace(path + ".tmp", path)

signal.signal(signal.SIGUSR1, _dump)
"""


def log(*parts: object) -> None:
    print("[relations]", *parts, file=sys.stderr, flush=True)


def string(length: int = 255) -> dict[str, Any]:
    return {"type": "String", "values": {"length": length}}


COLLECTIONS = {
    "companies": {"name": string(), "owner": string(64)},
    "authors": {"name": string()},
    "posts": {"title": string()},
    "tags": {"label": string()},
}
RELATIONS = [  # (collection, body of POST /schemas/{collection}/relationships)
    ("authors", {"name": "company", "type": "M2O", "target": "companies"}),
    ("posts", {"name": "author", "type": "M2O", "target": "authors", "alias": "posts"}),
    ("posts", {"name": "tags", "type": "M2M", "target": "tags"}),
]


@dataclass(frozen=True)
class Scenario:
    name: str
    collection: str
    fields: str


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("plain", "posts", "*"),
        Scenario("m2o", "posts", "*,author.name"),
        Scenario("deep", "posts", "*,author.company.name,tags.label"),
        Scenario("o2m", "authors", "*,posts.title"),
    )
}


class World:
    """What was written, to check every answer against."""

    def __init__(self, posts: int, authors: int) -> None:
        self.posts, self.authors = posts, authors
        self.author_name: dict[Any, str] = {}  # author id -> name
        self.author_company: dict[Any, Any] = {}  # author id -> company id
        self.company_name: dict[Any, str] = {}
        self.tag_label: dict[Any, str] = {}
        self.post_tags: dict[Any, list[Any]] = {}  # post id -> tag ids
        self.author_posts: dict[Any, list[str]] = {}  # author id -> titles, in post-id order

    def count(self, sc: Scenario) -> int:
        return self.posts if sc.collection == "posts" else self.authors

    def check(self, sc: Scenario, item: dict[str, Any]) -> str | None:
        """What is wrong with one item of ``sc``'s answer, or None."""
        if sc.name == "plain":
            if "author" in item or "tags" in item or "author_Id" not in item:
                return f"plain post {item.get('id')}: {sorted(item)}"
            return None
        if sc.name == "o2m":
            titles = [p.get("title") for p in item.get("posts") or []]
            wanted = self.author_posts.get(item.get("id"), [])[:PAGE]
            return None if titles == wanted else f"author {item.get('id')}: posts {titles[:5]}…"
        author = item.get("author")
        author_id = item.get("author_Id")
        if not isinstance(author, dict) or author.get("id") != author_id:
            return f"post {item.get('id')}: author {author!r}"
        if sc.name == "m2o" and author.get("name") != self.author_name.get(author_id):
            return f"post {item.get('id')}: author {author!r}"
        if sc.name == "deep":
            company = author.get("company")
            wanted_company = self.company_name.get(self.author_company.get(author_id))
            if not isinstance(company, dict) or company.get("name") != wanted_company:
                return f"post {item.get('id')}: company {company!r}"
            labels = [t.get("label") for t in item.get("tags") or []]
            wanted_tags = [self.tag_label[t] for t in sorted(self.post_tags.get(item["id"], []))]
            if labels != wanted_tags:
                return f"post {item.get('id')}: tags {labels}, not {wanted_tags}"
        return None


# ---------------------------------------------------------------- setup


async def ok(http: fanout.Http, method: str, path: str, body: Any, token: str) -> Any:
    status, answer = await http.request(method, path, body, token)
    if status not in (200, 201):
        raise RuntimeError(f"{method} {path}: {status} {str(answer)[:500]}")
    return answer["data"] if isinstance(answer, dict) and "data" in answer else answer


async def bulk(http: fanout.Http, collection: str, items: list[Any], admin: str) -> list[Any]:
    made: list[Any] = []
    for i in range(0, len(items), 1000):  # MAX_BULK
        made += await ok(http, "POST", f"/items/{collection}/bulk", items[i : i + 1000], admin)
    return made


async def prepare(port: int, posts: int, authors: int) -> tuple[str, World]:
    """Schemas, relations, permissions for role ``user``, the data; the user's token."""
    http = fanout.Http(port)
    try:
        login = {"email": fanout.ADMIN_EMAIL, "password": fanout.ADMIN_PASSWORD}
        admin = (await ok(http, "POST", "/auth/login", login, ""))["token"]
        for name, fields in COLLECTIONS.items():
            schema = {"collectionName": name, "schema": {"name": name, "fields": fields}}
            await ok(http, "POST", "/schemas", schema, admin)
        for collection, relation in RELATIONS:
            await ok(http, "POST", f"/schemas/{collection}/relationships", relation, admin)
        for name in COLLECTIONS:
            permission: dict[str, Any] = {
                "role": "user", "collection": name, "action": "read", "fields": ["*"],
            }  # fmt: skip
            if name == "companies":
                permission["conditions"] = COMPANY_CONDITION
            await ok(http, "POST", "/permissions", permission, admin)

        world = World(posts, authors)
        companies = await bulk(
            http, "companies", [{"name": f"company {i}"} for i in range(COMPANIES)], admin
        )
        world.company_name = {c["id"]: c["name"] for c in companies}
        tags = await bulk(http, "tags", [{"label": f"tag {i}"} for i in range(TAGS)], admin)
        world.tag_label = {t["id"]: t["label"] for t in tags}
        made_authors = await bulk(
            http, "authors",
            [{"name": f"author {i}", "company_Id": companies[i % COMPANIES]["id"]}
             for i in range(authors)],
            admin,
        )  # fmt: skip
        for a in made_authors:
            world.author_name[a["id"]], world.author_company[a["id"]] = a["name"], a["company_Id"]
        made_posts = await bulk(
            http, "posts",
            [{"title": f"post {i}", "author_Id": made_authors[i % authors]["id"]}
             for i in range(posts)],
            admin,
        )  # fmt: skip
        links = []
        for i, p in enumerate(made_posts):
            chosen = [tags[(i + k) % TAGS]["id"] for k in range(TAGS_PER_POST)]
            world.post_tags[p["id"]] = chosen
            links += [{"posts_id": p["id"], "tags_id": t} for t in chosen]
            world.author_posts.setdefault(p["author_Id"], []).append(p["title"])
        await bulk(http, "posts_tags_junction", links, admin)
        # An author's posts come ordered by their key: sort by it, whatever its type.
        by_id = {p["title"]: p["id"] for p in made_posts}
        for titles in world.author_posts.values():
            titles.sort(key=lambda title: by_id[title])

        creds = {"email": "reader@bench.local", "password": fanout.USER_PASSWORD}
        user = (await ok(http, "POST", "/auth/register", creds, ""))["token"]
        return user, world
    finally:
        http.close()


# ---------------------------------------------------------------- measuring


class Statements:
    """The server's count of SQL statements, read through its sitecustomize (SIGUSR1)."""

    def __init__(self, pid: int, path: Path) -> None:
        self.pid, self.path = pid, path

    async def read(self) -> int | None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.kill(self.pid, signal.SIGUSR1)
        for _ in range(50):
            await asyncio.sleep(0.02)
            if self.path.exists():
                return int(self.path.read_text())
        return None


def loop_cpu(pid: int) -> float:
    """The CPU of the server's main thread (its event loop); the rest of its CPU is other
    threads', SQLite's among them (aiosqlite runs every statement in a thread of its own)."""
    with open(f"/proc/{pid}/task/{pid}/stat", encoding="latin-1") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / fanout.CLK_TCK


def url(sc: Scenario, n: int, world: World) -> str:
    pages = max(1, -(-world.count(sc) // PAGE))
    return f"/items/{sc.collection}?limit={PAGE}&page={n % pages + 1}&fields={quote(sc.fields)}"


async def requests(
    port: int, token: str, sc: Scenario, world: World, count: int, concurrency: int,
    first: int, errors: list[str],
) -> list[float]:  # fmt: skip
    """``count`` GETs, ``concurrency`` in flight; each answer checked; latencies in ms."""
    latencies: list[float] = []
    next_n = first

    async def worker() -> None:
        nonlocal next_n
        http = fanout.Http(port)
        try:
            while next_n < first + count:
                n = next_n
                next_n += 1
                path = url(sc, n, world)
                t0 = time.perf_counter()
                status, body = await http.request("GET", path, token=token)
                latencies.append((time.perf_counter() - t0) * 1000)
                wrong = answer_problem(sc, world, n, status, body)
                if wrong:
                    errors.append(f"{sc.name} {path}: {wrong}")
        finally:
            http.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def answer_problem(sc: Scenario, world: World, n: int, status: int, body: Any) -> str | None:
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return f"status {status}: {str(body)[:300]}"
    items = body["data"]
    total = world.count(sc)
    pages = max(1, -(-total // PAGE))
    wanted = min(PAGE, total - (n % pages) * PAGE)
    if len(items) != wanted:
        return f"{len(items)} items, not {wanted}"
    for item in items:
        wrong = world.check(sc, item)
        if wrong:
            return wrong
    return None


async def run_scenario(
    args: argparse.Namespace, cluster: fanout.Cluster, stats: Statements | None,
    token: str, world: World, sc: Scenario, errors: list[str],
) -> dict[str, Any]:  # fmt: skip
    port, pids = cluster.servers[0].port, cluster.pids
    await requests(port, token, sc, world, args.warmup, args.concurrency, 0, errors)
    await fanout.quiesce(pids, 1, 0.3)
    before = await stats.read() if stats else None
    loop0 = loop_cpu(pids[0])
    t0, cpu0, me0 = time.monotonic(), cluster.server_cpu(), time.process_time()
    lat = await requests(
        port, token, sc, world, args.requests, args.concurrency, args.warmup, errors
    )  # fmt: skip
    wall, cpu = time.monotonic() - t0, cluster.server_cpu() - cpu0
    loop = loop_cpu(pids[0]) - loop0
    client_cpu = time.process_time() - me0
    after = await stats.read() if stats else None
    lat.sort()
    r = args.requests
    return {
        "scenario": sc.name, "requests": r, "wall_s": round(wall, 3),
        "requests_per_s": round(r / wall, 1),
        "cpu_us_per_request": round(cpu * 1e6 / r),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "loop_share_pct": round(100 * loop / cpu, 1) if cpu else None,
        "client_cpu_pct": round(100 * client_cpu / wall, 1),
        "latency_p50_ms": fanout._r(fanout.percentile(lat, 50)),
        "latency_p99_ms": fanout._r(fanout.percentile(lat, 99)),
        "statements_per_request": (
            None if before is None or after is None else round((after - before) / r, 2)
        ),
    }  # fmt: skip


async def benchmark(args: argparse.Namespace, cluster: fanout.Cluster) -> dict[str, Any]:
    await cluster.start()
    server = cluster.servers[0]
    t0 = time.monotonic()
    token, world = await prepare(server.port, args.posts, args.authors)
    took = time.monotonic() - t0
    log(f"server pid {server.pid} on port {server.port}; {args.posts} posts, {args.authors} "
        f"authors, {COMPANIES} companies, {TAGS} tags in {took:.1f} s")  # fmt: skip
    stats = None if args.no_statements else Statements(server.pid, server.tmp / "statements.txt")
    scenarios = [SCENARIOS[name] for name in args.scenario_names]
    runs: list[dict[str, Any]] = []
    errors: list[str] = []
    for round_ in range(1, args.rounds + 1):
        for sc in scenarios if round_ % 2 else scenarios[::-1]:
            report = await run_scenario(args, cluster, stats, token, world, sc, errors)
            report["round"] = round_
            report["load"] = round(os.getloadavg()[0], 2)
            runs.append(report)
            log(f"round {round_} {sc.name}: {report['requests_per_s']} req/s, "
                f"{report['cpu_us_per_request']} us/request, p99 {report['latency_p99_ms']} ms, "
                f"{report['statements_per_request']} statements/request")  # fmt: skip
    return {"runs": runs, "errors": errors}


def ratios(runs: list[dict[str, Any]]) -> None:
    """Each run's CPU per request over the baseline's of the same round."""
    base = {r["round"]: r["cpu_us_per_request"] for r in runs if r["scenario"] == BASELINE}
    for r in runs:
        b = base.get(r["round"])
        r["vs_plain"] = round(r["cpu_us_per_request"] / b, 3) if b else None


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["scenario"] for r in runs):
        mine = [r for r in runs if r["scenario"] == name]
        entry: dict[str, Any] = {"vs_plain": [r["vs_plain"] for r in mine]}
        for key in ("cpu_us_per_request", "requests_per_s", "latency_p50_ms",
                    "latency_p99_ms", "statements_per_request"):  # fmt: skip
            values = [r[key] for r in mine if r.get(key) is not None]
            entry[key] = fanout._r(statistics.median(values)) if values else None
        out[name] = entry
    return out


def print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    lines = [
        f"livebase relations: {args.posts} posts, {args.authors} authors, {COMPANIES} companies, "
        f"{TAGS} tags ({TAGS_PER_POST} per post); {args.requests} requests of {PAGE} items per "
        f"run, concurrency {args.concurrency}; {result['database']}",
        f"{'scenario':<8} {'round':>5} {'req/s':>7} {'us/req':>7} {'vs plain':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'SQL/req':>7} {'server %':>8} {'loop %':>6} "
        f"{'client %':>8} {'load':>5}",
    ]
    for r in result["runs"]:
        ratio = f"{r['vs_plain']:.2f}x" if r["vs_plain"] else "-"
        sql = "-" if r["statements_per_request"] is None else f"{r['statements_per_request']:g}"
        lines.append(
            f"{r['scenario']:<8} {r['round']:>5} {r['requests_per_s']:>7.0f} "
            f"{r['cpu_us_per_request']:>7} {ratio:>8} {r['latency_p50_ms']:>7.1f} "
            f"{r['latency_p99_ms']:>7.1f} {sql:>7} {r['server_cpu_pct']:>8.0f} "
            f"{r['loop_share_pct'] or 0:>6.0f} "
            f"{r['client_cpu_pct']:>8.0f} {r['load']:>5.2f}"
        )
    lines.append("medians over the rounds (vs plain: CPU per request / plain's, same round):")
    for name, e in result["summary"].items():
        each = ", ".join(f"{x:.2f}x" for x in e["vs_plain"] if x) or "-"
        lines.append(
            f"  {name:<6} {e['cpu_us_per_request']} us/request, {e['requests_per_s']} req/s, "
            f"p50 {e['latency_p50_ms']} ms, p99 {e['latency_p99_ms']} ms, "
            f"{e['statements_per_request']} SQL/request; vs plain {each}"
        )
    for problem in result["errors"][:10]:
        lines.append(f"WRONG ANSWER: {problem}")
    if len(result["errors"]) > 10:
        lines.append(f"... and {len(result['errors']) - 10} more wrong answers")
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--posts", type=int, default=2000, help="posts (2000)")
    ap.add_argument("--authors", type=int, default=300, help="authors (300)")
    ap.add_argument("-r", "--requests", type=int, default=400, help="measured GETs per run (400)")
    ap.add_argument("-c", "--concurrency", type=int, default=4, help="requests in flight (4)")
    ap.add_argument("--warmup", type=int, default=20, help="GETs before each run's measured ones")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating order (3)")
    ap.add_argument(
        "--scenarios", default=",".join(SCENARIOS),
        help=f"comma-separated, in this order (default {','.join(SCENARIOS)})",
    )  # fmt: skip
    ap.add_argument(
        "--database-url",
        help="an empty PostgreSQL database (postgresql://user@host:port/name) instead of "
        "a throwaway SQLite file; create and drop it yourself",
    )  # fmt: skip
    ap.add_argument(
        "--no-statements", action="store_true",
        help="do not count SQL statements in the server (no sitecustomize)",
    )  # fmt: skip
    ap.add_argument("--livebase", default=fanout.default_executable(), help="the executable")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (log, database)")
    args = ap.parse_args()
    args.scenario_names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if set(args.scenario_names) - set(SCENARIOS) or not args.scenario_names:
        ap.error(f"--scenarios: from {', '.join(SCENARIOS)}")
    if min(args.posts, args.authors, args.requests, args.concurrency, args.rounds) < 1:
        ap.error("need --posts, --authors, --requests, --concurrency, --rounds >= 1")
    if args.warmup < 0:
        ap.error("need --warmup >= 0")
    if args.database_url and not args.database_url.startswith("postgresql://"):
        ap.error("--database-url: postgresql://user@host:port/database")
    if not os.access(args.livebase, os.X_OK):
        ap.error(f"no livebase executable at {args.livebase} (or pass --livebase)")
    return args


def main() -> int:
    args = parse_args()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    options = argparse.Namespace(
        processes=1, shared=False, redis_url=fanout.REDIS_URL, database_url=None,
        livebase=args.livebase, keep=args.keep, server=None,
    )  # fmt: skip
    cluster = fanout.Cluster(options)
    hooks = Path(tempfile.mkdtemp(prefix="livebase-relations-"))
    result: dict[str, Any] | None = None
    load_start = os.getloadavg()
    try:
        cluster.setup()
        server = cluster.servers[0]
        server.env.update(DEMO_ENABLED="false")
        if args.database_url:
            server.env["DATABASE_URL"] = args.database_url
        if not args.no_statements:
            (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
            server.env.update(
                PYTHONPATH=str(hooks), BENCH_STATEMENTS_FILE=str(server.tmp / "statements.txt")
            )
        result = asyncio.run(benchmark(args, cluster))
    except KeyboardInterrupt:
        log("interrupted")
    except Exception as exc:
        log(f"failed: {exc!r}")
        if cluster.servers:
            log(f"--- end of the server log:\n{cluster.servers[0].tail()}")
    finally:
        cluster.stop()
        for leftover in hooks.iterdir():
            leftover.unlink()
        hooks.rmdir()
    if result is None:
        return 2
    ratios(result["runs"])
    result.update(
        database="PostgreSQL" if args.database_url else "SQLite",
        summary=summary(result["runs"]), posts=args.posts, authors=args.authors,
        requests=args.requests, concurrency=args.concurrency,
        load_start=[round(x, 2) for x in load_start],
        load_end=[round(x, 2) for x in os.getloadavg()],
        server_version=fanout._version(args.livebase),
    )  # fmt: skip
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print_table(result, args)
        print(f"load average: {result['load_start']} at the start, {result['load_end']} at the end")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
