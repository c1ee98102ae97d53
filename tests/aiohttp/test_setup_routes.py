"""setup(app, aop) serving each route's handler (no middleware): what it must keep working."""

from __future__ import annotations

import asyncio
import inspect
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web

import electron
from electron.aio.aiohttp import (
    PooledResponse,
    refuse_oversized,
    request_arena,
    request_buffer,
    setup,
)
from electron.aio.aiohttp._middleware import _serve_routes
from tests.support import anyio_backend, eventually, serve, serve_port  # noqa: F401 - anyio_backend: the asyncio-only backends

pytestmark = pytest.mark.anyio


def all_back(aop: electron.ArenaOfPools) -> Callable[[], bool]:
    def check() -> bool:
        s = aop.statistics()
        return s.active_arenas == 0 and s.active_buffers == 0

    return check


async def pooled(request: web.Request) -> web.StreamResponse:
    buf = request_buffer(request, 200_000)
    buf.write(b"x" * 200_000)
    return PooledResponse(buf)


async def test_domain_subapp_routes_are_served(aop: electron.ArenaOfPools) -> None:
    app = web.Application()
    mw = setup(app, aop)
    sub = web.Application()
    sub.router.add_get("/p", pooled)
    app.add_domain("example.com", sub)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(url + "/p", headers={"Host": "example.com"}) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == b"x" * 200_000
    await eventually(all_back(aop), "back")
    assert mw.statistics().requests == 1


async def test_static_routes_are_served(aop: electron.ArenaOfPools, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"static body")
    app = web.Application()
    mw = setup(app, aop)
    app.router.add_static("/s", tmp_path)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/s/f.txt") as resp:
            assert await resp.read() == b"static body"
        async with session.head(url + "/s/f.txt") as resp:
            assert resp.status == 200
        for route in app.router.routes():
            assert getattr(route.handler, "__electron_middleware__", None) is mw


async def test_route_table_def_head_and_shared_handler(aop: electron.ArenaOfPools) -> None:
    routes = web.RouteTableDef()

    @routes.get("/a")
    async def a(request: web.Request) -> web.StreamResponse:
        request_arena(request).alloc(10)
        return web.Response(text="a")

    app = web.Application()
    mw = setup(app, aop)
    app.router.add_routes(routes)
    app.router.add_get("/b", a)
    app.router.add_post("/c", a)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for method, path in (("GET", "/a"), ("HEAD", "/a"), ("GET", "/b"), ("POST", "/c")):
            async with session.request(method, url + path) as resp:
                assert resp.status == 200, (method, path)
    for route in app.router.routes():
        assert inspect.unwrap(route.handler) is a
        assert inspect.iscoroutinefunction(route.handler)
    await eventually(all_back(aop), "back")
    assert mw.statistics().requests == 4


@pytest.mark.parametrize(
    "as_middleware", [None, False, True], ids=["plain", "routes", "middleware"]
)
async def test_aiohttp_cors_class_based_view(
    aop: electron.ArenaOfPools, as_middleware: bool | None
) -> None:
    """aiohttp-cors finds a view's own CORS config through ``match_info.handler`` being the
    ``web.View`` subclass (``CorsViewMixin``): setup must leave that working."""
    aiohttp_cors: Any = pytest.importorskip("aiohttp_cors")

    class Items(web.View, aiohttp_cors.CorsViewMixin):  # type: ignore[misc]
        cors_config: ClassVar = {
            "https://ok.example": aiohttp_cors.ResourceOptions(allow_headers="*")
        }

        async def get(self) -> web.StreamResponse:
            return web.Response(text="items")

    app = web.Application()
    if as_middleware is not None:
        setup(app, aop, as_middleware=as_middleware)
    cors = aiohttp_cors.setup(app)
    cors.add(app.router.add_view("/items", Items))
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/items", headers={"Origin": "https://ok.example"}) as resp:
            assert await resp.text() == "items"
            assert resp.headers.get("Access-Control-Allow-Origin") == "https://ok.example"
        async with session.options(
            url + "/items",
            headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "GET"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers.get("Access-Control-Allow-Origin") == "https://ok.example"


async def _first_status(port: int, path: str, declared: int, host: str = "x") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nExpect: 100-continue\r\n".encode()
            + f"Content-Length: {declared}\r\n\r\n".encode()
        )
        await writer.drain()
        status = (await asyncio.wait_for(reader.readline(), 10)).split()[1]
        if status == b"100":  # the body is wanted now: send it, and see the handler's answer
            await reader.readline()
            writer.write(b"z" * declared)
            await writer.drain()
            assert (await asyncio.wait_for(reader.readline(), 10)).split()[1] == b"200"
        return status
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("as_middleware", [False, True], ids=["routes", "middleware"])
async def test_refuse_oversized_answers_before_the_body_on_the_routes_that_ask(
    aop: electron.ArenaOfPools, as_middleware: bool
) -> None:
    """413 before the body on the routes that ask (``expect_handler=refuse_oversized()``):
    the app's, a view's, a plain sub-app's, a domain sub-app's, by the limit of the
    middleware that serves them (a sub-app with a setup of its own: its own, unless an outer
    middleware serves it) or the route's own; 100 Continue below it and on other routes."""

    async def upload(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    class Upload(web.View):
        async def post(self) -> web.StreamResponse:
            return web.Response(text="ok")

    asks = refuse_oversized()
    app = web.Application()
    mw = setup(app, aop, body_limit=1000, as_middleware=as_middleware)
    plain, domain, own = web.Application(), web.Application(), web.Application()
    setup(own, electron.ArenaOfPools(arena_size=4096), body_limit=10_000)
    for a in (app, plain, domain, own):
        a.router.add_post("/up", upload, expect_handler=asks)
    app.router.add_post("/not-asked", upload)
    app.router.add_post("/own-limit", upload, expect_handler=refuse_oversized(limit=20_000))
    app.router.add_view("/view", Upload, expect_handler=asks)
    app.add_subapp("/plain", plain)
    app.add_subapp("/own", own)
    app.add_domain("example.com", domain)
    async with serve_port(app) as port:
        for path, host in (
            ("/up", "x"),
            ("/view", "x"),
            ("/plain/up", "x"),
            ("/up", "example.com"),
        ):
            assert await _first_status(port, path, 5000, host) == b"413", (path, host)
            assert await _first_status(port, path, 500, host) == b"100", (path, host)
        assert await _first_status(port, "/not-asked", 5000) == b"100"
        assert await _first_status(port, "/own-limit", 15_000) == b"100"
        assert await _first_status(port, "/own-limit", 25_000) == b"413"
        # The outer middleware, run first, serves the sub-app; wrapped routes, its own.
        own_limit = 1000 if as_middleware else 10_000
        assert await _first_status(port, "/own/up", own_limit) == b"100"
        assert await _first_status(port, "/own/up", own_limit + 1) == b"413"
    assert mw.statistics().too_large == 5 + as_middleware


async def test_a_class_based_view_stays_a_view_and_is_served(aop: electron.ArenaOfPools) -> None:
    """A view's route handler is still a subclass of the view (libraries tell views that
    way), looks like it, gets request memory, answers 405 for a method it lacks, and
    starting the app again wraps it once."""
    app = web.Application()
    mw = setup(app, aop)

    class Report(web.View):
        """The report."""

        async def get(self) -> web.StreamResponse:
            return await pooled(self.request)

    route = app.router.add_view("/report", Report)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/report") as resp:
            assert await resp.read() == b"x" * 200_000
        async with session.post(url + "/report") as resp:
            assert resp.status == 405
        await _serve_routes(app)  # as starting the app again does
    await eventually(all_back(aop), "back")
    handler = route.handler
    assert isinstance(handler, type)
    assert issubclass(handler, Report)
    assert handler.__bases__ == (Report,)  # wrapped once
    assert getattr(handler, "__wrapped__", None) is Report  # 3.13: inspect.unwrap skips classes
    assert (handler.__name__, handler.__qualname__, handler.__doc__) == (
        Report.__name__,
        Report.__qualname__,
        "The report.",
    )
    assert mw.statistics().requests == 1


async def test_a_view_under_the_budget_and_cancelled() -> None:
    """A view's request waits for the budget (503 with Retry-After after acquire_timeout),
    and a view cancelled by the client going away gives its memory back."""
    aop = electron.ArenaOfPools(arena_size=16 << 10, max_arenas=1)
    app = web.Application()
    mw = setup(app, aop, acquire_timeout=0.05, retry_after=7)
    started, proceed = asyncio.Event(), asyncio.Event()

    class Slow(web.View):
        async def get(self) -> web.StreamResponse:
            buf = request_buffer(self.request, 100_000)
            buf.write(b"y" * 100_000)
            started.set()
            await proceed.wait()
            return PooledResponse(buf)

    app.router.add_view("/slow", Slow)
    async with serve(app, handler_cancellation=True) as url, aiohttp.ClientSession() as session:
        client = asyncio.ensure_future(session.get(url + "/slow"))
        await started.wait()
        async with session.get(url + "/slow") as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "7"
        client.cancel()
        with pytest.raises(asyncio.CancelledError):
            await client
        await eventually(lambda: mw.statistics().cancelled == 1, "view cancelled")
        await eventually(all_back(aop), "back")
        proceed.set()
        async with session.get(url + "/slow") as resp:
            assert await resp.read() == b"y" * 100_000
    await eventually(all_back(aop), "back")
    assert mw.statistics().rejected == 1


@pytest.mark.parametrize("prefix", ["", "/sub"], ids=["app", "subapp"])
async def test_expect_continue_does_not_refuse_what_the_route_accepts(
    aop: electron.ArenaOfPools, prefix: str
) -> None:
    """A route that takes its body without electron (request.read(), with the app's own
    client_max_size) accepts a 2 MiB upload: it must not matter whether the client sent
    ``Expect: 100-continue`` first (curl does for large bodies). body_limit is read_body's
    default limit, not the route's."""

    async def upload(request: web.Request) -> web.StreamResponse:
        return web.Response(text=str(len(await request.read())))

    app = web.Application(client_max_size=8 << 20)
    setup(app, aop)  # body_limit: 1 MiB, read_body's
    sub = web.Application(client_max_size=8 << 20)
    sub.router.add_post("/up", upload)
    app.router.add_post("/up", upload)
    app.add_subapp("/sub", sub)
    async with serve_port(app) as port:
        url = f"http://127.0.0.1:{port}{prefix}/up"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=io.BytesIO(b"u" * (2 << 20))) as resp,
        ):
            assert resp.status == 200  # without Expect: accepted
        assert await _first_status(port, prefix + "/up", 2 << 20) == b"100"
