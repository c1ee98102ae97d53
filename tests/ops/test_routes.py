"""Per-route accounting: what each request took, by route, adds up.

Every request that used electron memory records, as its memory goes back, the arena bytes it
used plus the capacity of the pooled buffers it took, under its route's canonical path. The
totals per route, the histogram in the metrics and the example server's ``/stats`` must
agree with a sequence of requests whose sizes are known.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import electron
from electron import metrics
from electron.aio import current_arena
from electron.aio.aiohttp import (
    MIDDLEWARE_KEY,
    Middleware,
    PooledResponse,
    RouteUsage,
    read_body,
    request_buffer,
    setup,
)
from tests.support import anyio_backend, load_example, serve  # noqa: F401 - anyio_backend: the asyncio-only backends

pytestmark = pytest.mark.anyio


async def settled(aop: electron.ArenaOfPools, mw: Middleware) -> None:
    for _ in range(1000):
        s = aop.statistics()
        if s.active_arenas == s.active_buffers == mw.statistics().in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"memory still lent: {aop.statistics()}")


def size_class(n: int) -> int:
    """The capacity of a pooled buffer asked for ``n`` bytes."""
    return electron.BufferPool().size_class(n)


async def test_route_totals_add_up_to_what_each_request_took(
    aop: electron.ArenaOfPools,
) -> None:
    app = web.Application()
    registry = CollectorRegistry()
    mw = setup(app, aop, current_arena=True)
    metrics.setup_metrics(app, registry=registry)

    async def arena_route(request: web.Request) -> web.StreamResponse:
        for part in request.query.getall("a"):
            current_arena().alloc(int(part))
        return web.Response(text="arena")

    async def buffer_route(request: web.Request) -> web.StreamResponse:
        sizes = [int(part) for part in request.query.getall("b")]
        bufs = [request_buffer(request, n) for n in sizes]
        current_arena().alloc(int(request.query.get("a", "0")))
        bufs[0].write(b"x" * sizes[0])
        return PooledResponse(bufs[0])

    async def upload_route(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        return web.Response(text=str(len(body)))

    async def failing_route(request: web.Request) -> web.StreamResponse:
        request_buffer(request, 1000)
        raise web.HTTPConflict(text="no")

    async def untouched(request: web.Request) -> web.StreamResponse:
        return web.Response(text="nothing")

    app.router.add_get("/arena", arena_route)
    app.router.add_get("/buffer/{id}", buffer_route)
    app.router.add_post("/upload", upload_route)
    app.router.add_get("/conflict", failing_route)
    app.router.add_get("/untouched", untouched)

    rng = random.Random(8)
    expected: dict[str, list[int]] = {}

    def took(route: str, nbytes: int) -> None:
        expected.setdefault(route, []).append(nbytes)

    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(30):
            kind = rng.randrange(5)
            if kind == 0:
                parts = [rng.choice([16, 64, 1024, 4000]) for _ in range(rng.randrange(1, 4))]
                query = "&".join(f"a={p}" for p in parts)
                async with session.get(f"{url}/arena?{query}") as resp:
                    assert await resp.text() == "arena"
                took("/arena", sum(parts))  # multiples of 16: no alignment padding
            elif kind == 1:
                sizes = [rng.choice([10, 300, 5000, 70_000]) for _ in range(rng.randrange(1, 3))]
                a = rng.choice([0, 32, 512])
                query = "&".join(f"b={n}" for n in sizes) + f"&a={a}"
                async with session.get(f"{url}/buffer/{rng.randrange(99)}?{query}") as resp:
                    assert len(await resp.read()) == sizes[0]
                took("/buffer/{id}", a + sum(size_class(n) for n in sizes))
            elif kind == 2:
                data = b"u" * rng.choice([1, 700, 3000])
                async with session.post(f"{url}/upload", data=data) as resp:
                    assert await resp.text() == str(len(data))
                took("/upload", size_class(len(data)))
            elif kind == 3:
                async with session.get(f"{url}/conflict") as resp:
                    assert resp.status == 409
                took("/conflict", size_class(1000))
            else:
                async with session.get(f"{url}/untouched") as resp:
                    assert await resp.text() == "nothing"
        await settled(aop, mw)
        exposition = generate_latest(registry).decode()

    usage = {r.route: r for r in mw.route_usage()}
    assert set(usage) == set(expected), "a route that used no memory must not be listed"
    for route, sizes in expected.items():
        assert usage[route] == RouteUsage(route, len(sizes), sum(sizes), max(sizes)), route
    # Largest total first; the sum over routes is every request's bytes.
    totals = [r.bytes_total for r in mw.route_usage()]
    assert totals == sorted(totals, reverse=True)
    assert mw.route_usage(top=2) == mw.route_usage()[:2]
    assert sum(totals) == sum(sum(v) for v in expected.values())
    assert sum(r.requests for r in usage.values()) == mw.statistics().requests
    # The histogram in the metrics says the same.
    hist = {}
    for family in text_string_to_metric_families(exposition):
        if family.name == "electron_request_bytes":
            for s in family.samples:
                if s.name.endswith(("_sum", "_count")):
                    hist[(s.labels["route"], s.name.rsplit("_", 1)[1])] = s.value
    for route, sizes in expected.items():
        assert hist[(route, "count")] == len(sizes)
        assert hist[(route, "sum")] == sum(sizes)


async def test_routes_are_bounded_and_unmatched_requests_grouped(
    aop: electron.ArenaOfPools,
) -> None:
    app = web.Application()
    mw = setup(app, aop, as_middleware=True, current_arena=True, max_routes=3)
    seen: list[tuple[str, int]] = []
    mw.add_usage_listener(lambda route, n: seen.append((route, n)))

    def failing_listener(route: str, n: int) -> None:
        raise RuntimeError("a broken metrics hook")

    mw.add_usage_listener(failing_listener)

    @web.middleware
    async def lends_for_everyone(request: web.Request, handler: Handler) -> web.StreamResponse:
        current_arena().alloc(32)
        return await handler(request)

    app.middlewares.append(lends_for_everyone)

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    for i in range(6):
        app.router.add_get(f"/r{i}", ok)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for i in range(6):
            async with session.get(f"{url}/r{i}") as resp:
                assert resp.status == 200
        async with session.get(f"{url}/missing") as resp:
            assert resp.status == 404
    usage = {r.route: r.requests for r in mw.route_usage()}
    assert usage == {"/r0": 1, "/r1": 1, "/r2": 1, "(other)": 4}  # incl. the 404
    assert len(seen) == 7
    assert seen[-1] == ("(other)", 32)
    assert mw.statistics().errors == 0  # the failing listener was logged, not raised
    with pytest.raises(TypeError):
        mw.add_usage_listener("not callable")  # type: ignore[arg-type]


async def test_setup_names_each_route_as_its_request_matched_it(
    aop: electron.ArenaOfPools,
) -> None:
    """setup knows a route's name when it wraps its handler: a sub-app's prefix, a dynamic
    route's template and a class-based view's path are the names its requests are counted
    under, as the request's own match would say."""
    app = web.Application()
    mw = setup(app, aop)
    sub = web.Application()

    async def item(request: web.Request) -> web.StreamResponse:
        request_buffer(request, 100)
        return web.Response(text=request.match_info["id"])

    class Report(web.View):
        async def get(self) -> web.StreamResponse:
            request_buffer(self.request, 300)
            return web.Response(text="report")

    sub.router.add_get("/items/{id}", item)
    app.router.add_view("/report", Report)
    app.add_subapp("/sub", sub)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for path in ("/sub/items/1", "/sub/items/2", "/report"):
            async with session.get(url + path) as resp:
                assert resp.status == 200
    await settled(aop, mw)
    usage = {r.route: (r.requests, r.bytes_total) for r in mw.route_usage()}
    assert usage == {
        "/sub/items/{id}": (2, 2 * size_class(100)),
        "/report": (1, size_class(300)),
    }


async def test_unmatched_route_label(aop: electron.ArenaOfPools) -> None:
    app = web.Application()
    mw = setup(app, aop, as_middleware=True, current_arena=True)

    @web.middleware
    async def lends(request: web.Request, handler: Handler) -> web.StreamResponse:
        current_arena().alloc(16)
        return await handler(request)

    app.middlewares.append(lends)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/nowhere") as resp,
    ):
        assert resp.status == 404
    assert mw.route_usage() == [RouteUsage("(unmatched)", 1, 16, 16)]


async def test_example_stats_shows_the_top_routes() -> None:
    example = load_example("electron_example_server_ops")
    aop = electron.ArenaOfPools(arena_size=16 << 10)
    app = example.make_app(aop)
    mw = app[MIDDLEWARE_KEY]
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for n in (1000, 70_000):  # pooled=1: pooled memory at these sizes too
            async with session.get(f"{url}/bytes/{n}?pooled=1") as resp:
                assert resp.status == 200
        async with session.post(f"{url}/upload", data=b"u" * 500) as resp:
            assert resp.status == 200
        async with session.get(f"{url}/json") as resp:  # plain bytes: no electron memory
            assert resp.status == 200
        async with session.get(f"{url}/") as resp:
            assert resp.status == 200
        await settled(aop, mw)
        async with session.get(f"{url}/stats") as resp:
            doc = await resp.json()
        async with session.get(f"{url}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    top = doc["top_routes"]
    assert [r["route"] for r in top] == ["/bytes/{n}", "/upload"]
    assert top[0] == {
        "route": "/bytes/{n}",
        "requests": 2,
        "bytes_total": size_class(1000) + size_class(70_000),
        "bytes_max": size_class(70_000),
    }
    assert doc["middleware"]["requests"] == 3
    assert doc["active_arenas"] == 0
    assert 'electron_request_bytes_count{route="/bytes/{n}"} 2.0' in text
