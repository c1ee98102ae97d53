"""Lazy lending: the middleware lends a request's arena on first use, not up front.

A request that never touches electron memory must take nothing from the pool; the first
``current_arena()`` / helper call lends the arena, once per request whatever the number of
tasks and threads asking; beyond the budget that first use answers 503 (the async
``read_body`` waits for the budget first); and everything lent lazily goes back exactly
like memory lent up front.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

import electron
from electron.aio import current_arena
from electron.aio.aiohttp import (
    PooledResponse,
    middleware,
    read_body,
    request_arena,
    request_buffer,
    setup,
)
from tests.support import anyio_backend, eventually, serve  # noqa: F401 - anyio_backend: the asyncio-only backends

pytestmark = pytest.mark.anyio


def nothing_lent(aop: electron.ArenaOfPools) -> bool:
    s = aop.statistics()
    return s.active_arenas == 0 and s.active_buffers == 0


async def test_a_request_that_never_touches_memory_takes_nothing(
    aop: electron.ArenaOfPools,
) -> None:
    app = web.Application()
    mw = setup(app, aop)
    seen: list[int] = []

    async def plain(request: web.Request) -> web.StreamResponse:
        seen.append(aop.statistics().active_arenas)
        await asyncio.sleep(0)
        return web.Response(text="plain")

    async def raises(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("no memory touched")

    app.router.add_get("/", plain)
    app.router.add_get("/raises", raises)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(url + "/") as resp:
                assert await resp.text() == "plain"
        async with session.get(url + "/raises") as resp:
            assert resp.status == 500
    assert seen == [0] * 5
    s = aop.statistics()
    assert (s.arenas_created, s.arenas_reused, s.active_arenas) == (0, 0, 0)
    stats = mw.statistics()
    assert (stats.requests, stats.in_flight, stats.errors) == (0, 0, 1)


async def test_every_way_in_gives_the_one_arena_of_the_request(
    aop: electron.ArenaOfPools,
) -> None:
    app = web.Application()
    mw = setup(app, aop, current_arena=True)
    other = electron.ArenaOfPools(arena_size=4096)
    report: dict[str, object] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        assert aop.statistics().active_arenas == 0
        first = current_arena()  # lends
        assert aop.statistics().active_arenas == 1
        assert current_arena() is first
        assert request_arena(request) is first
        async with other.arena() as inner:  # a scope inside the request still nests
            assert current_arena() is inner
            assert request_arena(request) is first
            buf = request_buffer(request, 100)
        assert current_arena() is first
        body = await read_body(request)
        report["same"] = aop.statistics().active_arenas == 1
        buf.write(b"got " + body.getvalue())
        return PooledResponse(buf)

    app.router.add_post("/", handler)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.post(url + "/", data=b"data") as resp,
    ):
        assert await resp.read() == b"got data"
    await eventually(lambda: nothing_lent(aop), "everything back")
    assert report == {"same": True}
    assert mw.statistics().requests == 1
    assert aop.statistics().arenas_created == 1
    assert other.statistics().active_arenas == 0
    other.close()


async def test_first_use_beyond_the_budget_answers_503() -> None:
    """The pre-check saw a free arena, but another request took it before this one's first
    use: the sync helpers cannot wait, so the request is answered 503 (and counted)."""
    aop = electron.ArenaOfPools(arena_size=4096, max_arenas=1)
    app = web.Application()
    mw = setup(app, aop, current_arena=True, retry_after=3)
    started = asyncio.Event()
    go_on = asyncio.Event()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def late(request: web.Request) -> web.StreamResponse:
        started.set()
        await go_on.wait()
        current_arena()  # the only arena is taken: PoolExhausted, answered 503
        raise AssertionError("unreachable")

    async def hold(request: web.Request) -> web.StreamResponse:
        request_buffer(request, 10)
        holding.set()
        await release.wait()
        return web.Response(text="held")

    app.router.add_get("/late", late)
    app.router.add_get("/hold", hold)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        late_req = asyncio.ensure_future(session.get(url + "/late"))
        await started.wait()
        hold_req = asyncio.ensure_future(session.get(url + "/hold"))
        await holding.wait()
        go_on.set()
        async with await late_req as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "3"
        release.set()
        async with await hold_req as resp:
            assert await resp.text() == "held"
    assert nothing_lent(aop)
    stats = mw.statistics()
    assert (stats.rejected, stats.requests, stats.errors) == (1, 1, 0)
    assert aop.statistics().wait_timeouts == 1


@pytest.mark.parametrize("wait", [30.0, 0.05], ids=["served", "timed-out"])
async def test_read_body_waits_for_the_budget(wait: float) -> None:
    aop = electron.ArenaOfPools(arena_size=4096, max_arenas=1)
    app = web.Application()
    mw = setup(app, aop, current_arena=True, acquire_timeout=wait)
    started = asyncio.Event()
    go_on = asyncio.Event()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def upload(request: web.Request) -> web.StreamResponse:
        started.set()
        await go_on.wait()
        body = await read_body(request)  # no arena yet, none free: waits (fairly)
        return web.Response(body=body.getvalue())

    async def hold(request: web.Request) -> web.StreamResponse:
        current_arena()
        holding.set()
        await release.wait()
        return web.Response(text="held")

    app.router.add_post("/upload", upload)
    app.router.add_get("/hold", hold)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        up = asyncio.ensure_future(session.post(url + "/upload", data=b"payload"))
        await started.wait()
        held = asyncio.ensure_future(session.get(url + "/hold"))
        await holding.wait()
        go_on.set()
        if wait > 1:
            await eventually(lambda: aop.statistics().waiting == 1, "read_body queued")
            release.set()
            async with await up as resp:
                assert await resp.read() == b"payload"
        else:
            async with await up as resp:
                assert resp.status == 503
            release.set()
        async with await held as resp:
            assert resp.status == 200
    assert nothing_lent(aop)
    assert mw.statistics().rejected == (0 if wait > 1 else 1)


async def test_child_tasks_and_threads_share_the_lazily_lent_arena(
    aop: electron.ArenaOfPools,
) -> None:
    """Tasks and threads of the request lend at most one arena between them, whoever asks
    first; it goes back with the request."""
    app = web.Application()
    mw = setup(app, aop, current_arena=True)
    arenas: list[int] = []
    lock = threading.Lock()

    def in_thread() -> None:
        arena = current_arena()
        with lock:
            arenas.append(id(arena))

    async def in_task() -> None:
        await asyncio.sleep(0)
        arena = current_arena()
        with lock:
            arenas.append(id(arena))

    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.gather(
            *(asyncio.to_thread(in_thread) for _ in range(8)),
            *(asyncio.create_task(in_task()) for _ in range(8)),
        )
        assert aop.statistics().active_arenas == 1
        return web.Response(text="ok")

    app.router.add_get("/", handler)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(url + "/") as resp:
                assert await resp.text() == "ok"
    assert len(arenas) == 5 * 16
    assert len(set(arenas)) <= 5  # one arena per request (ids may repeat across requests)
    assert nothing_lent(aop)
    assert mw.statistics().requests == 5
    assert aop.statistics().arenas_created + aop.statistics().arenas_reused == 5


async def test_a_task_that_outlives_its_request_cannot_lend(
    aop: electron.ArenaOfPools,
) -> None:
    """A child task still holds the request's lazy marker after the request ended: its
    first use finds the request gone (ArenaClosed), and nothing is lent."""
    app = web.Application()
    setup(app, aop, current_arena=True)
    outcome: list[BaseException] = []
    request_done = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def late_use() -> None:
        await request_done.wait()
        try:
            current_arena()
        except electron.ArenaClosed as exc:
            outcome.append(exc)

    async def spawn(request: web.Request) -> web.StreamResponse:
        tasks.append(asyncio.create_task(late_use()))
        return web.Response(text="spawned")

    app.router.add_get("/", spawn)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/") as resp:
            assert await resp.text() == "spawned"
        request_done.set()
        await asyncio.gather(*tasks)
    assert len(outcome) == 1
    assert "request has ended" in str(outcome[0])
    assert aop.statistics().arenas_created == 0


async def test_a_budget_already_exhausted_queues_before_the_handler() -> None:
    """When the pre-check sees the budget spent, the request waits for an arena up front
    (as before lazy lending) and its handler starts with the arena lent."""
    aop = electron.ArenaOfPools(arena_size=4096, max_arenas=1)
    app = web.Application()
    mw = setup(app, aop, current_arena=True, acquire_timeout=30)
    holding = asyncio.Event()
    release = asyncio.Event()
    lent_at_start: list[int] = []

    async def hold(request: web.Request) -> web.StreamResponse:
        current_arena()
        holding.set()
        await release.wait()
        return web.Response(text="held")

    async def quick(request: web.Request) -> web.StreamResponse:
        lent_at_start.append(aop.statistics().active_arenas)
        return web.Response(text="quick")

    app.router.add_get("/hold", hold)
    app.router.add_get("/quick", quick)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        held = asyncio.ensure_future(session.get(url + "/hold"))
        await holding.wait()
        waiter = asyncio.ensure_future(session.get(url + "/quick"))
        await eventually(lambda: aop.statistics().waiting == 1, "the request queues")
        release.set()
        async with await held as resp:
            assert resp.status == 200
        async with await waiter as resp:
            assert await resp.text() == "quick"
    assert lent_at_start == [1]
    assert mw.statistics().requests == 2
    assert nothing_lent(aop)


async def test_the_same_middleware_in_an_app_and_its_subapp(aop: electron.ArenaOfPools) -> None:
    mw = middleware(aop=aop)
    app = web.Application(middlewares=[mw])
    sub = web.Application(middlewares=[mw])

    async def handler(request: web.Request) -> web.StreamResponse:
        buf = request_buffer(request, 10)
        buf.write(b"twice")
        return PooledResponse(buf)

    async def plain(request: web.Request) -> web.StreamResponse:
        return web.Response(text="plain")

    sub.router.add_get("/x", handler)
    sub.router.add_get("/plain", plain)
    app.add_subapp("/sub", sub)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{url}/sub/x") as resp:
                assert await resp.read() == b"twice"
            async with session.get(f"{url}/sub/plain") as resp:
                assert await resp.text() == "plain"
    await eventually(lambda: nothing_lent(aop), "everything back")
    assert mw.statistics().in_flight == 0


async def test_an_inner_middleware_using_the_arena_lends_it(aop: electron.ArenaOfPools) -> None:
    @web.middleware
    async def inner(request: web.Request, handler: Handler) -> web.StreamResponse:
        current_arena().alloc(64)
        return await handler(request)

    mw = middleware(aop=aop, current_arena=True)
    app = web.Application(middlewares=[mw, inner])

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request_arena(request).used == 64
        return web.Response(text="ok")

    app.router.add_get("/", handler)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(url + "/") as resp,
    ):
        assert await resp.text() == "ok"
    assert nothing_lent(aop)
    assert mw.statistics().requests == 1


@pytest.mark.parametrize("round_", range(3))
async def test_threads_lending_while_the_request_ends(
    aop: electron.ArenaOfPools, round_: int
) -> None:
    """Threads keep asking for the request's arena while its handler is cancelled (client
    gone): each gets the arena (dead once the request ended) or ArenaClosed, never a second
    loan, and nothing stays registered or lent."""
    from electron.aio.aiohttp._lease import ACTIVE

    app = web.Application()
    setup(app, aop, current_arena=True)
    stop = threading.Event()
    started = threading.Event()
    outcomes: dict[str, int] = {"arena": 0, "ended": 0}
    lock = threading.Lock()

    def hammer(ctx: contextvars.Context) -> None:
        while not stop.is_set():
            try:  # a fresh copy each time: the context still holds the lazy marker
                ctx.copy().run(current_arena)
                kind = "arena"
            except electron.ArenaClosed:
                kind = "ended"
            with lock:
                outcomes[kind] += 1
            started.set()
            time.sleep(0.0002)

    threads: list[threading.Thread] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = contextvars.copy_context()
        for _ in range(3):
            t = threading.Thread(target=hammer, args=(ctx,))
            t.start()
            threads.append(t)
        await asyncio.sleep(30)  # cancelled when the client goes
        return web.Response(text="unreachable")

    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        async with aiohttp.ClientSession() as session:
            request = asyncio.ensure_future(session.get(url))
            await asyncio.to_thread(started.wait, 30)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
        await eventually(lambda: outcomes["ended"] > 0, "a thread found the request ended")
        stop.set()
        for t in threads:
            await asyncio.to_thread(t.join, 30)
    finally:
        stop.set()
        await runner.cleanup()
    assert outcomes["ended"] > 0, outcomes
    assert not ACTIVE, "a request stayed registered"
    s = aop.statistics()
    assert (s.active_arenas, s.arenas_created + s.arenas_reused) == (0, 1)


async def test_called_directly_the_middleware_leaves_the_context_as_it_found_it(
    aop: electron.ArenaOfPools,
) -> None:
    """Outside aiohttp's per-request task (a direct call) the caller's context outlives the
    request: afterwards it holds no arena again (LookupError), and inside a scope the
    scope's arena again."""
    from aiohttp.test_utils import make_mocked_request

    from electron._context import current_arena_var

    mw = middleware(aop=aop, current_arena=True)
    seen: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(id(request_arena(request)))
        return web.Response(text="ok")

    def writer() -> object:
        return type("Writer", (), {"output_size": 0, "transport": None})()

    for _ in range(3):
        await mw(make_mocked_request("GET", "/", writer=writer()), handler)
        assert current_arena_var not in contextvars.copy_context()
        with pytest.raises(LookupError, match="no current arena"):
            current_arena()
    async with aop.arena() as outer:
        for _ in range(2):
            await mw(make_mocked_request("GET", "/", writer=writer()), handler)
            assert seen[-1] != id(outer), "the request did not get an arena of its own"
            assert current_arena() is outer
    with pytest.raises(LookupError, match="no current arena"):
        current_arena()
    assert len(seen) == 5
    assert nothing_lent(aop)
    assert mw.statistics().requests == 5


async def test_a_cloned_request_shares_the_arena(aop: electron.ArenaOfPools) -> None:
    """A middleware inside electron's may hand the handler ``request.clone()``: the clone
    finds the same arena, and a second electron middleware sees the request is served."""
    app = web.Application()
    mw = setup(app, aop, as_middleware=True, current_arena=True)
    inner_mw = middleware(aop=aop, current_arena=True)
    arenas: list[electron.Arena] = []

    @web.middleware
    async def cloning(request: web.Request, handler: Handler) -> web.StreamResponse:
        arenas.append(request_arena(request))
        return await handler(request.clone())

    async def handler(request: web.Request) -> web.StreamResponse:
        arenas.append(request_arena(request))
        arenas.append(current_arena())
        return web.Response(text="cloned")

    app.middlewares.extend([cloning, inner_mw])
    app.router.add_get("/", handler)
    async with serve(app) as url, aiohttp.ClientSession() as session, session.get(url) as resp:
        assert await resp.text() == "cloned"
    assert len(arenas) == 3
    assert arenas[0] is arenas[1] is arenas[2]
    assert (mw.statistics().requests, inner_mw.statistics().requests) == (1, 0)
    assert nothing_lent(aop)


@pytest.mark.parametrize("lend_first", [False, True], ids=["lazy", "lent"])
async def test_the_helpers_work_on_a_clone(aop: electron.ArenaOfPools, lend_first: bool) -> None:
    """Handed a clone (as proxy middlewares such as aiohttp-remotes do), while the request's
    entry is still lazy or already lent, the handler's helpers find the request's memory."""
    app = web.Application()
    mw = setup(app, aop, as_middleware=True, current_arena=True)
    arenas: list[electron.Arena] = []

    @web.middleware
    async def cloning(request: web.Request, handler: Handler) -> web.StreamResponse:
        if lend_first:
            arenas.append(request_arena(request))
        clone = request.clone()
        assert clone.writer is request.writer  # what the registry keys on
        return await handler(clone)

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        arenas.append(request_arena(request))
        arenas.append(current_arena())
        buf = request_buffer(request, 16)
        buf.write(b"got ")
        buf.write(body.view())
        return PooledResponse(buf)

    app.middlewares.append(cloning)
    app.router.add_post("/", handler)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.post(url, data=b"payload") as resp,
    ):
        assert await resp.read() == b"got payload"
    assert len(arenas) == 2 + lend_first
    assert all(arena is arenas[0] for arena in arenas)
    assert mw.statistics().requests == 1
    await eventually(lambda: nothing_lent(aop), "everything back")


async def test_the_aiohttp_and_asgi_glues_serve_current_arena_in_one_process(
    aop: electron.ArenaOfPools,
) -> None:
    """Each glue registers its own lazy marker: an ASGI request served inside an aiohttp
    handler (both with ``current_arena=True``) gets its own pool's arena, and the aiohttp
    handler its own again afterwards."""
    httpx = pytest.importorskip("httpx")
    starlette = pytest.importorskip("starlette.applications")
    from starlette.responses import Response
    from starlette.routing import Route

    from electron.asgi import setup as asgi_setup

    asgi_aop = electron.ArenaOfPools(arena_size=4096)
    arenas: dict[str, electron.Arena] = {}

    async def asgi_handler(request: object) -> Response:
        arenas["asgi"] = current_arena()
        return Response(b"asgi")

    asgi_app = starlette.Starlette(routes=[Route("/", asgi_handler)])
    asgi_setup(asgi_app, asgi_aop, current_arena=True)

    async def handler(request: web.Request) -> web.StreamResponse:
        arenas["aiohttp"] = current_arena()
        transport = httpx.ASGITransport(asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as c:
            inner = (await c.get("/")).content
        assert current_arena() is arenas["aiohttp"]
        return web.Response(body=b"aiohttp+" + inner)

    app = web.Application()
    mw = setup(app, aop, current_arena=True)
    app.router.add_get("/", handler)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as session,
        session.get(url + "/") as resp,
    ):
        assert await resp.read() == b"aiohttp+asgi"
    assert arenas["asgi"] is not arenas["aiohttp"]
    assert (aop.statistics().arenas_created, asgi_aop.statistics().arenas_created) == (1, 1)
    assert mw.statistics().requests == 1
    assert nothing_lent(aop)
    assert nothing_lent(asgi_aop)
    asgi_aop.close()
