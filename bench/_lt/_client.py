"""The load generator: closed-loop aiohttp clients in one process, and the process pool.

``run_job`` drives one process's share of the load for one round against one server and
returns a picklable :class:`JobResult` (counts, errors by kind, encoded HDR histograms per
route and per timeline bucket, CPU time). ``ClientPool`` keeps ``n`` worker processes alive
across rounds, so each round starts in milliseconds; workers publish live counters in a
shared array the parent reads for the progress display.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import multiprocessing as mp
import os
import random
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any
from urllib.parse import quote

import aiohttp

from ._hist import LatencyHistogram
from ._mix import Route
from ._verify import (
    PatternCache,
    check_bytes,
    check_hello,
    check_json,
    check_render,
    check_upload,
    render_name,
    sha256_hex,
)

__all__ = ("SLOTS", "ClientPool", "Job", "JobResult", "RouteResult", "run_job")

SLOTS = 2  # live counters per worker in the shared array: ok, errors
_MAX_SAMPLES = 8  # error messages kept per kind


@dataclass(frozen=True, slots=True)
class Job:
    """One process's share of one round. Times are ``time.monotonic()`` (shared by processes)."""

    url: str
    routes: tuple[Route, ...]
    concurrency: int
    start_at: float
    duration: float
    requests: int | None = None
    timeout: float = 30.0
    interval: float = 1.0
    token_base: int = 0
    record: bool = True
    seed: int = 0
    upload_size: int = 16384
    json_reference: bytes | None = None
    slow_readers: int = 0
    slow_size: int = 1 << 20
    slow_chunk: int = 8192
    slow_pause: float = 0.002
    slow_rcvbuf: int = 4096
    burst_workers: int = 0
    burst_windows: tuple[tuple[float, float], ...] = ()


@dataclass(slots=True)
class RouteResult:
    """Per-route counts and the encoded latency histogram (3 significant digits)."""

    ok: int = 0
    errors: int = 0
    bytes_in: int = 0
    hist: bytes = b""


@dataclass(slots=True)
class JobResult:
    """What one process measured in one round; ``crashed`` holds a traceback if it failed."""

    index: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    routes: dict[str, RouteResult] = field(default_factory=dict)
    timeline: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    crashed: str | None = None
    gc_collections: int = 0  # this process's garbage collections during the job
    gc_s: float = 0.0  # the time they took
    gc_max_pause_s: float = 0.0  # the longest one (every request in flight waited for it)


class _GcClock:
    """Counts this process's garbage collections and times them (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.longest = 0.0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            took = time.perf_counter() - self._t0
            self.count += 1
            self.total += took
            self.longest = max(self.longest, took)

    def __enter__(self) -> _GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class _Bucket:
    __slots__ = ("errors", "hist", "ok")

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.hist = LatencyHistogram(2)


class _RouteAcc:
    __slots__ = ("bytes_in", "errors", "hist", "ok")

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.bytes_in = 0
        self.hist = LatencyHistogram(3)


def _small_rcvbuf_socket(rcvbuf: int, addr_info: Any) -> socket.socket:
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, type_, proto)
    # Before connect(), so the advertised TCP window starts small: the server's writes stall.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return sock


class _Load:
    """State of one round in one process (single event loop, no locks needed)."""

    def __init__(self, job: Job, index: int, live: Any) -> None:
        self.job = job
        self.index = index
        self.live = live
        self.base = job.url.rstrip("/")
        self.deadline = job.start_at + job.duration
        self.remaining = job.requests
        self.token = job.token_base
        self.rng = random.Random(job.seed)
        self.routes = job.routes
        self.cum_weights = list(_cumulative(r.weight for r in job.routes))
        self.patterns = PatternCache(max((r.size for r in job.routes if r.kind == "bytes"),
                                         default=0))
        self.upload_block = random.Random(job.seed ^ 0x5EED).randbytes(max(job.upload_size, 8))
        self.result = JobResult(index)
        self.by_route: dict[str, _RouteAcc] = {}
        self.buckets: dict[int, _Bucket] = {}
        self.ok = 0
        self.errors = 0

    # -- bookkeeping -------------------------------------------------------------------------
    def _take(self) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        return True

    def _bucket(self) -> _Bucket:
        i = int((time.monotonic() - self.job.start_at) / self.job.interval)
        b = self.buckets.get(i)
        if b is None:
            b = self.buckets[i] = _Bucket()
        return b

    def _route(self, name: str) -> _RouteAcc:
        acc = self.by_route.get(name)
        if acc is None:
            acc = self.by_route[name] = _RouteAcc()
        return acc

    def success(self, name: str, ns: int, nbytes: int, timeline: bool = True) -> None:
        self.ok += 1
        acc = self._route(name)
        acc.ok += 1
        acc.bytes_in += nbytes
        self.result.bytes_in += nbytes
        if self.job.record:
            us = (ns + 500) // 1000
            acc.hist.record(us)
            b = self._bucket()
            b.ok += 1
            if timeline:  # slow readers' downloads would swamp the timeline's p99
                b.hist.record(us)
        if self.live is not None:
            self.live[self.index * SLOTS] = self.ok

    def failure(self, name: str, kind: str, detail: str) -> None:
        self.errors += 1
        self._route(name).errors += 1
        errs = self.result.errors
        errs[kind] = errs.get(kind, 0) + 1
        samples = self.result.samples.setdefault(kind, [])
        if len(samples) < _MAX_SAMPLES:
            samples.append(detail[:300])
        if self.job.record:
            self._bucket().errors += 1
        if self.live is not None:
            self.live[self.index * SLOTS + 1] = self.errors

    # -- requests ----------------------------------------------------------------------------
    async def one(self, session: aiohttp.ClientSession, route: Route) -> None:
        self.token += 1
        token = self.token
        base = self.base
        check: Callable[[bytes], str | None]
        data: bytes | None = None
        kind = route.kind
        if kind == "hello":
            url = base + "/"
            check = check_hello
        elif kind == "json":
            url = base + "/json"
            check = functools.partial(check_json, reference=self.job.json_reference)
        elif kind == "bytes":
            seed = token & 0x7FFFFFFF
            url = f"{base}/bytes/{route.size}?seed={seed}"
            check = functools.partial(check_bytes, n=route.size, seed=seed, cache=self.patterns)
        elif kind == "render":
            url = f"{base}/render?name={quote(render_name(token))}&items={route.size}"
            check = functools.partial(check_render, token=token, items=route.size)
        else:  # upload: a unique body, so an echo of another request's digest fails
            data = token.to_bytes(8, "little") + self.upload_block[8 : route.size]
            data = data[: route.size]
            check = functools.partial(check_upload, size=len(data), sha256_hex=sha256_hex(data))
            url = base + "/upload"
        t0 = time.perf_counter_ns()
        try:
            async with session.request(route.method, url, data=data) as resp:
                body = await resp.read()
                status = resp.status
        except Exception as exc:
            self.failure(route.name, _classify(exc), f"{route.method} {url}: {exc!r}")
            return
        ns = time.perf_counter_ns() - t0
        if data is not None:
            self.result.bytes_out += len(data)
        if status != 200:
            self.failure(route.name, f"http_{status}", f"{route.method} {url}: {body[:120]!r}")
            return
        reason = check(body)
        if reason is not None:
            self.failure(route.name, "bad_body", reason)
            return
        self.success(route.name, ns, len(body))

    async def slow_one(self, session: aiohttp.ClientSession) -> None:
        job = self.job
        self.token += 1
        seed = self.token & 0x7FFFFFFF
        name = f"/bytes/{job.slow_size} (slow reader)"
        url = f"{self.base}/bytes/{job.slow_size}?seed={seed}"
        t0 = time.perf_counter_ns()
        buf = bytearray()
        try:
            async with session.get(url) as resp:
                status = resp.status
                while chunk := await resp.content.read(job.slow_chunk):
                    buf += chunk
                    await asyncio.sleep(job.slow_pause)
        except Exception as exc:
            self.failure(name, _classify(exc), f"GET {url} (slow reader): {exc!r}")
            return
        ns = time.perf_counter_ns() - t0
        if status != 200:
            self.failure(name, f"http_{status}", f"GET {url}: {bytes(buf[:120])!r}")
            return
        reason = check_bytes(buf, job.slow_size, seed, self.patterns)
        if reason is not None:
            self.failure(name, "bad_body", reason + " (slow reader)")
            return
        self.success(name, ns, len(buf), timeline=False)

    # -- workers -----------------------------------------------------------------------------
    async def worker(self, session: aiohttp.ClientSession, window: tuple[float, float] | None
                     ) -> None:
        rng, routes, cw = self.rng, self.routes, self.cum_weights
        end = self.deadline
        if window is not None:
            start, end = self.job.start_at + window[0], self.job.start_at + window[1]
            await asyncio.sleep(max(0.0, start - time.monotonic()))
        else:
            await asyncio.sleep(max(0.0, self.job.start_at - time.monotonic()))
        while time.monotonic() < end and self._take():
            await self.one(session, rng.choices(routes, cum_weights=cw)[0])

    async def slow_worker(self, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(max(0.0, self.job.start_at - time.monotonic()))
        while self._take():
            await self.slow_one(session)


def _cumulative(weights: Any) -> Any:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "payload"
    if isinstance(exc, aiohttp.ClientOSError):
        return "os_error"
    return f"exception_{type(exc).__name__}"


def _session(job: Job, connections: int, *, slow: bool = False) -> aiohttp.ClientSession:
    kwargs: dict[str, Any] = {}
    if slow:
        kwargs["socket_factory"] = functools.partial(_small_rcvbuf_socket, job.slow_rcvbuf)
    connector = aiohttp.TCPConnector(limit=max(connections, 1), ttl_dns_cache=None, **kwargs)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=job.timeout),
        read_bufsize=job.slow_chunk if slow else 2**18,
    )


async def run_job(job: Job, index: int = 0, live: Any = None) -> JobResult:
    """Run ``job`` on the current event loop and return what it measured.

    Requests start until ``job.duration`` has passed (or the request quota is used up);
    requests in flight then finish, bounded by ``job.timeout``, after which stragglers are
    cancelled and not counted.
    """
    load = _Load(job, index, live)
    cpu0 = time.process_time()
    normal = job.concurrency + job.burst_workers
    async with contextlib.AsyncExitStack() as stack:
        gc_clock = stack.enter_context(_GcClock())
        session = await stack.enter_async_context(_session(job, normal))
        tasks = [asyncio.ensure_future(load.worker(session, None)) for _ in range(job.concurrency)]
        windows = job.burst_windows or ()
        for w in windows:
            tasks += [asyncio.ensure_future(load.worker(session, w))
                      for _ in range(job.burst_workers)]
        if job.slow_readers:
            slow = await stack.enter_async_context(_session(job, job.slow_readers, slow=True))
            tasks += [asyncio.ensure_future(load.slow_worker(slow))
                      for _ in range(job.slow_readers)]
        hard_stop = job.start_at + job.duration + job.timeout + 1.0
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, hard_stop - time.monotonic()))
        for t in pending:
            t.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome
    res = load.result
    res.wall_s = max(1e-9, time.monotonic() - job.start_at)
    res.cpu_s = time.process_time() - cpu0
    res.gc_collections, res.gc_s = gc_clock.count, gc_clock.total
    res.gc_max_pause_s = gc_clock.longest
    res.ok = load.ok
    res.routes = {
        name: RouteResult(a.ok, a.errors, a.bytes_in, a.hist.encode() if a.hist.count else b"")
        for name, a in load.by_route.items()
    }
    res.timeline = [
        (i, b.ok, b.errors, b.hist.encode() if b.hist.count else b"")
        for i, b in sorted(load.buckets.items())
    ]
    return res


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _worker_main(index: int, conn: Connection, live: Any, use_uvloop: bool) -> None:
    factory = _loop_factory(use_uvloop)
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                result = runner.run(run_job(job, index, live))
        except Exception:
            result = JobResult(index, crashed=traceback.format_exc())
        conn.send(result)


class ClientPool:
    """``n`` long-lived client processes; ``run`` hands each its job and collects results.

    Live counters (ok, errors per worker) are readable through :meth:`live_totals` while a
    round runs. Use as a context manager so the workers are always stopped.
    """

    def __init__(self, n: int, *, use_uvloop: bool = True, max_n: int | None = None,
                 wait: bool = True) -> None:
        self._ctx = mp.get_context("spawn")  # never fork a parent that runs threads
        self._uvloop = use_uvloop
        self.max_n = max(n, max_n or n)
        self.n = 0
        self.live: Any = self._ctx.Array("q", self.max_n * SLOTS, lock=False)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._ready = 0
        self._closed = False
        self.grow(n, wait=wait)

    def grow(self, k: int = 1, *, wait: bool = True) -> int:
        """Start ``k`` more workers (up to ``max_n``); returns how many there are now.

        With ``wait=False`` the workers import in the background; call :meth:`wait_ready`
        before the first round.
        """
        for i in range(len(self._procs), min(len(self._procs) + k, self.max_n)):
            parent, child = self._ctx.Pipe()
            p = self._ctx.Process(target=_worker_main, args=(i, child, self.live, self._uvloop),
                                  name=f"loadtest-client-{i}", daemon=True)
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)
        self.n = len(self._procs)
        if wait:
            self.wait_ready()
        return self.n

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every started worker has finished importing (rounds start on time)."""
        for i in range(self._ready, len(self._conns)):
            conn = self._conns[i]
            try:
                ok = conn.poll(timeout) and conn.recv() == "ready"
            except (EOFError, OSError):
                ok = False
            if not ok:
                self.close()
                raise RuntimeError(f"client process {i} did not start")
        self._ready = len(self._conns)

    @property
    def pids(self) -> list[int]:
        return [int(p.pid) for p in self._procs]

    def live_totals(self) -> tuple[int, int]:
        """Requests completed and errors so far in the current round, over all workers."""
        live = self.live
        ok = sum(live[i * SLOTS] for i in range(self.n))
        err = sum(live[i * SLOTS + 1] for i in range(self.n))
        return ok, err

    def start(self, jobs: Sequence[Job]) -> None:
        """Send one job per worker (``len(jobs) == n``) without waiting."""
        for i in range(len(self.live)):
            self.live[i] = 0
        for conn, job in zip(self._conns, jobs, strict=True):
            conn.send(job)

    def collect(self, poll: Callable[[], None], every: float = 0.2,
                deadline: float | None = None) -> list[JobResult]:
        """Wait for every worker's result, calling ``poll()`` every ``every`` seconds."""
        results: dict[int, JobResult] = {}
        while len(results) < self.n:
            for i, conn in enumerate(self._conns):
                if i not in results and conn.poll(0):
                    try:
                        results[i] = conn.recv()
                    except (EOFError, OSError) as exc:
                        results[i] = JobResult(i, crashed=f"client process lost: {exc!r}")
            for i, p in enumerate(self._procs):
                if i not in results and not p.is_alive():
                    results[i] = JobResult(i, crashed=f"client process exited ({p.exitcode})")
            if deadline is not None and time.monotonic() > deadline:
                for i in range(self.n):
                    results.setdefault(i, JobResult(i, crashed="client process timed out"))
                break
            poll()
            if len(results) < self.n:
                wait([c for i, c in enumerate(self._conns) if i not in results], timeout=every)
        return [results[i] for i in range(self.n)]

    def close(self, *, force: bool = False) -> None:
        """Stop every worker (idempotent); ``force`` ends them at once, mid-round or not."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + (0.0 if force else 5.0)
        while any(p.is_alive() for p in self._procs) and time.monotonic() < deadline:
            for conn in self._conns:  # a result nobody collected must not block its sender
                with contextlib.suppress(EOFError, OSError):
                    while conn.poll(0):
                        conn.recv()
            wait([p.sentinel for p in self._procs if p.is_alive()], timeout=0.05)
        for p in self._procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=2)
        for conn in self._conns:
            conn.close()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as integers allow (earlier parts get more)."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def cpu_count() -> int:
    return os.cpu_count() or 1
