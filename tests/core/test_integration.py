"""The Go design's integration plan (electron-go-integration-tests.txt), ported.

Component interaction, arena + pool coordination, error propagation, leak detection,
thread concurrency and stress, and the Conduit/Jolt usage simulations. Throughput is
measured in bench/, never asserted here.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import random
import threading
import time
import tracemalloc
from dataclasses import dataclass

import pytest

from electron import (
    Arena,
    ArenaOfPools,
    BufferPool,
    InsufficientCapacity,
    ObjectPool,
    PoolExhausted,
)


class Context(ctypes.Structure):
    """A request context allocated in the request's arena."""

    _fields_ = [
        ("request_id", ctypes.c_int64),
        ("status", ctypes.c_int32),
        ("path", ctypes.c_char * 64),
    ]


class BufStruct(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint32), ("data", ctypes.c_char * 60)]


class Header(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 32), ("value", ctypes.c_char * 96)]


def address(view: memoryview) -> int:
    probe = (ctypes.c_char * 1).from_buffer(view)
    try:
        return ctypes.addressof(probe)
    finally:
        del probe


# -- TestArenaOfPools_Integration --------------------------------------------------------------


def test_arena_of_pools_integration_1000_requests() -> None:
    with ArenaOfPools(arena_size=64 << 10, pool_size=100, metrics=True) as aop:
        for i in range(1000):
            arena = aop.get_arena()
            ctx = arena.new(Context)
            assert (ctx.request_id, ctx.status, ctx.path) == (0, 0, b""), (
                f"request {i} sees the previous request's context"
            )
            ctx.request_id = i
            ctx.path = f"/items/{i}".encode()
            buf = aop.get_buffer(4096)
            assert len(buf) == 0
            buf.write_str("response data")
            buf.write_str(f" #{ctx.request_id}")
            assert buf.getvalue() == f"response data #{i}".encode()
            del ctx
            aop.return_buffer(buf)
            aop.return_arena(arena)
        s = aop.statistics()
        assert s.active_arenas == 0, f"arena leak: {s.active_arenas} arenas still active"
        assert s.active_buffers == 0
        assert s.arenas_created == 1, "sequential requests must reuse one arena"
        assert s.buffers_created == 1
        assert s.quarantined == 0
        assert s.arena_used_bytes_max >= ctypes.sizeof(Context)


# -- TestArenaPoolIntegration / TestArenaPoolCoordination --------------------------------------


def test_arena_pool_integration() -> None:
    arena = Arena(64 << 10)
    pool = ObjectPool(lambda: arena.new(BufStruct), arena=arena)
    buf = pool.get()
    buf.data = b"test"
    buf.len = 4
    pool.put(buf)
    buf2 = pool.get()
    assert buf2 is buf, "pool should reuse objects"
    assert buf2.data == b"test"
    pool.put(buf2)
    del buf, buf2
    arena.reset()
    # New gets work and hand out zeroed objects of the new generation.
    fresh = pool.get()
    assert (fresh.len, fresh.data) == (0, b"")
    assert pool.statistics().generation == 1
    del fresh
    arena.close()


def test_coordination_pool_with_arena_backing() -> None:
    arena = Arena(64 << 10)
    pool = ObjectPool(lambda: arena.new(BufStruct), arena=arena)
    objs = [pool.get() for _ in range(10)]
    addrs = sorted(ctypes.addressof(o) for o in objs)
    base = address(arena.alloc(1))
    # All objects live in the arena, at distinct aligned addresses, without overlap.
    assert all(a % 16 == 0 for a in addrs)
    assert all(b - a >= ctypes.sizeof(BufStruct) for a, b in itertools.pairwise(addrs))
    assert base - arena.capacity < addrs[0] <= addrs[-1] < base
    used = arena.used
    for o in objs:
        pool.put(o)
    again = [pool.get() for _ in range(10)]
    assert {id(o) for o in again} == {id(o) for o in objs}
    assert arena.used == used, "reused objects must not allocate again"
    del objs, again


def test_coordination_pool_survives_arena_reset() -> None:
    arena = Arena(64 << 10)
    pool = ObjectPool(lambda: arena.new(BufStruct), arena=arena)
    old_lent = pool.get()
    old_idle = pool.get()
    old_lent.data = b"request one"
    old_idle.data = b"request one, idle"
    pool.put(old_idle)
    del old_idle
    for generation in range(1, 4):
        arena.reset()
        new = [pool.get() for _ in range(3)]
        assert all(o is not old_lent for o in new)
        assert all((o.len, o.data) == (0, b"") for o in new), "old generation leaked"
        for o in new:
            o.data = f"gen {generation}".encode()
            pool.put(o)
        assert pool.statistics().generation == generation
        del new
    old_lent.data = b"scribble"  # its memory was quarantined: no effect on the pool's objects
    pool.put(old_lent)  # silently dropped
    assert all(o.data == b"gen 3" for o in (pool.get() for _ in range(3)))
    assert arena.quarantined >= 1
    del old_lent


def test_coordination_multiple_pools_one_arena() -> None:
    arena = Arena(64 << 10)
    contexts = ObjectPool(lambda: arena.new(Context), arena=arena)
    headers = ObjectPool(lambda: arena.new(Header), arena=arena)
    c = [contexts.get() for _ in range(5)]
    h = [headers.get() for _ in range(5)]
    spans = sorted(
        [(ctypes.addressof(o), ctypes.addressof(o) + ctypes.sizeof(Context)) for o in c]
        + [(ctypes.addressof(o), ctypes.addressof(o) + ctypes.sizeof(Header)) for o in h]
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "objects of two pools overlap in the arena"
    for i, ctx in enumerate(c):
        ctx.request_id = i
    for hdr in h:
        hdr.name = b"x-test"
    assert [x.request_id for x in c] == list(range(5))
    assert all(x.name == b"x-test" for x in h)
    for ctx in c:
        contexts.put(ctx)
    for hdr in h:
        headers.put(hdr)
    del c, h, ctx, hdr
    arena.reset()
    assert (len(contexts), len(headers)) == (0, 0), "a reset must clear every bound pool"
    assert contexts.statistics().generation == headers.statistics().generation == 1
    nc, nh = contexts.get(), headers.get()
    assert (nc.request_id, nh.name) == (0, b"")
    assert arena.quarantined == 0
    del nc, nh


# -- TestErrorPropagation ---------------------------------------------------------------------


def test_error_propagation_insufficient_capacity() -> None:
    arena = Arena(1024)
    assert arena.try_alloc(2048) is None
    with pytest.raises(InsufficientCapacity) as info:
        arena.alloc(2048)
    assert isinstance(info.value, MemoryError)
    assert info.value.requested == 2048
    ptr = arena.alloc(512)
    assert len(ptr) == 512, "arena should still work after error"


def test_error_inside_a_request_scope_propagates_and_returns_the_arena() -> None:
    with ArenaOfPools(arena_size=1024) as aop:

        def request() -> Arena:
            with aop.arena() as arena:
                arena.alloc(512)
                arena.alloc(2048)
            return arena

        with pytest.raises(InsufficientCapacity) as info:
            request()
        assert info.value.requested == 2048
        assert aop.statistics().active_arenas == 0
        s = aop.statistics()
        assert (s.active_arenas, s.pooled_arenas) == (0, 1)
        with aop.arena() as again:
            assert again.alloc(1024) == bytes(1024)


def test_pool_exhausted_propagates_through_nested_requests() -> None:
    with ArenaOfPools(arena_size=1024, max_arenas=1) as aop:

        def outer_request() -> None:
            with aop.arena() as outer:
                outer.alloc(10)
                with aop.arena(timeout=0):
                    pass

        with pytest.raises(PoolExhausted) as info:
            outer_request()
        assert "max_arenas=1" in str(info.value)
        assert aop.statistics().active_arenas == 0


def test_factory_error_propagates_from_object_pool() -> None:
    arena = Arena(64)
    pool = ObjectPool(lambda: arena.new(ctypes.c_char * 48), arena=arena)
    first = pool.get()
    with pytest.raises(InsufficientCapacity):
        pool.get()
    s = pool.statistics()
    assert (s.active, s.created) == (1, 1)
    pool.put(first)
    assert pool.get() is first
    del first


# -- TestNoMemoryLeaks ------------------------------------------------------------------------


def _traced_growth(iterations: int, step: object) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(iterations):
            step(i)  # type: ignore[operator]
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_no_memory_leak_get_alloc_return() -> None:
    aop = ArenaOfPools(arena_size=64 << 10)

    def step(i: int) -> None:
        arena = aop.get_arena()
        arena.alloc(1024)
        aop.return_arena(arena)

    for i in range(100):  # warm up: the pool's one arena exists before measuring
        step(i)
    leaked = _traced_growth(10_000, step)
    aop.close()
    assert leaked < 1 << 20, f"memory leak detected: {leaked} bytes over 10,000 iterations"


def test_no_memory_leak_full_request_cycle() -> None:
    aop = ArenaOfPools(arena_size=64 << 10)

    def step(i: int) -> None:
        arena = aop.get_arena()
        ctx = arena.new(Context, i)
        arena.new(dict, a=i)
        v = arena.alloc(256)
        v[:8] = i.to_bytes(8, "little")
        buf = aop.get_buffer(1024)
        buf.write_str("response")
        buf.view()
        aop.return_buffer(buf)
        del ctx
        aop.return_arena(arena)

    for i in range(100):
        step(i)
    leaked = _traced_growth(10_000, step)
    s = aop.statistics()
    aop.close()
    assert (s.active_arenas, s.active_buffers, s.quarantined) == (0, 0, 0)
    assert leaked < 1 << 20, f"memory leak detected: {leaked} bytes over 10,000 iterations"


def test_no_memory_leak_with_arena_resets() -> None:
    arena = Arena(64 << 10)
    pool = ObjectPool(lambda: arena.new(BufStruct), arena=arena)

    def step(i: int) -> None:
        obj = pool.get()
        obj.len = i & 0xFFFF
        pool.put(obj)
        del obj  # nothing outside the arena holds its memory at reset
        arena.alloc(512)
        arena.reset()

    for i in range(100):
        step(i)
    leaked = _traced_growth(10_000, step)
    assert arena.quarantined == 0
    assert leaked < 1 << 20, f"memory leak detected: {leaked} bytes over 10,000 resets"


# -- TestConcurrentIntegration ----------------------------------------------------------------


def test_concurrent_integration_10_threads_1000_iterations() -> None:
    goroutines, iterations = 10, 1000
    with ArenaOfPools(arena_size=16 << 10, pool_size=16) as aop:
        errors: list[str] = []
        start = threading.Barrier(goroutines)

        def worker(ident: int) -> None:
            start.wait()
            tag = bytes([ident + 1]) * 64
            try:
                for j in range(iterations):
                    arena = aop.get_arena()
                    ptr = arena.alloc(64)
                    if ptr != bytes(64):
                        errors.append(f"thread {ident}: dirty arena memory at iteration {j}")
                    ptr[:] = tag
                    buf = aop.get_buffer(1024)
                    buf.write_str("test")
                    if buf.getvalue() != b"test":
                        errors.append(f"thread {ident}: buffer shared at iteration {j}")
                    aop.return_buffer(buf)
                    if ptr != tag:
                        errors.append(f"thread {ident}: arena shared at iteration {j}")
                    aop.return_arena(arena)
            except Exception as exc:
                errors.append(f"thread {ident}: {exc!r}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(goroutines)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        s = aop.statistics()
        assert s.active_arenas == 0, f"{s.active_arenas} arenas not returned"
        assert s.active_buffers == 0
        assert s.arenas_created <= goroutines
        assert s.arenas_created + s.arenas_reused == goroutines * iterations


# -- TestStress_HighConcurrency ---------------------------------------------------------------


def test_stress_high_concurrency() -> None:
    threads_n = 16
    duration = 2.0
    max_ops = 20_000  # per thread: bounded in count as well as in time
    with ArenaOfPools(arena_size=8 << 10, pool_size=8, max_arenas=8) as aop:
        ops = [0] * threads_n
        errs = [0] * threads_n
        problems: list[str] = []
        start = threading.Barrier(threads_n)
        deadline: list[float] = []

        def worker(ident: int) -> None:
            rng = random.Random(ident)
            start.wait()
            end = deadline[0]
            while ops[ident] + errs[ident] < max_ops and time.monotonic() < end:
                try:
                    arena = aop.get_arena(timeout=5.0)
                except PoolExhausted:
                    errs[ident] += 1
                    continue
                try:
                    n = rng.randrange(4096)
                    v = arena.alloc(n)
                    if v != bytes(n):
                        problems.append("dirty arena memory")
                    v[:] = bytes([ident + 1]) * n
                    buf = aop.get_buffer(rng.randrange(8192))
                    buf.write_str("stress test")
                    ok = buf.getvalue() == b"stress test" and v == bytes([ident + 1]) * n
                    aop.return_buffer(buf)
                    if not ok:
                        problems.append("memory shared between threads")
                except Exception as exc:
                    errs[ident] += 1
                    problems.append(repr(exc))
                finally:
                    aop.return_arena(arena)
                ops[ident] += 1

        deadline.append(time.monotonic() + duration)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        total_ops, total_errors = sum(ops), sum(errs)
        assert total_ops > 0
        assert problems == []
        assert total_errors / total_ops < 0.01, f"error rate too high: {total_errors}/{total_ops}"
        s = aop.statistics()
        assert (s.active_arenas, s.active_buffers, s.waiting) == (0, 0, 0)
        assert s.arenas_created <= 8


# -- Conduit / Jolt simulations ---------------------------------------------------------------


@dataclass
class HTTPRequest:
    method: str
    path: str


@dataclass
class HTTPResponse:
    body: bytes


def test_conduit_integration() -> None:
    with ArenaOfPools(arena_size=16 << 10) as aop:

        def process_http_request(req: HTTPRequest) -> HTTPResponse:
            with aop.arena() as arena:
                ctx = arena.new(Context)
                ctx.path = req.path.encode()
                with aop.get_buffer(4096) as buf:
                    buf.write_str("HTTP/1.1 200 OK\r\n")
                    buf.write_str("Content-Type: text/plain\r\n\r\n")
                    buf.write_str(f"Hello, World! {ctx.path.decode()}")
                    body = buf.getvalue()  # a copy: it outlives the buffer
                del ctx
            return HTTPResponse(body=body)

        for path in ("/", "/a", "/b"):
            resp = process_http_request(HTTPRequest("GET", path))
            assert resp.body.startswith(b"HTTP/1.1 200 OK\r\n")
            assert resp.body.endswith(f"Hello, World! {path}".encode())
        s = aop.statistics()
        assert (s.active_arenas, s.active_buffers) == (0, 0)


def test_conduit_returning_a_view_after_the_buffer_went_back_is_caught() -> None:
    # The Go sample returns buf.Bytes() after a deferred ReturnBuffer: a use after free.
    # Here the view is released when the buffer goes back, so the bug fails loudly.
    with ArenaOfPools(arena_size=16 << 10) as aop:

        def process() -> memoryview:
            buf = aop.get_buffer(4096)
            try:
                buf.write_str("Hello, World!")
                return buf.view()
            finally:
                aop.return_buffer(buf)

        body = process()
        with pytest.raises(ValueError):
            bytes(body)
        nxt = aop.get_buffer(4096)
        nxt.write_str("next request")
        with pytest.raises(ValueError):
            body.tobytes()
        aop.return_buffer(nxt)


def test_jolt_integration() -> None:
    pool = BufferPool()

    def render_template(tmpl: str, data: dict[str, str]) -> str:
        with pool.get(1024) as buf:
            buf.write_str("<html><body>")
            buf.write_str(tmpl.replace("{{name}}", data["name"]))
            buf.write_str("</body></html>")
            return buf.getvalue().decode()

    for name in ("World", "Électron", "x" * 2000):
        result = render_template("Hello, {{name}}", {"name": name})
        assert result == f"<html><body>Hello, {name}</body></html>"
    s = pool.statistics()
    assert s.active == 0
    assert s.created <= 2, "template rendering must reuse pooled buffers"
    assert s.reused >= 1
