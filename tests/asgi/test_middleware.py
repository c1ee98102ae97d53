"""electron.asgi in-process: lazy lending, release at the response's end, budgets (503),
bodies (413, 408), errors, cancellation, statistics and metrics; the body policy per server."""

from __future__ import annotations

import asyncio
import collections
import gc
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import electron
from electron.aio._request_memory import RequestLease
from electron.aio.aiohttp import _lease as aiohttp_lease
from electron.asgi import (
    ElectronMiddleware,
    PooledResponse,
    read_body,
    request_arena,
    request_buffer,
    setup,
)
from electron.asgi import _middleware as asgi_middleware
from electron.asgi._servers import (
    COPIES_IN_SEND,
    DRAINS,
    FIFO_TRANSPORTS,
    PART,
    fifo_transport,
    owner_of,
    safe_body,
    server_of,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ASGI servers run on asyncio (uvloop: tests/asgi/test_example_server.py)


async def plain(request: Request) -> Response:
    return Response(b"plain")


async def pooled(request: Request) -> Response:
    n = int(request.path_params["n"])
    buf = request_buffer(request, n)
    buf.write(b"p" * n)
    request_arena(request).alloc(100)
    return PooledResponse(buf)


async def upload(request: Request) -> Response:
    body = await read_body(request)
    return JSONResponse({"size": len(body)})


async def plain_upload(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})  # no electron memory


async def fails(request: Request) -> Response:
    request_buffer(request, 10)
    raise RuntimeError("boom")


async def too_big(request: Request) -> Response:
    request_buffer(request, 1 << 30)  # more than the whole budget
    return Response(b"never")


def make_app(aop: electron.ArenaOfPools, **options: Any) -> tuple[Starlette, ElectronMiddleware]:
    app = Starlette(
        routes=[
            Route("/", plain),
            Route("/pooled/{n}", pooled),
            Route("/upload", upload, methods=["POST"]),
            Route("/plain-upload", plain_upload, methods=["POST"]),
            Route("/fails", fails),
            Route("/too-big", too_big),
        ]
    )
    return app, setup(app, aop, **options)


@asynccontextmanager
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def nothing_lent(aop: electron.ArenaOfPools) -> None:
    s = aop.statistics()
    assert (s.active_arenas, s.active_buffers, s.quarantine_events) == (0, 0, 0), s


async def test_a_request_that_uses_no_memory_costs_no_lease() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop)
        async with client(app) as c:
            assert (await c.get("/")).content == b"plain"
        assert mw.statistics().requests == 0
        assert aop.statistics().arenas_created == 0
        nothing_lent(aop)


async def test_pooled_memory_goes_back_when_the_response_is_complete() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop)
        async with client(app) as c:
            for n in (0, 10, 100_000):
                r = await c.get(f"/pooled/{n}")
                assert r.content == b"p" * n
                assert r.headers["content-length"] == str(n)
        stats = mw.statistics()
        assert (stats.requests, stats.in_flight, stats.errors) == (3, 0, 0)
        [usage] = mw.route_usage()
        assert usage.route == "/pooled/{n}"  # the template, not the path
        assert usage.requests == 3
        nothing_lent(aop)


async def test_the_lease_is_one_class_for_both_glues() -> None:
    assert issubclass(asgi_middleware.Lease, RequestLease)
    assert issubclass(aiohttp_lease.Lease, RequestLease)


async def test_read_body_takes_memory_as_bytes_arrive_and_refuses_oversized_bodies() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop, body_limit=100_000)
        async with client(app) as c:
            r = await c.post("/upload", content=b"u" * 70_000)
            assert r.json() == {"size": 70_000}
            r = await c.post("/upload", content=b"u" * 100_001)  # declared: refused unread
            assert r.status_code == 413

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(30):
                    yield b"c" * 10_000

            r = await c.post("/upload", content=chunks())  # chunked: refused when over
            assert r.status_code == 413
        assert mw.statistics().too_large == 2
        nothing_lent(aop)


async def test_a_body_that_stops_arriving_gets_408() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, _mw = make_app(aop, body_timeout=0.05)
        sent: list[MutableMapping[str, Any]] = []
        messages = [{"type": "http.request", "body": b"x" * 10, "more_body": True}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(10)
            raise AssertionError("read_body should have given up")

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "method": "POST", "path": "/upload", "raw_path": b"/upload",
            "query_string": b"", "headers": [], "root_path": "", "scheme": "http",
            "server": ("test", 80), "client": ("c", 1), "http_version": "1.1",
            "asgi": {"version": "3.0"},
        }  # fmt: skip
        await app(scope, receive, send)
        assert sent[0]["status"] == 408
        nothing_lent(aop)


async def test_expect_continue_over_the_limit_is_refused_before_the_body() -> None:
    """read_body refuses a declared length before its first receive (when uvicorn would ask
    the client for the body); a route that reads its body another way is not refused for
    what it accepts: body_limit is read_body's, not the route's."""
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop, body_limit=1000)
        async with client(app) as c:
            headers = {"Expect": "100-continue", "Content-Length": "5000"}
            r = await c.post("/upload", content=b"e" * 5000, headers=headers)
            assert r.status_code == 413
            r = await c.post("/plain-upload", content=b"e" * 5000, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json() == {"size": 5000}
        assert mw.statistics().too_large == 1
        nothing_lent(aop)


async def test_an_exhausted_budget_is_answered_503_with_retry_after() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10, max_arenas=1) as aop:
        app, mw = make_app(aop, acquire_timeout=0.05, retry_after=7)
        held = aop.get_arena()  # the whole budget
        try:
            async with client(app) as c:
                r = await c.get("/pooled/10")
                assert r.status_code == 503
                assert r.headers["retry-after"] == "7"
                assert (await c.get("/")).status_code == 503  # waits before the app runs
        finally:
            aop.return_arena(held)
        assert mw.statistics().rejected == 2
        async with client(app) as c:
            assert (await c.get("/pooled/10")).status_code == 200
        nothing_lent(aop)


async def test_more_than_the_whole_budget_is_a_final_500() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10, max_bytes=1 << 20) as aop:
        app, mw = make_app(aop)
        async with client(app) as c:
            r = await c.get("/too-big")
        assert r.status_code == 500
        assert "retry-after" not in r.headers
        assert "whole budget" in r.text
        assert mw.statistics().errors == 1
        nothing_lent(aop)


async def test_what_never_fits_beside_the_requests_own_memory_is_final_not_503() -> None:
    """A body within the budget, but not beside the arena the request holds itself: waiting
    for other requests can never make it fit, so the answer is final (500 for a response,
    413 for an upload), never 503 + Retry-After, which a client would retry forever."""
    budget = 1 << 20
    with electron.ArenaOfPools(arena_size=64 << 10, max_bytes=budget) as aop:
        app, mw = make_app(aop)
        async with client(app) as c:
            r = await c.get(f"/pooled/{budget}")  # the whole budget, beside the request's arena
            assert (r.status_code, r.headers.get("retry-after")) == (500, None)
            r = await c.post("/upload", content=bytes(budget - 1000))
            assert (r.status_code, r.headers.get("retry-after")) == (413, None)
            assert (await c.get(f"/pooled/{budget // 2}")).status_code == 200  # this one fits
        stats = mw.statistics()
        assert (stats.rejected, stats.errors, stats.too_large) == (0, 1, 1)
        nothing_lent(aop)


async def test_handler_errors_give_everything_back() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop)
        async with client(app) as c:
            assert (await c.get("/fails")).status_code == 500
        assert mw.statistics().errors == 1
        nothing_lent(aop)


async def test_a_cancelled_request_gives_everything_back() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        started = asyncio.Event()

        async def slow(scope: Any, receive: Any, send: Any) -> None:
            request_buffer(scope, 1000)
            started.set()
            await asyncio.sleep(10)

        mw = ElectronMiddleware(slow, aop=aop)
        scope = {"type": "http", "path": "/", "headers": []}
        task = asyncio.ensure_future(mw(scope, None, None))  # type: ignore[arg-type]
        await started.wait()
        assert aop.statistics().active_buffers == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert mw.statistics().cancelled == 1
        nothing_lent(aop)


async def test_helpers_outside_the_middleware_say_what_is_missing() -> None:
    with pytest.raises(LookupError, match="ElectronMiddleware"):
        request_arena({"type": "http"})


async def test_excluded_paths_get_no_memory() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, _mw = make_app(aop, exclude=("/pooled/5",))
        async with client(app) as c:
            assert (await c.get("/pooled/5")).status_code == 500  # LookupError: no memory
        nothing_lent(aop)


async def test_the_middleware_is_a_usage_source_for_metrics() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from electron import metrics

    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop)
        registry = prometheus_client.CollectorRegistry()
        exported = metrics.Metrics(aop, mw, registry=registry)
        async with client(app) as c:
            await c.get("/pooled/1000")
        text = exported.exposition().decode()
        assert "electron_http_requests_total 1.0" in text
        assert 'electron_request_bytes_count{route="/pooled/{n}"} 1.0' in text
        exported.close()
        nothing_lent(aop)


async def test_lifespan_trims_while_the_server_runs() -> None:
    with electron.ArenaOfPools(arena_size=16 << 10, trim_interval=0.01) as aop:
        app, _ = make_app(aop)
        async with client(app) as c:
            await c.get("/pooled/100000")
        assert aop.statistics().pooled_buffers == 1
        messages = asyncio.Queue[dict[str, str]]()
        await messages.put({"type": "lifespan.startup"})
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        task = asyncio.ensure_future(app({"type": "lifespan"}, messages.get, send))
        for _ in range(500):
            if aop.statistics().pooled_buffers == 0:
                break
            await asyncio.sleep(0.01)
        assert aop.statistics().pooled_buffers == 0, "idle memory was not trimmed"
        await messages.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 5)
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]


# -- what each server gets -----------------------------------------------------------------


class _Cycle:
    async def send(self, message: object) -> None: ...


def _send_of(module: str) -> Any:
    cls = type("RequestResponseCycle", (_Cycle,), {"__module__": module})
    return cls().send


@pytest.mark.parametrize(
    ("module", "chunked", "copied"),
    [
        ("uvicorn.protocols.http.httptools_impl", False, True),  # transport.write(body)
        ("uvicorn.protocols.http.httptools_impl", True, False),  # joined with its framing
        ("uvicorn.protocols.http.h11_impl", False, False),  # h11 joins
        ("hypercorn.protocol.http_stream", False, False),  # bytes(body) in send
        ("granian._granian", False, True),  # memoryview: slow path, other formats empty
        ("some.other.server", True, True),
    ],
)
async def test_the_body_policy_per_server(module: str, chunked: bool, copied: bool) -> None:
    region = bytearray(b"abcd")
    view = memoryview(region)
    server = server_of(_send_of(module))
    assert server == module
    out = safe_body(view, server, chunked)
    assert (type(out) is bytes) is copied
    assert bytes(out) == b"abcd"  # type: ignore[call-overload]
    # A view of another format is always copied: servers count len() as bytes.
    wide = safe_body(view.cast("I"), server, chunked)
    assert wide == b"abcd"
    assert safe_body(b"x", server, chunked) == b"x"
    assert server_of(lambda m: None) == ""  # type: ignore[arg-type,return-value]



class _Recorder:
    """A server's ``send`` that records each body and whether the request's memory was
    still lent while the server had it."""

    def __init__(self, mw: ElectronMiddleware) -> None:
        self.mw = mw
        self.scope: dict[str, Any] = {}
        self.bodies: list[tuple[bytes, bool, bool, int]] = []  # body, copied, more, lent

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            lent = self.mw.statistics().in_flight
            more = message.get("more_body", False)
            self.bodies.append((bytes(body), type(body) is bytes, more, lent))


async def test_a_request_leaves_no_reference_cycle_for_the_garbage_collector() -> None:
    """The scope refers to the request's state while it is served; afterwards nothing refers
    back, so a request's objects go as soon as the server drops it, not at the next garbage
    collection (which, with a request's cycle to find each time, cost the server more than
    all the rest of the middleware on a hello world)."""
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        cycle = type("RequestResponseCycle", (_Recorder,), {"__module__": "x"})

        async def serve(path: str) -> None:
            # A server's object per request, which refers to the scope (as uvicorn's does).
            server = cycle(mw)
            server.scope = {"type": "http", "method": "GET", "path": path, "query_string": b""}
            await app(server.scope, receive, server.send)

        await serve("/")  # builds the middleware stack
        gc.collect()
        gc.disable()
        try:
            for path in ("/", "/pooled/100", "/pooled/100000"):
                await serve(path)
            assert gc.collect() == 0
        finally:
            gc.enable()
        nothing_lent(aop)


@pytest.mark.parametrize("module", sorted(DRAINS))
async def test_a_pooled_body_reaches_a_server_that_drains_in_parts(module: str) -> None:
    """Where the server's send waits for its transport, a pooled body goes in parts of at
    most PART bytes (the server's copies, out of the budget, stay one part at a time), and
    an empty final body, during which the memory is still lent: it goes back only once the
    server's transport drained. (Under uvicorn's httptools protocol, so where electron
    does not know its transport: see the tests below for one it knows.) The server is
    recognised through Starlette's error middleware, which setup() puts electron's
    middleware inside."""
    with electron.ArenaOfPools(arena_size=16 << 10, max_bytes=8 << 20) as aop:
        app, mw = make_app(aop)
        server = type("RequestResponseCycle", (_Recorder,), {"__module__": module})(mw)
        n = 2 * PART + 1000
        scope = {
            "type": "http",
            "method": "GET",
            "path": f"/pooled/{n}",
            "headers": [],
            "query_string": b"",
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        await app(scope, receive, server.send)
        bodies = server.bodies
        sizes = [(len(body), more) for body, _, more, _ in bodies]
        assert sizes == [(PART, True), (PART, True), (1000, True), (0, False)]
        assert b"".join(body for body, _, _, _ in bodies) == b"p" * n
        copies = module not in COPIES_IN_SEND  # uvicorn, httptools, with Content-Length
        assert all(copied is copies for _, copied, _, _ in bodies[:-1])
        assert [lent for _, _, _, lent in bodies] == [1, 1, 1, 1]  # lent until the last returned
        assert mw.statistics().in_flight == 0
        nothing_lent(aop)


async def test_headers_given_as_an_iterator_still_show_the_content_length() -> None:
    """ASGI allows any iterable of headers; uvicorn consumes them (``list(headers)``). The
    middleware must still see the Content-Length afterwards: under uvicorn's httptools
    protocol a body with Content-Length goes to ``transport.write()`` as it is (uvloop keeps
    referencing it after ``send`` returned), so a pooled body must reach it as a copy."""
    module = "uvicorn.protocols.http.httptools_impl"
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:

        class Cycle(_Recorder):
            async def send(self, message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    list(message.get("headers", []))  # as uvicorn does
                await super().send(message)

        Cycle.__module__ = module

        async def app(scope: Any, receive: Any, send: Any) -> None:
            buf = request_buffer(scope, 1000)
            buf.write(b"x" * 1000)
            headers = iter([(b"content-length", b"1000")])
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": buf.view()})

        mw = ElectronMiddleware(app, aop=aop)
        server = Cycle(mw)
        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await mw(scope, None, server.send)  # type: ignore[arg-type]
        assert [(body, copied) for body, copied, _, _ in server.bodies[:1]] == [
            (b"x" * 1000, True)
        ]
        nothing_lent(aop)


# -- uvicorn's httptools protocol on a transport electron knows --------------------------------

HIGH = 64 << 10  # the transport's high-water mark


class TCPTransport:
    """A transport as uvloop's, as far as electron relies on it: ``write()`` keeps a view of
    what the kernel did not take yet and lets go of it in order once it did, and writing is
    paused (``writable``) from above HIGH bytes held to at most 16. The kernel takes
    ``rate`` bytes per loop iteration (``kernel()``), or with ``rate=None`` everything at
    once: then the view goes at once too (uvloop's first try), or with ``late=True`` on the
    next loop iteration (libuv's completion callback, after a second try completed at
    once), as it does for what the kernel took later."""

    def __init__(self, rate: int | None, late: bool = True) -> None:
        self.rate = rate
        self.late = late
        self.held: collections.deque[memoryview] = collections.deque()
        self.sent = bytearray()
        self.writable = asyncio.Event()
        self.writable.set()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16, HIGH)

    def get_write_buffer_size(self) -> int:
        return sum(v.nbytes for v in self.held)

    def write(self, data: Any) -> None:
        view = memoryview(data).cast("B")  # an export of the memory, as uvloop's
        if self.rate is None and not self.late:
            self.sent += view
            view.release()
        elif self.rate is None:
            self._took(view, view.nbytes)
        else:
            self.held.append(view)
            if self.get_write_buffer_size() > HIGH:
                self.writable.clear()

    def _took(self, view: memoryview, n: int) -> None:
        self.sent += view[:n]
        if n == view.nbytes:
            asyncio.get_running_loop().call_soon(view.release)

    async def kernel(self) -> None:
        while True:
            await asyncio.sleep(0)
            left = self.rate or 0
            while self.held and left:
                view = self.held[0]
                n = min(left, view.nbytes)
                left -= n
                self._took(view, n)
                if n == view.nbytes:
                    self.held.popleft()
                else:
                    self.held[0] = view[n:]
                    view.release()
            if self.get_write_buffer_size() <= 16:
                self.writable.set()


TCPTransport.__module__ = "uvloop.loop"


class RequestResponseCycle(_Recorder):
    """uvicorn's httptools protocol, as far as electron relies on it: ``send`` waits while its
    transport paused writing, then hands the body to ``write()``."""

    def __init__(self, mw: ElectronMiddleware, transport: TCPTransport) -> None:
        super().__init__(mw)
        self.transport = transport
        self.as_is: list[bool] = []  # each body: the application's memory itself?
        self.lent_next: list[int] = []  # requests lent when the loop ran on after the last

    async def send(self, message: MutableMapping[str, Any]) -> None:
        await self.transport.writable.wait()
        await super().send(message)
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            self.as_is.append(type(body) is memoryview)
            self.transport.write(body)
            if not message.get("more_body", False):
                asyncio.get_running_loop().call_soon(self._lent_next)

    def _lent_next(self) -> None:
        self.lent_next.append(self.mw.statistics().in_flight)


RequestResponseCycle.__module__ = "uvicorn.protocols.http.httptools_impl"


async def serve_pooled(
    aop: electron.ArenaOfPools, n: int, rate: int | None, streamed: bool = False, late: bool = True
) -> RequestResponseCycle:
    """A pooled body of ``n`` bytes (``p`` at first, overwritten by the next loans of its
    memory) to uvicorn's httptools protocol on ``TCPTransport(rate)``, then other requests
    that take the same memory, until the kernel took the first one's."""
    app, mw = make_app(aop)
    transport = TCPTransport(rate, late)
    kernel = asyncio.get_running_loop().create_task(transport.kernel())
    server = RequestResponseCycle(mw, transport)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def serve(cycle: Any, path: str) -> None:
        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
        await app(scope, receive, cycle.send)

    try:
        if streamed:

            async def stream(scope: Any, receive: Any, send: Any) -> None:
                buf = request_buffer(scope, n)
                buf.write(b"p" * n)
                headers = [(b"content-length", str(n).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": buf.view(), "more_body": True})
                await send({"type": "http.response.body", "body": b""})

            mw.app = stream
            await mw({"type": "http", "method": "GET", "path": "/"}, receive, server.send)
        else:
            await serve(server, f"/pooled/{n}")
        await asyncio.sleep(0)  # the loop runs on (lent_next)
        while transport.held:
            await serve(_Recorder(mw), f"/pooled/{n}")  # lent again, written with p's
            await asyncio.sleep(0)
    finally:
        kernel.cancel()
    assert bytes(transport.sent) == b"p" * n
    return server


@pytest.mark.parametrize("late", [False, True])
async def test_a_pooled_body_reaches_a_known_transport_as_it_is_but_for_its_tail(
    late: bool,
) -> None:
    """uvicorn's httptools protocol on a transport that lets go of what it wrote in order:
    the body goes as it is (no copy), but for a copy of its last HIGH bytes, which ends the
    response where the transport already wrote the rest. The memory goes back as soon as
    the transport holds no view of it: at once where it let go at once (other requests of
    the same loop iteration can take it), else one loop iteration later (uvloop lets go of
    memory the kernel took in a second try in a callback on the next loop iteration;
    without that wait the pool would find the memory still referenced and quarantine it)."""
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        n = 300_000
        server = await serve_pooled(aop, n, rate=None, late=late)
        sizes = [(len(body), copied, more, lent) for body, copied, more, lent in server.bodies]
        assert sizes == [(n - HIGH, False, True, 1), (HIGH, True, False, 1)]
        assert server.as_is == [True, False]
        assert server.lent_next[0] == (1 if late else 0)
        nothing_lent(aop)


async def test_a_slow_reader_holds_the_memory_until_its_transport_wrote_it() -> None:
    """The same to a client that reads slowly: the transport still holds part of the body
    after the tail was sent, so an empty final body follows, which the server sends once its
    transport holds at most HIGH bytes: all of them copies. The memory stays lent until
    then, and the client gets its own bytes."""
    with electron.ArenaOfPools(arena_size=16 << 10, max_bytes=8 << 20) as aop:
        n = 300_000
        server = await serve_pooled(aop, n, rate=4096)
        sizes = [(len(body), copied, more, lent) for body, copied, more, lent in server.bodies]
        assert sizes == [(n - HIGH, False, True, 1), (HIGH, True, True, 1), (0, True, False, 1)]
        nothing_lent(aop)


async def test_pooled_parts_of_a_streamed_response_each_end_with_a_copied_tail() -> None:
    """A pooled body sent with more to come also ends with a copy of its tail, so that the
    transport holds none of the pooled memory once the final body (here an empty one the
    application sends) returned, whatever came in between."""
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        n = 300_000
        server = await serve_pooled(aop, n, rate=4096, streamed=True)
        sizes = [(len(body), copied, more) for body, copied, more, _ in server.bodies]
        assert sizes == [(n - HIGH, False, True), (HIGH, True, True), (0, True, False)]
        nothing_lent(aop)


class _SSLProtocolTransport(TCPTransport):
    """A transport electron does not rely on (uvloop's for TLS has its own buffering)."""


_SSLProtocolTransport.__module__ = "uvloop.loop"


@pytest.mark.parametrize(
    ("n", "kind", "as_is"),
    [
        (2 * HIGH + 1, TCPTransport, True),
        (2 * HIGH, TCPTransport, False),  # the part sent as it is would not exceed HIGH
        (2 * HIGH + 1, _SSLProtocolTransport, False),
    ],
)
async def test_which_pooled_bodies_reach_uvicorn_as_they_are(
    n: int, kind: type[TCPTransport], as_is: bool
) -> None:
    """Only a body larger than twice the high-water mark, on a transport electron knows: the
    part sent as it is must be larger than HIGH, so that uvloop never writes it in one libuv
    request with the tail (which would keep it referenced until the tail was written too).
    Other bodies are copied, in parts."""
    assert "uvloop.loop.TCPTransport" in FIFO_TRANSPORTS
    with electron.ArenaOfPools(arena_size=16 << 10) as aop:
        app, mw = make_app(aop)
        server = RequestResponseCycle(mw, kind(None))
        assert (fifo_transport(owner_of(server.send)) is not None) is (kind is TCPTransport)
        scope = {"type": "http", "method": "GET", "path": f"/pooled/{n}", "headers": []}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        await app({**scope, "query_string": b""}, receive, server.send)
        assert server.as_is[0] is as_is
        assert len(server.as_is) == (2 if as_is else 2 + (n - 1) // PART)
        nothing_lent(aop)
