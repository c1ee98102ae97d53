"""electron.metrics: Prometheus metrics for an ArenaOfPools and electron's aiohttp middleware.

One process::

    mw = electron.aio.aiohttp.setup(app, aop)
    electron.metrics.setup_metrics(app)          # GET /metrics

:class:`ElectronCollector` reads ``aop.statistics()`` and the middleware's statistics when
Prometheus scrapes, so those figures cost nothing per request; the only per-request work is
one histogram observation (bytes used, by route) for each request that used electron memory.

Several worker processes (``examples/server.py --workers N``, gunicorn): set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before anything imports prometheus_client,
and every worker writes its figures there. Custom collectors are not aggregated across
processes, so in that mode each worker instead copies its figures into multiprocess-aware
gauges and counters (:class:`MultiprocessPublisher`) every ``interval`` seconds and before
answering a scrape; a scrape of any worker then sums (or takes the maximum of) all live
workers' figures. Call :func:`mark_process_dead` for a worker that exited (the server's
parent process, or gunicorn's ``child_exit`` hook). See ``docs/operating.md``.

Needs the ``metrics`` extra (prometheus-client); ``import electron`` does not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client import multiprocess as _mp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._arena_of_pools import ArenaOfPools as _ArenaOfPools

if TYPE_CHECKING:
    from aiohttp import web

__all__ = (
    "DEFAULT_BUCKETS",
    "METRICS",
    "ElectronCollector",
    "MetricSpec",
    "Metrics",
    "MultiprocessPublisher",
    "RouteHistogram",
    "UsageSource",
    "mark_process_dead",
    "multiprocess_enabled",
    "setup_metrics",
)

#: Buckets of the per-route histogram of bytes used per request: 256 B to 64 MiB by 4x.
DEFAULT_BUCKETS: tuple[float, ...] = tuple(float(256 << (2 * i)) for i in range(10))

GaugeMode = Literal["livesum", "livemax"]
_BY_SIZE_HELP = "Idle buffers kept for reuse, by size class (bytes)."


@dataclass(frozen=True)
class MetricSpec:
    """One exported figure: its name (without namespace), meaning, kind, and source field.

    ``source`` is ``"pool"`` (a field of :class:`~electron.ArenaOfPoolsStatistics`) or
    ``"middleware"`` (of
    :class:`~electron.aio.aiohttp.MiddlewareStatistics`); ``mode`` says how a gauge of
    several worker processes is combined in multiprocess mode (sum or maximum of the live
    workers). Counters are always summed.
    """

    name: str
    help: str
    counter: bool
    source: Literal["pool", "middleware"]
    field: str
    mode: GaugeMode = "livesum"


#: Every figure exported besides the per-route histogram (``<namespace>_request_bytes``).
#: Counter names get ``_total`` appended in the exposition.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("arenas_active", "Arenas lent out now.", False, "pool", "active_arenas"),
    MetricSpec("arenas_pooled", "Idle arenas kept for reuse.", False, "pool", "pooled_arenas"),
    MetricSpec("arenas_created", "Arena regions allocated fresh.", True, "pool", "arenas_created"),
    MetricSpec("arenas_reused", "Arena loans served from the pool.", True, "pool", "arenas_reused"),
    MetricSpec("buffers_active", "Pooled buffers lent out now.", False, "pool", "active_buffers"),
    MetricSpec("buffers_pooled", "Idle buffers kept for reuse.", False, "pool", "pooled_buffers"),
    MetricSpec(
        "buffers_created", "Buffer regions allocated fresh.", True, "pool", "buffers_created"
    ),
    MetricSpec(
        "reserved_bytes",
        "Bytes the pool holds: lent, idle and quarantined.",
        False,
        "pool",
        "bytes_reserved",
    ),
    MetricSpec(
        "in_use_bytes", "Bytes lent out now (arenas and buffers).", False, "pool", "bytes_in_use"
    ),
    MetricSpec(
        "high_water_bytes",
        "The most reserved_bytes has been (largest of the workers).",
        False,
        "pool",
        "high_water_bytes",
        "livemax",
    ),
    MetricSpec(
        "quarantined_regions",
        "Regions held back now because something still references them.",
        False,
        "pool",
        "quarantined",
    ),
    MetricSpec(
        "quarantine_events",
        "Times a region had to be held back because something still referenced it.",
        True,
        "pool",
        "quarantine_events",
    ),
    MetricSpec("budget_waiting", "Callers waiting for the budget now.", False, "pool", "waiting"),
    MetricSpec("budget_waits", "Arena requests that had to wait.", True, "pool", "waits"),
    MetricSpec(
        "budget_wait_timeouts",
        "Waits for the budget that timed out (PoolExhausted).",
        True,
        "pool",
        "wait_timeouts",
    ),
    MetricSpec("trimmed_bytes", "Idle bytes released by trimming.", True, "pool", "trimmed_bytes"),
    MetricSpec(
        "arena_used_bytes",
        "Bytes arenas had used when they came back, added up.",
        True,
        "pool",
        "arena_used_bytes_total",
    ),
    MetricSpec(
        "arena_used_max_bytes",
        "The most one arena had used when it came back (largest of the workers).",
        False,
        "pool",
        "arena_used_bytes_max",
        "livemax",
    ),
    MetricSpec(
        "leaks_detected",
        "Arenas and buffers garbage-collected without being given back.",
        True,
        "pool",
        "leaks_detected",
    ),
    MetricSpec(
        "arena_size_bytes",
        "Capacity of newly lent arenas (largest of the workers).",
        False,
        "pool",
        "arena_size",
        "livemax",
    ),
    MetricSpec(
        "http_requests", "HTTP requests that were lent an arena.", True, "middleware", "requests"
    ),
    MetricSpec(
        "http_in_flight",
        "HTTP requests whose memory is not given back yet.",
        False,
        "middleware",
        "in_flight",
    ),
    MetricSpec(
        "http_rejected",
        "HTTP requests answered 503 because the memory budget was exhausted.",
        True,
        "middleware",
        "rejected",
    ),
    MetricSpec(
        "http_deferred",
        "HTTP requests whose memory went back only after the response was sent.",
        True,
        "middleware",
        "deferred",
    ),
    MetricSpec(
        "http_flush_waits",
        "HTTP requests whose memory waited for the transport to flush.",
        True,
        "middleware",
        "flush_waits",
    ),
    MetricSpec(
        "http_errors", "Handlers that raised (not HTTP errors).", True, "middleware", "errors"
    ),
    MetricSpec("http_cancelled", "Handlers that were cancelled.", True, "middleware", "cancelled"),
    MetricSpec(
        "http_too_large", "Request bodies refused with 413.", True, "middleware", "too_large"
    ),
)


class UsageSource(Protocol):
    """What the metrics need of electron's aiohttp middleware (or any stand-in)."""

    def statistics(self) -> _HasAsDict:
        """The middleware's counters (a dataclass: ``asdict`` gives the figures)."""
        ...

    def add_usage_listener(self, listener: Callable[[str, int], object]) -> None:
        """Call ``listener(route, bytes_used)`` at the end of every request."""
        ...


class _HasAsDict(Protocol):
    def as_dict(self) -> dict[str, int]: ...


def _figures(aop: _ArenaOfPools, middleware: UsageSource | None) -> dict[str, dict[str, int]]:
    figures = {"pool": aop.statistics().as_dict()}
    if middleware is not None:
        figures["middleware"] = middleware.statistics().as_dict()
    return figures


def multiprocess_enabled() -> bool:
    """True when prometheus_client runs in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``).

    Raises :class:`RuntimeError` when the variable is set but prometheus_client was imported
    before it was (its metrics would silently stay per process).
    """
    wanted = "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ
    active = values.ValueClass is not values.MutexValue
    if wanted and not active:
        raise RuntimeError(
            "PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported: set it "
            "before the process starts (or before the first import of prometheus_client)"
        )
    return active


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges of worker ``pid``, which exited (multiprocess mode only).

    Its counters and histogram observations stay counted, as Prometheus expects of counters.
    """
    if multiprocess_enabled():
        _mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class ElectronCollector(Collector):
    """A Prometheus collector reading an ArenaOfPools (and a middleware) at scrape time.

    Costs nothing between scrapes. In multiprocess mode use :class:`MultiprocessPublisher`
    instead: custom collectors are not aggregated across processes.
    """

    def __init__(
        self,
        aop: _ArenaOfPools,
        middleware: UsageSource | None = None,
        *,
        namespace: str = "electron",
    ) -> None:
        if not isinstance(aop, _ArenaOfPools):
            raise TypeError(f"aop must be an ArenaOfPools, not {type(aop).__name__}")
        self.aop = aop
        self.middleware = middleware
        self.namespace = namespace
        self._specs = [s for s in METRICS if middleware is not None or s.source == "pool"]

    def _family(self, spec: MetricSpec, value: float | None) -> Metric:
        name = f"{self.namespace}_{spec.name}"
        if spec.counter:
            return CounterMetricFamily(name, spec.help, value=value)
        return GaugeMetricFamily(name, spec.help, value=value)

    def describe(self) -> Iterator[Metric]:
        """The metric families this collector yields, without reading the pool."""
        for spec in self._specs:
            yield self._family(spec, None)

    def collect(self) -> Iterator[Metric]:
        """The current figures, read from the pool (and middleware) at scrape time."""
        figures = _figures(self.aop, self.middleware)
        for spec in self._specs:
            yield self._family(spec, figures[spec.source][spec.field])
        by_size = GaugeMetricFamily(
            f"{self.namespace}_buffers_pooled_by_size", _BY_SIZE_HELP, labels=["size"]
        )
        for size, count in self.aop.buffer_pool.statistics().pooled_by_size:
            by_size.add_metric([str(size)], count)
        yield by_size


class MultiprocessPublisher:
    """Copies one worker's figures into multiprocess-aware gauges and counters.

    Call :meth:`publish` now and then (every few seconds) and before a scrape; gauges are
    set to the current figures (combined across live workers by each spec's ``mode``),
    counters grow by what happened since the last call (summed across every worker, past
    ones included). Make one per process.
    """

    def __init__(
        self,
        aop: _ArenaOfPools,
        middleware: UsageSource | None = None,
        *,
        namespace: str = "electron",
    ) -> None:
        if not multiprocess_enabled():
            raise RuntimeError("multiprocess mode is off: set PROMETHEUS_MULTIPROC_DIR")
        self.aop = aop
        self.middleware = middleware
        self._gauges: list[tuple[MetricSpec, Gauge]] = []
        self._counters: list[tuple[MetricSpec, Counter]] = []
        self._last: dict[str, int] = {}
        self._by_size = Gauge(
            f"{namespace}_buffers_pooled_by_size",
            _BY_SIZE_HELP,
            ["size"],
            registry=None,
            multiprocess_mode="livesum",
        )
        for spec in METRICS:
            if middleware is None and spec.source != "pool":
                continue
            name = f"{namespace}_{spec.name}"
            if spec.counter:
                self._counters.append((spec, Counter(name, spec.help, registry=None)))
            else:
                gauge = Gauge(name, spec.help, registry=None, multiprocess_mode=spec.mode)
                self._gauges.append((spec, gauge))

    def publish(self) -> None:
        """Write this process's current figures."""
        figures = _figures(self.aop, self.middleware)
        for spec, gauge in self._gauges:
            gauge.set(figures[spec.source][spec.field])
        for size, count in self.aop.buffer_pool.statistics().pooled_by_size:
            self._by_size.labels(str(size)).set(count)
        last = self._last
        for spec, counter in self._counters:
            key = f"{spec.source}.{spec.field}"
            value = figures[spec.source][spec.field]
            delta = value - last.get(key, 0)
            if delta > 0:
                counter.inc(delta)
            last[key] = value


class RouteHistogram(Collector):
    """A histogram of the bytes each request used, by route, fed by the middleware.

    One observation per request that used electron memory (arena bytes used plus pooled
    buffer capacity), made as its memory goes back; routes come from the middleware, which
    bounds their number (``max_routes``). An observation only counts into a per-route
    array (a few hundred nanoseconds); :meth:`flush` moves the counts into the
    prometheus_client histogram, which :meth:`collect` (a scrape of ``registry``) does
    first, and :class:`Metrics` does when it publishes in multiprocess mode.
    """

    def __init__(
        self,
        middleware: UsageSource,
        *,
        registry: CollectorRegistry | None,
        namespace: str = "electron",
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.histogram = Histogram(
            f"{namespace}_request_bytes",
            "Bytes of electron memory a request used (arena bytes used plus pooled buffer "
            "capacity), by route; requests that used none are not observed.",
            ["route"],
            buckets=buckets,
            registry=None,
        )
        bounds = [float(b) for b in buckets]
        if not bounds or bounds[-1] != float("inf"):
            bounds.append(float("inf"))  # as prometheus_client does
        self._bounds = bounds
        self._pending: dict[str, list[float]] = {}  # route -> [count per bucket..., sum]
        self._lock = threading.Lock()
        self._children: dict[str, Histogram] = {}
        # Moving counts in bulk needs prometheus_client's per-bucket values; without them
        # (another version) every observation is replayed one by one. Known on first flush.
        self._bulk: bool | None = None
        if registry is not None:
            registry.register(self)
        middleware.add_usage_listener(self.observe)

    def observe(self, route: str, nbytes: int) -> None:
        """Record that a request of ``route`` used ``nbytes``."""
        i = bisect_left(self._bounds, nbytes)
        with self._lock:
            pending = self._pending.get(route)
            if pending is None:
                pending = self._pending[route] = [0.0] * (len(self._bounds) + 1)
            pending[i] += 1
            pending[-1] += nbytes

    def flush(self) -> None:
        """Move the observations made since the last flush into the histogram."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for route, counts in pending.items():
            child = self._children.get(route)
            if child is None:
                child = self._children[route] = self.histogram.labels(route)
            if self._bulk is None:
                found = getattr(child, "_buckets", ())
                self._bulk = len(found) == len(self._bounds) and hasattr(child, "_sum")
            if self._bulk:
                buckets = child._buckets
                for i, count in enumerate(counts[:-1]):
                    if count:
                        buckets[i].inc(count)
                child._sum.inc(counts[-1])
            else:
                for i, count in enumerate(counts[:-1]):
                    # The bucket's upper bound stands for its observations; the sum is
                    # then approximate (only with an unknown prometheus_client).
                    for _ in range(int(count)):
                        child.observe(min(self._bounds[i], counts[-1]))

    def describe(self) -> Iterable[Metric]:
        """The histogram's metric family, without flushing pending observations."""
        return self.histogram.describe()

    def collect(self) -> Iterable[Metric]:
        """Flush what requests recorded since the last scrape, then the histogram."""
        self.flush()
        return self.histogram.collect()


class Metrics:
    """Every electron metric of one ArenaOfPools (and its middleware), in either mode.

    Single process: an :class:`ElectronCollector` and a :class:`RouteHistogram` registered
    in ``registry`` (default: prometheus_client's global one). Multiprocess mode (detected
    from ``PROMETHEUS_MULTIPROC_DIR``): a :class:`MultiprocessPublisher` and the histogram
    in the shared directory; :meth:`exposition` aggregates every worker.
    """

    def __init__(
        self,
        aop: _ArenaOfPools,
        middleware: UsageSource | None = None,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "electron",
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.aop = aop
        self.middleware = middleware
        self.multiprocess = multiprocess_enabled()
        self.publisher: MultiprocessPublisher | None = None
        self.collector: ElectronCollector | None = None
        self.histogram: RouteHistogram | None = None
        if self.multiprocess:
            self.registry = None
            self.publisher = MultiprocessPublisher(aop, middleware, namespace=namespace)
        else:
            self.registry = REGISTRY if registry is None else registry
            self.collector = ElectronCollector(aop, middleware, namespace=namespace)
            self.registry.register(self.collector)
        if middleware is not None:
            self.histogram = RouteHistogram(
                middleware, registry=self.registry, namespace=namespace, buckets=buckets
            )

    def publish(self) -> None:
        """Multiprocess mode: write this worker's current figures (a no-op otherwise)."""
        if self.publisher is not None:
            self.publisher.publish()
            if self.histogram is not None:
                self.histogram.flush()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (all workers in multiprocess mode)."""
        if self.registry is not None:
            return generate_latest(self.registry)
        self.publish()
        registry = CollectorRegistry()
        _mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """Unregister from the registry (single process). Idempotent."""
        if self.registry is None:
            return
        parts: list[Collector] = []
        if self.collector is not None:
            parts.append(self.collector)
        if self.histogram is not None:
            parts.append(self.histogram)
        for part in parts:
            with contextlib.suppress(KeyError):
                self.registry.unregister(part)
        self.collector = None


def setup_metrics(
    app: web.Application,
    *,
    path: str = "/metrics",
    interval: float = 5.0,
    registry: CollectorRegistry | None = None,
    namespace: str = "electron",
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> Metrics:
    """Serve ``GET path`` with the metrics of ``app``'s pool and middleware.

    Call it after :func:`electron.aio.aiohttp.setup`. ``path`` is excluded from the
    middleware. In multiprocess mode this worker publishes its figures every ``interval``
    seconds while the app runs (and once more at cleanup, before it forgets its live
    gauges). Returns the :class:`Metrics`.
    """
    from aiohttp import web as _web

    from .aio.aiohttp import AOP_KEY, MIDDLEWARE_KEY

    if interval <= 0:
        raise ValueError(f"interval must be > 0, not {interval!r}")
    try:
        aop = app[AOP_KEY]
    except KeyError:
        raise LookupError(
            "call electron.aio.aiohttp.setup(app, aop) before setup_metrics(app)"
        ) from None
    mw = app.get(MIDDLEWARE_KEY)
    metrics = Metrics(aop, mw, registry=registry, namespace=namespace, buckets=buckets)
    if mw is not None:
        mw.exclude = mw.exclude | {path}

    async def handler(request: _web.Request) -> _web.StreamResponse:
        body = metrics.exposition()
        return _web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def publishing(app: _web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_publish_every(metrics, interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            metrics.publish()
            metrics.close()
            if metrics.multiprocess:
                mark_process_dead(os.getpid())  # this worker's live gauges go with it

    app.router.add_get(path, handler)
    app.cleanup_ctx.append(publishing)
    return metrics


async def _publish_every(metrics: Metrics, interval: float) -> None:
    if not metrics.multiprocess:
        return
    while True:
        metrics.publish()
        await asyncio.sleep(interval)


def _names(namespace: str = "electron") -> Iterable[str]:
    """Every metric name as exposed (for docs and tests)."""
    for spec in METRICS:
        yield f"{namespace}_{spec.name}" + ("_total" if spec.counter else "")
    yield f"{namespace}_buffers_pooled_by_size"
    yield f"{namespace}_request_bytes"
