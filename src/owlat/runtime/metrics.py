"""Metrics of a deployment in the Prometheus text format (`GET /metrics`, prometheus-client).

Each Application has its own `RuntimeMetrics` (its own registry, so that several
applications in one process, as in tests, do not mix their numbers):

    owlat_function_calls_total{path,kind,outcome}   calls by public path, kind, success/error
    owlat_function_duration_seconds{path,kind}      their latency (histogram)
    owlat_occ_retries_total                          transactions re-run after a write conflict
    owlat_occ_failures_total                         ... that still conflicted after the retries
    owlat_commits_total                              commits of this node (rate: commits/s)
    owlat_sync_sockets, owlat_subscriptions          open sync sockets, subscribed queries
    owlat_push_latency_seconds                       commit → the Transition showing it sent
    owlat_scheduler_queue_depth                      pending scheduled functions already due
    owlat_scheduler_lag_seconds                      how late the most overdue one is
    owlat_cron_runs_total{name}                      cron runs scheduled by this node
    owlat_storage_files, owlat_storage_bytes         files in `_storage` and their size
    owlat_backups_total{outcome}                     scheduled backups of this node, done/failed

The scheduler and storage figures are read from the database when scraped (storage at most
once a minute: it sums every file's size). An app adds its own metrics, process-wide, with
`define_counter` / `define_gauge` / `define_histogram` (e.g. messages sent per provider);
they are served after the runtime's.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from owlat.runtime.database.engine import KEY_MAX
from owlat.runtime.database.query import Query
from owlat.runtime.schema import BY_CREATION_TIME
from owlat.runtime.system_tables import JOBS_BY_STATE, PENDING, SCHEDULED_FUNCTIONS, STORAGE
from owlat.runtime.values import decode_stored

if TYPE_CHECKING:
    from owlat.runtime.application import Application
    from owlat.runtime.database.transaction import Transaction

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STORAGE_REFRESH_SECONDS = 60.0
# Latency buckets (seconds) of function calls and pushes: 1 ms to 10 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The app's own metrics: one registry for the process (metrics are defined at import).
APP_REGISTRY = CollectorRegistry()
_app_metrics: dict[str, MetricWrapperBase] = {}


def _define(
    kind: type[Any], name: str, documentation: str, labels: Sequence[str], **extra: Any
) -> Any:
    existing = _app_metrics.get(name)
    if existing is not None:
        if not isinstance(existing, kind):
            raise ValueError(f"metric {name!r} is already defined as a {type(existing).__name__}")
        return existing
    metric = kind(name, documentation, list(labels), registry=APP_REGISTRY, **extra)
    _app_metrics[name] = metric
    return metric


def define_counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A counter of the app, served by `/metrics` (defining it again returns the same one):
    `sent = define_counter("owlat_messages_sent", "Messages sent", ["provider"])`, then
    `sent.labels(provider="ses").inc()`."""
    counter: Counter = _define(Counter, name, documentation, labels)
    return counter


def define_gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    """A gauge of the app (see `define_counter`)."""
    gauge: Gauge = _define(Gauge, name, documentation, labels)
    return gauge


def define_histogram(
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    buckets: Sequence[float] = LATENCY_BUCKETS,
) -> Histogram:
    """A histogram of the app (see `define_counter`)."""
    histogram: Histogram = _define(Histogram, name, documentation, labels, buckets=buckets)
    return histogram


class RuntimeMetrics:
    """The runtime's metrics of one Application (see the module docstring)."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.calls = _CallStats()  # `calls.observe(...)`: one function call
        registry.register(self.calls)
        self.occ_retries = Counter(
            "owlat_occ_retries", "Transactions re-run after a write conflict", registry=registry
        )
        self.occ_failures = Counter(
            "owlat_occ_failures",
            "Transactions that still conflicted after their retries",
            registry=registry,
        )
        self.commits = Counter("owlat_commits", "Commits of this node", registry=registry)
        self.sync_sockets = Gauge("owlat_sync_sockets", "Open sync sockets", registry=registry)
        self.subscriptions = Gauge(
            "owlat_subscriptions", "Queries subscribed to by sync sockets", registry=registry
        )
        self.push_latency = _PushLatency()
        registry.register(self.push_latency)
        self.queue_depth = Gauge(
            "owlat_scheduler_queue_depth",
            "Pending scheduled functions already due",
            registry=registry,
        )
        self.scheduler_lag = Gauge(
            "owlat_scheduler_lag_seconds",
            "How late the most overdue pending scheduled function is",
            registry=registry,
        )
        self.cron_runs = Counter(
            "owlat_cron_runs", "Cron runs scheduled by this node", ["name"], registry=registry
        )
        self.storage_files = Gauge("owlat_storage_files", "Files in _storage", registry=registry)
        self.storage_bytes = Gauge(
            "owlat_storage_bytes", "Bytes of the files in _storage", registry=registry
        )
        self.backups = Counter(
            "owlat_backups", "Scheduled backups taken by this node", ["outcome"], registry=registry
        )
        self._storage_read_at = -STORAGE_REFRESH_SECONDS

    async def render(self, application: Application) -> bytes:
        """The text of `/metrics`: figures read from the database refreshed first."""
        await self._refresh(application)
        return generate_latest(self.registry) + generate_latest(APP_REGISTRY)

    async def _refresh(self, application: Application) -> None:
        now_ms = time.time() * 1000
        refresh_storage = time.monotonic() - self._storage_read_at >= STORAGE_REFRESH_SECONDS

        async def read(txn: Transaction) -> tuple[int, float | None, tuple[int, float] | None]:
            table = txn.catalog.table(SCHEDULED_FUNCTIONS)
            due = Query(txn, table).with_index(
                JOBS_BY_STATE, lambda q: q.eq("state.kind", PENDING).lte("scheduledTime", now_ms)
            )
            oldest = await due.first()
            depth = 0 if oldest is None else await due.count()
            storage = await _storage_size(txn) if refresh_storage else None
            return depth, None if oldest is None else float(oldest["scheduledTime"]), storage

        depth, oldest, storage = await application.run_system_read(read)
        self.queue_depth.set(depth)
        self.scheduler_lag.set(0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000))
        if storage is not None:
            self._storage_read_at = time.monotonic()
            self.storage_files.set(storage[0])
            self.storage_bytes.set(storage[1])


class _CallStats(Collector):
    """Function calls and their latency, kept as plain numbers (a call costs a dict lookup
    and a few additions on the event loop's thread, not prometheus-client's locks) and
    turned into `owlat_function_calls_total` and `owlat_function_duration_seconds` when
    scraped."""

    def __init__(self) -> None:
        # (path, kind) → [successes, errors, sum of seconds, count per bucket..., over all]
        self._stats: dict[tuple[str, str], list[float]] = {}

    def observe(self, path: str, kind: str, seconds: float, failed: bool) -> None:
        stats = self._stats.get((path, kind))
        if stats is None:
            stats = self._stats[(path, kind)] = [0.0] * (4 + len(LATENCY_BUCKETS))
        stats[1 if failed else 0] += 1
        stats[2] += seconds
        stats[3 + bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "owlat_function_calls",
            "Function calls by public path, kind and outcome",
            labels=["path", "kind", "outcome"],
        )
        duration = HistogramMetricFamily(
            "owlat_function_duration_seconds",
            "Function call latency by path and kind",
            labels=["path", "kind"],
        )
        for (path, kind), stats in list(self._stats.items()):
            calls.add_metric([path, kind, "success"], stats[0])
            calls.add_metric([path, kind, "error"], stats[1])
            cumulative, buckets = 0.0, []
            for bound, count in zip((*LATENCY_BUCKETS, math.inf), stats[3:], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
            duration.add_metric([path, kind], buckets, stats[2])
        yield calls
        yield duration


class _PushLatency(Collector):
    """`owlat_push_latency_seconds`, kept as plain numbers like `_CallStats` (it is observed
    once per pushed Transition: hundreds per commit on a shared query)."""

    def __init__(self) -> None:
        self._counts = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, then over all
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "owlat_push_latency_seconds", "From a commit to the sync Transition that shows it"
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), self._counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
        latency.add_metric([], buckets, self._sum)
        yield latency


async def _storage_size(txn: Transaction) -> tuple[int, float]:
    """The number of files in `_storage` and their total size, a page at a time."""
    index = txn.catalog.table(STORAGE).indexes[BY_CREATION_TIME]
    files, size, low = 0, 0.0, b""
    while rows := await txn.engine.scan(index.index_id, low, KEY_MAX, False, 1000, None):
        files += len(rows)
        size += sum(float(decode_stored(value)["size"]) for _, value in rows)
        low = rows[-1][0] + b"\x00"
    return files, size
