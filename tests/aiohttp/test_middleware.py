"""electron.aio.aiohttp's middleware, helpers and PooledResponse against a live aiohttp server."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import inspect
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

import electron
from electron.aio import current_arena
from electron.aio.aiohttp import (
    AOP_KEY,
    MIDDLEWARE_KEY,
    Middleware,
    MiddlewareStatistics,
    PooledResponse,
    middleware,
    read_body,
    request_arena,
    request_buffer,
    setup,
)
from electron.aio.aiohttp._middleware import _serve_routes
from electron.aio.aiohttp._response import COPY_MAX
from tests.support import anyio_backend, eventually, serve  # noqa: F401 - anyio_backend: the asyncio-only backends

pytestmark = pytest.mark.anyio


def pattern(n: int, seed: int = 0) -> bytes:
    return bytes((seed * 31 + i) % 251 for i in range(min(n, 251))) * (n // 251 + 1)


def body_of(n: int, seed: int = 0) -> bytes:
    return pattern(n, seed)[:n]


def all_back(aop: electron.ArenaOfPools) -> Callable[[], bool]:
    def check() -> bool:
        s = aop.statistics()
        return s.active_arenas == 0 and s.active_buffers == 0

    return check


def mw_of(app: web.Application) -> Middleware:
    return app[MIDDLEWARE_KEY]


async def test_handler_gets_the_request_arena_and_it_goes_back(
    aop: electron.ArenaOfPools,
) -> None:
    app = web.Application()
    mw = setup(app, aop, current_arena=True)
    assert mw.current_arena is True
    seen: list[electron.Arena] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        arena = current_arena()
        assert request_arena(request) is arena
        seen.append(arena)
        view = arena.alloc(5)
        view[:] = b"hello"
        assert aop.statistics().active_arenas == 1
        return web.Response(body=bytes(view))

    app.router.add_get("/", handler)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(url + "/") as resp:
                assert resp.status == 200
                assert await resp.read() == b"hello"
    assert aop.statistics().active_arenas == 0
    assert all(a.closed for a in seen)
    stats = mw.statistics()
    # A bytes body cannot reference pooled memory: the arena went back when the handler
    # returned, without waiting for the write.
    assert (stats.requests, stats.in_flight, stats.deferred) == (3, 0, 0)
    with pytest.raises(LookupError):
        current_arena()


@pytest.mark.parametrize("lent_first", [False, True], ids=["lazy", "lent"])
async def test_current_arena_in_a_handler_is_opt_in(
    aop: electron.ArenaOfPools, lent_first: bool
) -> None:
    """By default the middleware leaves the context variable alone: current_arena() in a
    handler says how to get the request's arena, and request_arena() gives it. ``lent``
    makes the request wait for its arena before the handler (the budget is queued for)."""
    budget = electron.ArenaOfPools(max_arenas=1) if lent_first else aop
    app = web.Application()
    mw = setup(app, budget)
    assert mw.current_arena is False
    outcome: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        with pytest.raises(LookupError) as info:
            current_arena()
        outcome.append(str(info.value))
        arena = request_arena(request)
        outcome.append(arena)
        view = arena.alloc(3)
        view[:] = b"abc"
        return web.Response(body=bytes(view))

    app.router.add_get("/", handler)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        held = budget.get_arena() if lent_first else None

        async def release_soon() -> None:
            await asyncio.sleep(0.05)
            if held is not None:
                budget.return_arena(held)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(release_soon())
            async with session.get(url + "/") as resp:
                assert resp.status == 200
                assert await resp.read() == b"abc"
    message, arena = outcome
    assert "request_arena(request)" in str(message)
    assert "current_arena=True" in str(message)
    assert isinstance(arena, electron.Arena)
    assert arena.closed
    assert mw.statistics().requests == 1
    assert budget.statistics().active_arenas == 0


async def test_pooled_response_sends_buffer_and_arena_memory_intact(
    aop: electron.ArenaOfPools,
) -> None:
    """aiohttp writes the body after the middleware returned: the memory must still be ours
    (a body of at most COPY_MAX bytes is sent as a copy, its memory back at once)."""
    app = web.Application()
    mw = setup(app, aop)
    buf_sizes, arena_sizes = (0, 1, 100, 8000, 100_000, 3 << 20), (0, 10, 8000, 16000)

    async def from_buffer(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        buf = request_buffer(request, n)
        buf.write(body_of(n, 7))
        return PooledResponse(buf)

    async def from_arena(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        view = request_arena(request).alloc(n)
        view[:] = body_of(n, 3)
        return PooledResponse(view, content_type="text/plain", charset="utf-8")

    app.router.add_get("/buf/{n}", from_buffer)
    app.router.add_get("/arena/{n}", from_arena)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for n in buf_sizes:
            async with session.get(f"{url}/buf/{n}") as resp:
                assert resp.status == 200
                assert resp.content_type == "application/octet-stream"
                assert await resp.read() == body_of(n, 7)
        for n in arena_sizes:
            async with session.get(f"{url}/arena/{n}") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
                assert await resp.read() == body_of(n, 3)
        async with session.head(f"{url}/buf/1000") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Length"] == "1000"
            assert await resp.read() == b""
    await eventually(all_back(aop), "arenas and buffers back")
    assert aop.statistics().quarantine_events == 0
    assert mw.statistics().deferred == sum(n > COPY_MAX for n in buf_sizes + arena_sizes) == 2


async def test_streamed_response_of_arena_memory(aop: electron.ArenaOfPools) -> None:
    """A handler that writes arena memory itself (StreamResponse) defers the release too."""
    app = web.Application()
    setup(app, aop)

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 3 * 4000
        await resp.prepare(request)
        arena = request_arena(request)
        for seed in range(3):
            view = arena.alloc(4000)
            view[:] = body_of(4000, seed)
            await resp.write(view)
        return resp

    async def stream_then_fail(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 8000
        await resp.prepare(request)
        view = request_arena(request).alloc(4000)
        view[:] = body_of(4000)
        await resp.write(view)
        raise RuntimeError("failed half way")

    app.router.add_get("/stream", stream)
    app.router.add_get("/fail", stream_then_fail)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/stream") as resp:
            assert await resp.read() == b"".join(body_of(4000, s) for s in range(3))
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(f"{url}/fail") as resp:
                await resp.read()
    await eventually(all_back(aop), "arenas back")


async def test_handler_errors_return_the_arena(aop: electron.ArenaOfPools) -> None:
    app = web.Application()
    mw = setup(app, aop)

    async def boom(request: web.Request) -> web.StreamResponse:
        request_buffer(request, 1000).write(b"x" * 1000)
        request_arena(request).alloc(100)
        raise RuntimeError("handler bug")

    async def missing(request: web.Request) -> web.StreamResponse:
        request_buffer(request, 10)
        raise web.HTTPNotFound(text="no such thing")

    app.router.add_get("/boom", boom)
    app.router.add_get("/missing", missing)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{url}/boom") as resp:
                assert resp.status == 500
            async with session.get(f"{url}/missing") as resp:
                assert resp.status == 404
                assert await resp.text() == "no such thing"
            async with session.get(f"{url}/nowhere") as resp:
                assert resp.status == 404
    assert aop.statistics().active_arenas == 0
    assert aop.statistics().active_buffers == 0
    stats = mw.statistics()
    assert stats.errors == 3  # HTTP exceptions are answers, not errors
    assert stats.requests == 6  # /nowhere never touched electron memory: nothing lent
    assert stats.in_flight == 0


async def test_a_raised_http_exception_with_a_pooled_body_is_sent_intact(
    aop: electron.ArenaOfPools,
) -> None:
    """aiohttp sends a raised HTTPException as the response after the middleware returned:
    when its body is arena memory, the arena goes back only once it was written."""
    app = web.Application()
    mw = setup(app, aop)

    async def refuse(request: web.Request) -> web.StreamResponse:
        view = request_arena(request).alloc(3000)
        view[:] = body_of(3000, 7)
        conflict = web.HTTPConflict()
        conflict.body = view
        raise conflict

    app.router.add_get("/", refuse)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(url + "/") as resp:
                assert resp.status == 409
                assert await resp.read() == body_of(3000, 7)
    await eventually(all_back(aop), "arenas back")
    stats = mw.statistics()
    assert (stats.deferred, stats.errors, stats.in_flight) == (3, 0, 0)


async def test_budget_exhausted_answers_503_with_retry_after() -> None:
    aop = electron.ArenaOfPools(arena_size=4096, max_arenas=1)
    app = web.Application()
    mw = setup(app, aop, current_arena=True, acquire_timeout=0.05, retry_after=7)
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        current_arena().alloc(16)  # first use: lends the only arena
        await release.wait()
        return web.Response(text="held")

    async def quick(request: web.Request) -> web.StreamResponse:
        return web.Response(text="quick")

    app.router.add_get("/hold", hold)
    app.router.add_get("/quick", quick)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        holder = asyncio.ensure_future(session.get(f"{url}/hold"))
        await eventually(lambda: mw.statistics().in_flight == 1, "the holder has the arena")
        for _ in range(2):
            async with session.get(f"{url}/quick") as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "7"
        assert mw.statistics().rejected == 2
        assert aop.statistics().wait_timeouts == 2
        release.set()
        async with await holder as resp:
            assert await resp.text() == "held"
        async with session.get(f"{url}/quick") as resp:
            assert resp.status == 200

        # A request that waits within acquire_timeout is served once the arena comes back.
        release.clear()
        mw.acquire_timeout = 30.0
        holder = asyncio.ensure_future(session.get(f"{url}/hold"))
        await eventually(lambda: mw.statistics().in_flight == 1, "the holder has the arena")
        waiter = asyncio.ensure_future(session.get(f"{url}/quick"))
        await eventually(lambda: aop.statistics().waiting == 1, "the second request waits")
        release.set()
        async with await holder as resp:
            assert resp.status == 200
        async with await waiter as resp:
            assert await resp.text() == "quick"
    assert aop.statistics().active_arenas == 0
    assert mw.statistics().rejected == 2
    assert aop.closed  # setup() closes it at cleanup


async def test_buffer_beyond_what_the_budget_has_left_answers_503() -> None:
    budget = electron.ArenaOfPools(arena_size=4096, max_bytes=64 << 10)
    app = web.Application()
    mw = setup(app, budget)
    held = budget.get_buffer(40 << 10)  # another request's: the budget may come back

    async def greedy(request: web.Request) -> web.StreamResponse:
        request_buffer(request, 40 << 10)
        return web.Response(text="unreachable")

    app.router.add_get("/greedy", greedy)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/greedy") as resp,
    ):
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
    budget.return_buffer(held)
    assert mw.statistics().rejected == 1
    assert budget.statistics().active_arenas == 0


async def test_buffer_beyond_the_whole_budget_gets_a_final_answer() -> None:
    budget = electron.ArenaOfPools(arena_size=4096, max_bytes=64 << 10)
    app = web.Application()
    mw = setup(app, budget)

    async def greedy(request: web.Request) -> web.StreamResponse:
        request_buffer(request, 1 << 20)  # more than max_bytes: waiting cannot help
        return web.Response(text="unreachable")

    app.router.add_get("/greedy", greedy)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/greedy") as resp,
    ):
        assert resp.status == 500
        assert "Retry-After" not in resp.headers
        assert "whole budget" in await resp.text()
    assert mw.statistics().rejected == 0
    assert budget.statistics().active_arenas == 0


async def test_read_body_into_pooled_memory_with_a_limit(aop: electron.ArenaOfPools) -> None:
    app = web.Application()
    mw = setup(app, aop, body_limit=1000)

    async def upload(request: web.Request) -> web.StreamResponse:
        buf = await read_body(request)
        return web.json_response(
            {"size": len(buf), "sha256": hashlib.sha256(buf.view()).hexdigest()}
        )

    async def tiny(request: web.Request) -> web.StreamResponse:
        buf = await read_body(request, limit=10)
        return web.Response(body=buf.getvalue())

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 100):
            yield data[i : i + 100]

    app.router.add_post("/upload", upload)
    app.router.add_post("/tiny", tiny)
    data = bytes(range(256)) * 4
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for body in (b"", data[:1000], data[:999]):
            async with session.post(f"{url}/upload", data=body) as resp:
                assert resp.status == 200
                assert await resp.json() == {
                    "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
        async with session.post(f"{url}/upload", data=chunks(data[:900])) as resp:
            assert (await resp.json())["size"] == 900
        async with session.post(f"{url}/upload", data=data[:1001]) as resp:
            assert resp.status == 413
        async with session.post(f"{url}/upload", data=chunks(data * 3)) as resp:
            assert resp.status == 413
        async with session.post(f"{url}/tiny", data=b"0123456789") as resp:
            assert await resp.read() == b"0123456789"
        async with session.post(f"{url}/tiny", data=b"0123456789A") as resp:
            assert resp.status == 413

        # A declared length over the limit is refused before a byte of the body is sent.
        port = int(url.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        with socket.socket() as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n"
            await loop.sock_sendall(sock, head)
            answer = await asyncio.wait_for(loop.sock_recv(sock, 4096), 30)
            assert answer.startswith(b"HTTP/1.1 413 ")
    await eventually(all_back(aop), "buffers back")
    assert mw.statistics().too_large == 4


async def test_composes_with_other_middlewares(aop: electron.ArenaOfPools) -> None:
    seen: list[str] = []

    @web.middleware
    async def outer(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append("outer")
        resp = await handler(request)
        resp.headers["X-Outer"] = "1"
        return resp

    @web.middleware
    async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
        arena = current_arena()  # the request's arena is visible to inner middlewares
        assert request_arena(request) is arena
        try:
            return await handler(request)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=500)

    mw = middleware(aop=aop, current_arena=True)
    app = web.Application(middlewares=[outer, mw, errors_as_json])

    async def ok(request: web.Request) -> web.StreamResponse:
        buf = request_buffer(request)
        buf.write(b"composed")
        return PooledResponse(buf)

    async def bad(request: web.Request) -> web.StreamResponse:
        raise ValueError("bad input")

    app.router.add_get("/ok", ok)
    app.router.add_get("/bad", bad)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/ok") as resp:
            assert resp.headers["X-Outer"] == "1"
            assert await resp.read() == b"composed"
        async with session.get(f"{url}/bad") as resp:
            assert resp.status == 500
            assert await resp.json() == {"error": "bad input"}
    await eventually(all_back(aop), "arenas back")
    assert seen == ["outer", "outer"]
    assert mw.statistics().errors == 0  # the inner middleware answered


async def test_inside_a_middleware_that_runs_the_handler_in_another_task(
    aop: electron.ArenaOfPools,
) -> None:
    """Not in aiohttp's own task (asyncio.wait_for / shield), memory still goes back safely."""

    @web.middleware
    async def shielded(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await asyncio.shield(asyncio.ensure_future(handler(request)))

    app = web.Application(middlewares=[shielded, middleware(aop=aop)])

    async def pooled(request: web.Request) -> web.StreamResponse:
        buf = request_buffer(request, 50_000)
        buf.write(body_of(50_000, 1))
        return PooledResponse(buf)

    async def view_body(request: web.Request) -> web.StreamResponse:
        view = request_arena(request).alloc(3000)
        view[:] = body_of(3000, 2)
        return web.Response(body=view)  # a memoryview body: written after the handler

    app.router.add_get("/pooled", pooled)
    app.router.add_get("/view", view_body)
    async with serve(app) as url:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(f"{url}/pooled") as resp:
                    assert await resp.read() == body_of(50_000, 1)
                async with session.get(f"{url}/view") as resp:
                    assert await resp.read() == body_of(3000, 2)

        def back() -> bool:
            gc.collect()
            return all_back(aop)()

        await eventually(back, "arenas back once aiohttp dropped the requests")


@pytest.mark.parametrize("handler_cancellation", [True, False], ids=["cancel-on", "cancel-off"])
async def test_client_gone_while_handler_runs(
    aop: electron.ArenaOfPools, handler_cancellation: bool
) -> None:
    app = web.Application()
    mw = setup(app, aop)
    started = asyncio.Event()
    proceed = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        buf = request_buffer(request, 200_000)
        buf.write(body_of(200_000))
        started.set()
        await proceed.wait()
        return PooledResponse(buf)

    app.router.add_get("/slow", slow)
    async with serve(app, handler_cancellation=handler_cancellation) as url:
        async with aiohttp.ClientSession() as session:
            client = asyncio.ensure_future(session.get(f"{url}/slow"))
            await started.wait()
            client.cancel()  # the client drops the connection
            with pytest.raises(asyncio.CancelledError):
                await client
        if handler_cancellation:
            await eventually(lambda: mw.statistics().cancelled == 1, "handler cancelled")
        else:
            await asyncio.sleep(0.05)
            assert aop.statistics().active_buffers == 1  # still running, still holding it
            proceed.set()
        await eventually(all_back(aop), "arena and buffer back")
        assert mw.statistics().in_flight == 0


async def test_helpers_need_the_middleware(aop: electron.ArenaOfPools) -> None:
    app = web.Application()
    setup(app, aop, exclude=("/free",))
    errors: list[BaseException] = []

    async def free(request: web.Request) -> web.StreamResponse:
        assert aop.statistics().active_arenas == 0  # excluded: no arena taken
        for helper in (request_arena, request_buffer):
            try:
                helper(request)
            except LookupError as exc:
                errors.append(exc)
        try:
            await read_body(request)
        except LookupError as exc:
            errors.append(exc)
        return web.Response(text="free")

    app.router.add_get("/free", free)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/free") as resp,
    ):
        assert await resp.text() == "free"
    assert len(errors) == 3
    assert "setup(app, aop)" in str(errors[0])


@pytest.mark.parametrize("as_middleware", [False, True], ids=["routes", "middleware"])
async def test_setup_serves_every_route_and_closes_on_cleanup(as_middleware: bool) -> None:
    """By default setup wraps the routes' handlers and installs no middleware (aiohttp
    then skips its middleware machinery); as_middleware=True makes it the outermost one."""
    aop = electron.ArenaOfPools(arena_size=4096)

    @web.middleware
    async def other(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request)

    app = web.Application(middlewares=[other])
    mw = setup(app, aop, as_middleware=as_middleware)
    assert list(app.middlewares) == ([mw, other] if as_middleware else [other])
    assert app[AOP_KEY] is aop
    assert app[MIDDLEWARE_KEY] is mw
    assert mw_of(app) is mw

    async def hi(request: web.Request) -> web.StreamResponse:
        """Says hi."""
        request_arena(request).alloc(10)
        return web.Response(text="hi")

    route = app.router.add_get("/", hi)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/") as resp:
            assert await resp.text() == "hi"
        assert not aop.closed
        if as_middleware:
            assert route.handler is hi
        else:  # wrapped, looking like the handler
            assert route.handler is not hi
            assert inspect.unwrap(route.handler) is hi
            assert (route.handler.__name__, route.handler.__doc__) == ("hi", "Says hi.")
    assert mw.statistics().requests == 1
    assert aop.closed


@pytest.mark.parametrize("as_middleware", [False, True], ids=["routes", "middleware"])
async def test_own_middlewares_are_outside_electron_unless_as_middleware(
    as_middleware: bool,
) -> None:
    """With setup's default a middleware of the app's gets a LookupError that says how to
    let it use electron memory; with as_middleware=True it gets the request's arena."""
    aop = electron.ArenaOfPools(arena_size=4096)
    app = web.Application()
    setup(app, aop, as_middleware=as_middleware)
    seen: list[object] = []

    @web.middleware
    async def mine(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            seen.append(request_arena(request))
        except LookupError as exc:
            seen.append(exc)
        return await handler(request)

    async def hi(request: web.Request) -> web.StreamResponse:
        seen.append(request_arena(request))
        return web.Response(text="hi")

    app.middlewares.append(mine)
    app.router.add_get("/", hi)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(url + "/") as resp,
    ):
        assert await resp.text() == "hi"
    first, second = seen
    assert isinstance(second, electron.Arena)
    if as_middleware:
        assert first is second
    else:
        assert isinstance(first, LookupError)
        assert "as_middleware=True" in str(first)
    assert aop.closed


async def test_each_route_is_wrapped_once() -> None:
    """Starting an app again (its startup handlers run again) wraps no route twice."""
    aop = electron.ArenaOfPools(arena_size=4096)
    app = web.Application()
    setup(app, aop)

    async def hi(request: web.Request) -> web.StreamResponse:
        return web.Response(text="hi")

    route = app.router.add_get("/", hi)
    async with serve(app):
        wrapped = route.handler
        await _serve_routes(app)
        assert route.handler is wrapped
        assert route.handler.__wrapped__ is hi  # type: ignore[attr-defined]


async def test_pooled_response_without_the_middleware(aop: electron.ArenaOfPools) -> None:
    """On its own a PooledResponse gives its buffer back (and calls on_release) once sent."""
    released: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        buf = aop.get_buffer(300_000)
        buf.write(body_of(300_000, 5))
        return PooledResponse(buf, on_release=lambda: released.append(1))

    app = web.Application()
    app.router.add_get("/", handler)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.get(url + "/") as resp:
                assert await resp.read() == body_of(300_000, 5)
    await eventually(all_back(aop), "buffers back")
    assert released == [1, 1]
    assert aop.statistics().quarantine_events == 0


def test_statistics_is_a_frozen_snapshot(aop: electron.ArenaOfPools) -> None:
    stats = middleware(aop=aop).statistics()
    assert isinstance(stats, MiddlewareStatistics)
    assert set(stats.as_dict()) == {f.name for f in dataclasses.fields(MiddlewareStatistics)}
    assert all(v == 0 for v in stats.as_dict().values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.requests = 1  # type: ignore[misc]


def test_options_are_checked(aop: electron.ArenaOfPools) -> None:
    with pytest.raises(TypeError):
        middleware(aop=object())  # type: ignore[arg-type]
    with pytest.raises(electron.InvalidArgument):
        middleware(aop=aop, acquire_timeout=-1)
    with pytest.raises(electron.InvalidArgument):
        middleware(aop=aop, body_limit=-5)
    with pytest.raises(TypeError):
        PooledResponse("text")  # type: ignore[arg-type]
    assert middleware(aop=aop).__middleware_version__ == 1


async def test_child_task_cannot_use_the_arena_after_the_request(
    aop: electron.ArenaOfPools,
) -> None:
    """A task spawned by the handler inherits the context, not the arena's lifetime."""
    app = web.Application()
    setup(app, aop, current_arena=True)
    outcome: list[BaseException] = []
    request_done = asyncio.Event()

    async def late_use() -> None:
        arena = current_arena()  # copied into the child's context
        await request_done.wait()
        try:
            arena.alloc(10)
        except electron.ArenaClosed as exc:
            outcome.append(exc)

    tasks: list[asyncio.Task[None]] = []

    async def spawn(request: web.Request) -> web.StreamResponse:
        tasks.append(asyncio.create_task(late_use()))
        await asyncio.sleep(0)
        return web.Response(text="spawned")

    app.router.add_get("/", spawn)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/") as resp:
            assert await resp.text() == "spawned"
        request_done.set()
        await asyncio.gather(*tasks)
    assert len(outcome) == 1
    assert aop.statistics().active_arenas == 0


async def test_handler_giving_memory_back_itself_is_not_a_double_release(
    aop: electron.ArenaOfPools,
) -> None:
    app = web.Application()
    mw = setup(app, aop)

    async def tidy(request: web.Request) -> web.StreamResponse:
        one = request_buffer(request, 100)
        two = request_buffer(request, 100)
        one.close()
        aop.return_buffer(two)
        request_arena(request).close()
        return web.Response(text="tidy")

    app.router.add_get("/", tidy)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(url + "/") as resp:
                assert await resp.text() == "tidy"
    stats = aop.statistics()
    assert (stats.active_arenas, stats.active_buffers) == (0, 0)
    assert mw.statistics().errors == 0


async def test_memoryview_body_goes_back_when_written_on_a_kept_alive_connection(
    aop: electron.ArenaOfPools,
) -> None:
    """Deferred releases follow aiohttp's request task, not the connection or the GC."""
    app = web.Application()
    mw = setup(app, aop)

    async def view_body(request: web.Request) -> web.StreamResponse:
        view = request_arena(request).alloc(5000)
        view[:] = body_of(5000, 4)
        return web.Response(body=view)

    app.router.add_get("/", view_body)
    gc.disable()  # the connection stays open and nothing is collected meanwhile
    try:
        connector = aiohttp.TCPConnector(keepalive_timeout=60)
        async with serve(app) as url, aiohttp.ClientSession(connector=connector) as session:
            async with session.get(url + "/") as resp:
                assert await resp.read() == body_of(5000, 4)
            await eventually(all_back(aop), "arena back while the connection is open", 10)
            assert mw.statistics().deferred == 1
    finally:
        gc.enable()


@pytest.mark.parametrize("as_middleware", [False, True], ids=["routes", "middleware"])
async def test_a_subapp_with_its_own_setup(aop: electron.ArenaOfPools, as_middleware: bool) -> None:
    """A sub-app's own setup serves its routes; the app's serves the app's and those of a
    sub-app without one (at any depth). Installed as the outermost middleware instead, the
    app's runs first and serves every request."""
    inner_aop = electron.ArenaOfPools(arena_size=4096)
    app = web.Application()
    outer = setup(app, aop, current_arena=True, as_middleware=as_middleware)
    sub = web.Application()
    inner = setup(sub, inner_aop, current_arena=True)
    plain_sub, plain_subsub = web.Application(), web.Application()
    seen: list[electron.Arena] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request_arena(request))
        assert current_arena() is seen[-1]
        buf = request_buffer(request, 10)
        buf.write(b"sub")
        return PooledResponse(buf)

    for a in (app, sub, plain_subsub):
        a.router.add_get("/x", handler)
    plain_sub.add_subapp("/deeper", plain_subsub)
    app.add_subapp("/sub", sub)
    app.add_subapp("/plain", plain_sub)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for path in ("/x", "/sub/x", "/plain/deeper/x"):
            async with session.get(url + path) as resp:
                assert await resp.read() == b"sub"
    await eventually(all_back(aop), "outer arenas back")
    await eventually(all_back(inner_aop), "inner arenas back")
    if as_middleware:
        assert (outer.statistics().requests, inner.statistics().requests) == (3, 0)
        assert inner_aop.statistics().arenas_created == 0
    else:
        assert (outer.statistics().requests, inner.statistics().requests) == (2, 1)
        assert inner_aop.statistics().arenas_created == 1
    assert inner_aop.closed


async def test_a_class_based_view_is_served(aop: electron.ArenaOfPools) -> None:
    """A route whose handler is a ``web.View`` class is wrapped like a function's."""
    app = web.Application()
    mw = setup(app, aop)

    class Report(web.View):
        async def get(self) -> web.StreamResponse:
            buf = request_buffer(self.request, 300_000)
            buf.write(body_of(300_000, 2))
            return PooledResponse(buf)

    route = app.router.add_view("/report", Report)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/report") as resp:
            assert await resp.read() == body_of(300_000, 2)
        # not inspect.unwrap: Python 3.13 no longer unwraps classes
        assert getattr(route.handler, "__wrapped__", None) is Report
    await eventually(all_back(aop), "the view's buffer back")
    assert mw.statistics().requests == 1


async def test_what_never_fits_beside_the_requests_own_memory_is_final_not_503() -> None:
    """A body within the budget, but not beside the arena the request holds itself: waiting
    for other requests can never make it fit, so the answer is final (500 for a response,
    413 for an upload), never 503 + Retry-After, which a client would retry forever."""
    budget = 1 << 20
    aop = electron.ArenaOfPools(arena_size=64 << 10, max_bytes=budget)
    app = web.Application(client_max_size=2 * budget)
    mw = setup(app, aop, body_limit=budget)

    async def pooled(request: web.Request) -> web.StreamResponse:
        request_arena(request).alloc(16)
        n = int(request.match_info["n"])
        buf = request_buffer(request, n)
        buf.write(bytes(n))
        return PooledResponse(buf)

    async def upload(request: web.Request) -> web.StreamResponse:
        request_arena(request).alloc(16)
        return web.Response(text=str(len(await read_body(request))))

    app.router.add_get("/pooled/{n}", pooled)
    app.router.add_post("/upload", upload)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/pooled/{budget}") as resp:  # beside the arena
            assert (resp.status, resp.headers.get("Retry-After")) == (500, None)
            assert "whole budget" in await resp.text()
        async with session.post(f"{url}/upload", data=bytes(budget - 1000)) as resp:
            assert (resp.status, resp.headers.get("Retry-After")) == (413, None)
        async with session.get(f"{url}/pooled/{budget // 2}") as resp:  # this one fits
            assert resp.status == 200
            assert len(await resp.read()) == budget // 2
    await eventually(all_back(aop), "everything back")
    stats = mw.statistics()
    assert (stats.rejected, stats.errors, stats.too_large) == (0, 1, 1)
