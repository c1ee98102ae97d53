"""electron.metrics in one process: every figure exposed, and right after a known sequence.

The app runs in-process with a registry of its own; ``/metrics`` is parsed with
prometheus_client's own parser and compared with what the sequence must have produced and
with ``aop.statistics()`` / the middleware's statistics.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import electron
from electron import metrics
from electron.aio import current_arena
from electron.aio.aiohttp import PooledResponse, request_buffer, setup
from tests.support import anyio_backend, serve  # noqa: F401 - anyio_backend: the asyncio-only backends

pytestmark = pytest.mark.anyio


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return parse(await resp.text())


def known_app(aop: electron.ArenaOfPools) -> tuple[web.Application, CollectorRegistry]:
    app = web.Application()
    setup(app, aop, current_arena=True, acquire_timeout=0.05)
    registry = CollectorRegistry()
    metrics.setup_metrics(app, registry=registry)

    async def alloc(request: web.Request) -> web.StreamResponse:
        current_arena().alloc(int(request.match_info["n"]))
        return web.Response(text="alloc")

    async def buffer(request: web.Request) -> web.StreamResponse:
        # A 40 KiB size class, more than a PooledResponse copies: its release is deferred.
        buf = request_buffer(request, 40960)
        buf.write(b"b" * 40960)
        return PooledResponse(buf)

    async def plain(request: web.Request) -> web.StreamResponse:
        return web.Response(text="plain")

    app.router.add_get("/alloc/{n}", alloc)
    app.router.add_get("/buffer", buffer)
    app.router.add_get("/plain", plain)
    return app, registry


async def test_figures_after_a_known_sequence() -> None:
    aop = electron.ArenaOfPools(arena_size=16 << 10, max_arenas=4)
    app, _ = known_app(aop)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        before = await scrape(session, url)
        for name in metrics._names():
            if name.endswith(("request_bytes", "_by_size")):
                continue  # labelled by route / size class: no series before any use
            assert (name, ()) in before, f"{name} missing"
        assert value(before, "electron_arenas_active") == 0
        for n in (64, 640, 6400):
            async with session.get(f"{url}/alloc/{n}") as resp:
                assert resp.status == 200
        for _ in range(3):
            async with session.get(f"{url}/buffer") as resp:
                assert len(await resp.read()) == 40960
        for _ in range(4):
            async with session.get(f"{url}/plain") as resp:
                assert await resp.text() == "plain"
        async with session.get(f"{url}/nowhere") as resp:
            assert resp.status == 404
        for _ in range(500):  # pooled memory goes back once the responses were flushed
            if aop.statistics().active_buffers == aop.statistics().active_arenas == 0:
                break
            await asyncio.sleep(0.01)
        after = await scrape(session, url)
        s = aop.statistics()  # (the app's cleanup closes the pool)

    # The middleware: only requests that used electron memory are lent an arena.
    assert value(after, "electron_http_requests_total") == 6
    assert value(after, "electron_http_deferred_total") == 3  # the pooled responses
    assert value(after, "electron_http_in_flight") == 0
    assert value(after, "electron_http_rejected_total") == 0
    # Per route: bytes used per request.
    alloc = {"route": "/alloc/{n}"}
    assert value(after, "electron_request_bytes_count", **alloc) == 3
    assert value(after, "electron_request_bytes_sum", **alloc) == 64 + 640 + 6400
    assert value(after, "electron_request_bytes_bucket", le="1024.0", **alloc) == 2
    assert value(after, "electron_request_bytes_bucket", le="16384.0", **alloc) == 3
    buf = {"route": "/buffer"}
    assert value(after, "electron_request_bytes_count", **buf) == 3
    assert value(after, "electron_request_bytes_sum", **buf) == 3 * 40960
    assert ("electron_request_bytes_count", (("route", "/plain"),)) not in after
    # The pool, read at scrape time: exactly what stats() says.
    assert value(after, "electron_arenas_active") == s.active_arenas == 0
    assert value(after, "electron_buffers_active") == s.active_buffers == 0
    assert value(after, "electron_in_use_bytes") == s.bytes_in_use == 0
    assert value(after, "electron_arenas_created_total") == s.arenas_created >= 1
    assert value(after, "electron_arenas_reused_total") == s.arenas_reused
    assert s.arenas_created + s.arenas_reused == 6  # one loan per request that used memory
    assert value(after, "electron_arenas_pooled") == s.pooled_arenas == s.arenas_created
    assert value(after, "electron_buffers_created_total") == s.buffers_created >= 1
    assert value(after, "electron_buffers_pooled") == s.pooled_buffers == s.buffers_created
    assert value(after, "electron_arena_used_bytes_total") == 64 + 640 + 6400
    assert value(after, "electron_arena_used_max_bytes") == 6400
    reserved = 16384 * s.arenas_created + 40960 * s.buffers_created
    assert value(after, "electron_reserved_bytes") == s.bytes_reserved == reserved
    assert value(after, "electron_high_water_bytes") == s.high_water_bytes >= reserved
    assert value(after, "electron_arena_size_bytes") == 16384
    assert value(after, "electron_leaks_detected_total") == 0
    assert value(after, "electron_quarantined_regions") == 0


async def test_503s_waits_and_timeouts_are_counted() -> None:
    aop = electron.ArenaOfPools(arena_size=4096, max_arenas=1)
    app, _ = known_app(aop)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        current_arena()
        holding.set()
        await release.wait()
        return web.Response(text="held")

    app.router.add_get("/hold", hold)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        held = asyncio.ensure_future(session.get(url + "/hold"))
        await holding.wait()
        for _ in range(3):  # the budget is spent: they queue, time out and get 503
            async with session.get(f"{url}/alloc/16") as resp:
                assert resp.status == 503
        during = await scrape(session, url)
        release.set()
        async with await held as resp:
            assert resp.status == 200
        after = await scrape(session, url)
    assert value(during, "electron_arenas_active") == 1
    assert value(during, "electron_http_in_flight") == 1
    assert value(after, "electron_http_rejected_total") == 3
    assert value(after, "electron_budget_waits_total") == 3
    assert value(after, "electron_budget_wait_timeouts_total") == 3
    assert value(after, "electron_budget_waiting") == 0
    assert value(after, "electron_arenas_active") == 0


@pytest.mark.electron_leaks_expected
def test_leaks_and_quarantine_are_exposed() -> None:
    aop = electron.ArenaOfPools(arena_size=4096)
    registry = CollectorRegistry()
    m = metrics.Metrics(aop, registry=registry)
    # A region still referenced when its arena comes back is quarantined ...
    arena = aop.get_arena()
    kept = memoryview(arena.alloc(100))  # a second export: survives the arena's release
    aop.return_arena(arena)
    # ... and an arena dropped without being given back is a leak (reclaimed by the GC).
    leaked = aop.get_arena()
    leaked.alloc(10)
    with warnings.catch_warnings():  # a traced leak is also reported (ResourceWarning)
        warnings.simplefilter("ignore", ResourceWarning)
        del leaked
        gc.collect()
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "electron_quarantined_regions") == 1
    assert value(samples, "electron_quarantine_events_total") == 1
    assert value(samples, "electron_leaks_detected_total") == 1
    assert ("electron_http_requests_total", ()) not in samples  # no middleware: pool only
    kept.release()
    m.close()
    assert generate_latest(registry) == b""  # unregistered
    m.close()  # idempotent
    aop.close()


def test_collector_reads_at_scrape_time_only(aop: electron.ArenaOfPools) -> None:
    registry = CollectorRegistry()
    registry.register(metrics.ElectronCollector(aop, namespace="edge"))
    first = parse(generate_latest(registry).decode())
    with aop.arena() as arena:
        arena.alloc(128)
        inside = parse(generate_latest(registry).decode())
    assert value(first, "edge_arenas_active") == 0
    assert value(inside, "edge_arenas_active") == 1
    assert value(inside, "edge_in_use_bytes") == aop.arena_size
    with pytest.raises(TypeError):
        metrics.ElectronCollector(object())  # type: ignore[arg-type]


def test_importing_electron_does_not_import_prometheus_client() -> None:
    code = "import sys, electron, electron.aio; assert 'prometheus_client' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_multiprocess_dir_set_too_late_is_an_error(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, prometheus_client
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.getcwd()
        from electron import metrics
        try:
            metrics.multiprocess_enabled()
        except RuntimeError as exc:
            assert "before" in str(exc)
        else:
            raise SystemExit("no error")
        """
    )
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env, cwd=tmp_path)


def test_setup_metrics_needs_the_middleware() -> None:
    with pytest.raises(LookupError, match="setup"):
        metrics.setup_metrics(web.Application(), registry=CollectorRegistry())
    app = web.Application()
    aop = electron.ArenaOfPools(arena_size=4096)
    setup(app, aop)
    with pytest.raises(ValueError, match="interval"):
        metrics.setup_metrics(app, interval=0, registry=CollectorRegistry())
    aop.close()


def test_every_metric_is_documented() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operating.md").read_text("utf-8")
    missing = [name for name in metrics._names() if f"`{name}`" not in text]
    assert not missing, f"docs/operating.md does not explain {missing}"


def test_pooled_buffers_by_size_class(aop: electron.ArenaOfPools) -> None:
    registry = CollectorRegistry()
    registry.register(metrics.ElectronCollector(aop))
    bufs = [aop.get_buffer(n) for n in (100, 100, 3000, 70_000)]
    for buf in bufs:
        aop.return_buffer(buf)
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    by_size = families["electron_buffers_pooled_by_size"].samples
    samples = {s.labels["size"]: s.value for s in by_size}
    assert samples == {"256": 2.0, "3072": 1.0, "81920": 1.0}  # four classes per power of 2
    assert sum(samples.values()) == aop.statistics().pooled_buffers
