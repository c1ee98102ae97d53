"""``current_arena()`` inside ASGI requests (``current_arena=True``): the request's arena in
the application, its tasks and threads, lent on first use, given back with the response, and
never found again by a task that outlives the request (hazard: contexts are copied into
child tasks)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import electron
from electron._context import current_arena_var
from electron.aio import current_arena
from electron.asgi import ElectronMiddleware, request_arena, request_buffer, setup
from tests.asgi.test_middleware import client, nothing_lent

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(
    aop: electron.ArenaOfPools, *routes: Route, **options: Any
) -> tuple[Starlette, ElectronMiddleware]:
    app = Starlette(routes=list(routes))
    return app, setup(app, aop, **options)


async def test_the_handler_its_tasks_and_threads_get_the_one_arena_lent_on_first_use() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop, electron.ArenaOfPools() as other:
        seen: list[electron.Arena] = []

        def in_thread() -> electron.Arena:
            return current_arena()

        async def in_task() -> electron.Arena:
            await asyncio.sleep(0)
            return current_arena()

        async def handler(request: Request) -> Response:
            assert aop.statistics().active_arenas == 0  # nothing lent up front
            first = current_arena()  # lends
            assert aop.statistics().active_arenas == 1
            seen.extend([first, current_arena(), request_arena(request)])
            seen.append(await asyncio.create_task(in_task()))
            seen.append(await asyncio.to_thread(in_thread))
            async with other.arena() as inner:  # a scope inside the request still nests
                assert current_arena() is inner
            assert current_arena() is first
            view = first.alloc(2)
            view[:] = b"ok"
            return Response(bytes(view))

        def sync_handler(request: Request) -> Response:  # Starlette runs it in a thread
            seen.append(current_arena())
            return Response(b"sync")

        app, mw = make_app(
            aop, Route("/", handler), Route("/sync", sync_handler), current_arena=True
        )
        assert mw.current_arena is True
        async with client(app) as c:
            assert (await c.get("/")).content == b"ok"
            assert (await c.get("/sync")).content == b"sync"
        assert len(seen) == 6
        assert all(arena is seen[0] for arena in seen[:5])
        assert seen[5] is not seen[0]
        assert all(arena.closed for arena in seen)  # given back with the response
        assert mw.statistics().requests == 2
        assert aop.statistics().arenas_created + aop.statistics().arenas_reused == 2
        nothing_lent(aop)
        with pytest.raises(LookupError, match="no current arena"):
            current_arena()  # the marker went with the request


async def test_a_request_that_never_calls_it_lends_nothing() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:

        async def plain(request: Request) -> Response:
            return Response(b"plain")

        app, mw = make_app(aop, Route("/", plain), current_arena=True)
        async with client(app) as c:
            for _ in range(3):
                assert (await c.get("/")).content == b"plain"
        assert mw.statistics().requests == 0
        assert aop.statistics().arenas_created == 0
        nothing_lent(aop)


@pytest.mark.parametrize("case", ["default", "excluded"])
async def test_it_is_opt_in_and_excluded_paths_get_none(case: str) -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        messages: list[str] = []

        async def handler(request: Request) -> Response:
            with pytest.raises(LookupError) as info:
                current_arena()
            messages.append(str(info.value))
            return Response(b"none")

        options: dict[str, Any] = (
            {} if case == "default" else {"current_arena": True, "exclude": ("/",)}
        )
        app, mw = make_app(aop, Route("/", handler), **options)
        assert mw.current_arena is (case == "excluded")
        async with client(app) as c:
            assert (await c.get("/")).content == b"none"
        [message] = messages
        assert "request_arena(request)" in message
        assert "current_arena=True" in message
        nothing_lent(aop)


async def test_a_first_use_beyond_the_budget_is_answered_503() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10, max_arenas=1) as aop:

        async def late(request: Request) -> Response:
            held = aop.get_arena()  # another request took the budget after admission
            try:
                current_arena()  # PoolExhausted at once: the middleware answers 503
            finally:
                aop.return_arena(held)
            raise AssertionError("unreachable")

        app, mw = make_app(aop, Route("/", late), current_arena=True, retry_after=4)
        async with client(app) as c:
            r = await c.get("/")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "4"
        assert (mw.statistics().rejected, mw.statistics().errors) == (1, 0)
        nothing_lent(aop)


@pytest.mark.parametrize("used", [False, True], ids=["unused", "used-during-the-request"])
async def test_a_task_that_outlives_the_request_gets_arena_closed(used: bool) -> None:
    """The child task's context still holds the request's marker (or, had the arena been
    cached there, the arena that went back): after the response it must get ArenaClosed,
    never an arena, and nothing is lent for it."""
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        response_sent = asyncio.Event()
        outcome: list[object] = []

        async def child() -> None:
            if used:
                current_arena().alloc(8)
            await response_sent.wait()
            try:
                outcome.append(current_arena())
            except electron.ArenaClosed as exc:
                outcome.append(exc)

        tasks: list[asyncio.Task[None]] = []

        async def spawn(request: Request) -> Response:
            tasks.append(asyncio.create_task(child()))
            await asyncio.sleep(0)  # the child runs up to its wait
            return Response(b"spawned")

        app, _mw = make_app(aop, Route("/", spawn), current_arena=True)
        async with client(app) as c:
            assert (await c.get("/")).content == b"spawned"
        nothing_lent(aop)
        response_sent.set()
        await asyncio.gather(*tasks)
        [result] = outcome
        assert isinstance(result, electron.ArenaClosed), result
        assert "request has ended" in str(result)
        s = aop.statistics()
        assert s.arenas_created + s.arenas_reused == int(used)  # nothing lent late
        nothing_lent(aop)


async def test_a_background_task_runs_after_the_memory_went_back() -> None:
    """Starlette runs a response's background task after the response was sent, in the
    request's own context: the request's memory is gone by then (ArenaClosed)."""
    from starlette.background import BackgroundTask

    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        outcome: list[BaseException] = []

        def later() -> None:
            with pytest.raises(electron.ArenaClosed) as info:
                current_arena()
            outcome.append(info.value)

        async def handler(request: Request) -> Response:
            current_arena().alloc(8)
            return Response(b"sent", background=BackgroundTask(later))

        app, _mw = make_app(aop, Route("/", handler), current_arena=True)
        async with client(app) as c:
            assert (await c.get("/")).content == b"sent"
        assert len(outcome) == 1
        nothing_lent(aop)


async def test_called_directly_the_middleware_leaves_the_context_as_it_found_it() -> None:
    """Pure ASGI, no framework: after the call the caller's context holds what it held
    before (no arena, or the enclosing scope's)."""
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        seen: list[electron.Arena] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(current_arena())
            assert request_arena(scope) is seen[-1]
            request_buffer(scope, 10)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x"})
            with pytest.raises(electron.ArenaClosed):
                current_arena()  # the response is complete: the memory went back

        async def send(message: Any) -> None:
            pass

        mw = ElectronMiddleware(app, aop=aop, current_arena=True)
        for _ in range(2):
            await mw({"type": "http", "path": "/", "headers": []}, None, send)  # type: ignore[arg-type]
            assert current_arena_var not in contextvars.copy_context()
        async with aop.arena() as outer:
            await mw({"type": "http", "path": "/", "headers": []}, None, send)  # type: ignore[arg-type]
            assert current_arena() is outer
            assert seen[-1] is not outer
        assert len(seen) == 3
        assert all(arena.closed for arena in seen)
        assert mw.statistics().requests == 3
        nothing_lent(aop)
