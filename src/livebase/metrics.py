"""The Prometheus metrics livebase exports at ``/metrics`` (docs/operations.md).

Counters and histograms are counted where things happen, at most once per
fan-out (one ``inc(n)`` per envelope, never one per recipient socket), with
their ``labels(...)`` children looked up once per label value
(:class:`ByEventType`). Figures the server already holds (open sockets,
queued bytes, live subscriptions, the change log) are gauges set when
``/metrics`` is scraped, not kept up to date on the hot path.

Labels are low-cardinality only: event type, transport, role, reason,
route template, status. Never a user, item, socket or room.

Under ``serve --workers N`` every process writes its figures to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, chosen
when the library is imported), and a scrape answered by any worker adds
them up: the gauges of live processes are summed (``livesum``), the change
log's (one database for all) is the latest any process read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values

__all__ = [
    "BROADCASTS",
    "BROADCASTS_REFUSED",
    "CHANGE_LOG_ENTRIES",
    "CHANGE_LOG_LAG",
    "CONTENT_TYPE",
    "DELIVERY_LATENCY",
    "EVENTS_PUBLISHED",
    "FRAMES_DELIVERED",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "LIVE_SUBSCRIPTIONS",
    "MULTIPROCESS",
    "QUEUED_BYTES",
    "RECOVERIES",
    "RECOVERIES_REFUSED",
    "REDIS_PUBLISH_FAILURES",
    "SLOW_CONSUMER_DISCONNECTS",
    "SOCKETS_BY_ROLE",
    "SOCKETS_OPEN",
    "ByEventType",
    "event_type",
    "exposition",
    "forget_process",
    "set_labelled",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Whether prometheus-client keeps values in files shared by the workers: decided at its import.
MULTIPROCESS = _values.ValueClass is not _values.MutexValue
_REGISTRY = CollectorRegistry(auto_describe=True)

# -- counted where it happens ------------------------------------------------------------

EVENTS_PUBLISHED = Counter(
    "livebase_events_published",
    "Events that entered the realtime pipeline on this process (each counted on one process)",
    ["type"],
    registry=_REGISTRY,
)
FRAMES_DELIVERED = Counter(
    "livebase_frames_delivered",
    "Events written, or queued, to sockets (one per socket reached)",
    ["type"],
    registry=_REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "livebase_delivery_latency_seconds",
    "From a logged change's write in its transaction to its fan-out's frames written here",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=_REGISTRY,
)
SLOW_CONSUMER_DISCONNECTS = Counter(
    "livebase_slow_consumer_disconnects",
    "Sockets disconnected for reading too slowly, by the bound they passed",
    ["bound"],
    registry=_REGISTRY,
)
RECOVERIES = Counter(
    "livebase_recoveries",
    "Reconnects that recovered their session",
    registry=_REGISTRY,
)
RECOVERIES_REFUSED = Counter(
    "livebase_recoveries_refused",
    "Reconnects that asked for a session back and started a new one instead, by reason",
    ["reason"],
    registry=_REGISTRY,
)
BROADCASTS = Counter(
    "livebase_broadcasts",
    "Client broadcasts sent to a room",
    registry=_REGISTRY,
)
BROADCASTS_REFUSED = Counter(
    "livebase_broadcasts_refused",
    "Client broadcasts refused, by reason",
    ["reason"],
    registry=_REGISTRY,
)
REDIS_PUBLISH_FAILURES = Counter(
    "livebase_redis_publish_failures",
    "Cluster messages dropped because publishing them to Redis failed",
    registry=_REGISTRY,
)
HTTP_REQUESTS = Counter(
    "livebase_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
    registry=_REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "livebase_http_request_duration_seconds",
    "HTTP request durations, by method and route template",
    ["method", "route"],
    registry=_REGISTRY,
)

# -- set when scraped --------------------------------------------------------------------

SOCKETS_OPEN = Gauge(
    "livebase_sockets_open",
    "Connected Socket.IO sockets, by transport",
    ["transport"],
    multiprocess_mode="livesum",
    registry=_REGISTRY,
)
SOCKETS_BY_ROLE = Gauge(
    "livebase_sockets_by_role",
    "Connected Socket.IO sockets, by their user's role",
    ["role"],
    multiprocess_mode="livesum",
    registry=_REGISTRY,
)
QUEUED_BYTES = Gauge(
    "livebase_queued_bytes",
    "Bytes written or queued for sockets that their clients have not read yet",
    multiprocess_mode="livesum",
    registry=_REGISTRY,
)
LIVE_SUBSCRIPTIONS = Gauge(
    "livebase_live_subscriptions",
    "Live query subscriptions held by connected sockets",
    multiprocess_mode="livesum",
    registry=_REGISTRY,
)
CHANGE_LOG_ENTRIES = Gauge(
    "livebase_change_log_entries",
    "Entries the change log holds (published ones are kept for the retention)",
    multiprocess_mode="livemostrecent",
    registry=_REGISTRY,
)
CHANGE_LOG_LAG = Gauge(
    "livebase_change_log_lag_entries",
    "Change log entries committed but not yet published by the relay",
    multiprocess_mode="livemostrecent",
    registry=_REGISTRY,
)

# Event names of livebase's own events keep their name as a label; an extension's
# events (any name its code emits) are counted together, as "custom".
_SERVER_EVENTS = frozenset({"connected"})
_SERVER_PREFIXES = frozenset(
    {"item", "file", "notification", "presence", "room", "subscription", "session", "user"}
)
_CACHED_TYPES = 1000


def event_type(event: str) -> str:
    """The ``type`` label of an event named ``event``."""
    if event in _SERVER_EVENTS or event.partition(".")[0] in _SERVER_PREFIXES:
        return event
    return "custom"


class ByEventType:
    """A counter's child for each event name, looked up once (the hot path's label lookup)."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[str, Counter] = {}

    def __call__(self, event: str) -> Counter:
        child = self._children.get(event)
        if child is None:
            child = self._counter.labels(event_type(event))
            if len(self._children) < _CACHED_TYPES:
                self._children[event] = child
        return child


def set_labelled(gauge: Gauge, figures: dict[str, float], seen: set[str]) -> None:
    """Set ``gauge``'s children to ``figures``; those ``seen`` before and gone now to 0.

    (Not removed: in multiprocess mode a removed child's last value stays in its file.)
    """
    for label in seen - figures.keys():
        gauge.labels(label).set(0)
    for label, value in figures.items():
        gauge.labels(label).set(value)
    seen.update(figures)


def exposition() -> bytes:
    """The metrics in Prometheus's text format: this process's, or every worker's."""
    if not MULTIPROCESS:
        return generate_latest(_REGISTRY)
    _forget_dead_workers()
    registry = CollectorRegistry(auto_describe=True)
    _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def forget_process(pid: int) -> None:
    """Multiprocess mode: a worker has exited; its live gauges no longer count."""
    if MULTIPROCESS:
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _forget_dead_workers() -> None:
    # A worker that was killed never said so: its files name its pid.
    for pid in _pids_of(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])):
        if pid != os.getpid() and not _alive(pid):
            forget_process(pid)


def _pids_of(files: Iterable[str]) -> set[int]:
    pids = set()
    for name in files:
        if name.startswith("gauge_live") and name.endswith(".db"):
            digits = name[: -len(".db")].rpartition("_")[2]
            if digits.isdigit():
                pids.add(int(digits))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
