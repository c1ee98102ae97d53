"""Races: double release and use after return under concurrency, threads and anyio tasks.

The bug class is Jetty's CVE-2019-17638: a buffer released twice sits in the free list twice,
and two later requests are handed the same memory. Here many threads (or tasks) race to give
back one arena or buffer: exactly one may succeed, every other one must get DoubleRelease,
and no two later loans may ever share a region. Ownership is tracked by the real address of
each region (``ctypes.addressof`` of a 1-byte view) across thousands of concurrent loans.
"""

from __future__ import annotations

import ctypes
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from electron import (
    Arena,
    ArenaClosed,
    ArenaOfPools,
    Buffer,
    BufferClosed,
    BufferPool,
    DoubleRelease,
    ForeignObject,
    ObjectPool,
)
from electron.aio import current_arena
from electron.testing import run_concurrent

ARENA = 4096
RACERS = 8


def address(view: memoryview) -> int:
    """The real address of the first byte of ``view``."""
    probe = ctypes.c_char.from_buffer(view)
    try:
        return ctypes.addressof(probe)
    finally:
        del probe


def arena_address(arena: Arena) -> int:
    """Where a fresh arena's memory starts: its first allocation sits at offset 0."""
    return address(arena.alloc(1))


def buffer_address(buf: Buffer) -> int:
    view = buf.reserve(1)  # a zeroed view at offset 0 of an empty buffer
    return address(view)


def make_pool(kind: str, **options: object) -> ArenaOfPools:
    """A fixed-size pool, or an auto-sized one whose arenas can grow by overflow chunks."""
    if kind == "auto":
        return ArenaOfPools(
            arena_size="auto",
            min_arena_size=ARENA,
            max_arena_size=256 << 10,
            trim_interval=None,
            **options,  # type: ignore[arg-type]
        )
    return ArenaOfPools(arena_size=ARENA, trim_interval=None, **options)  # type: ignore[arg-type]


def grow(arena: Arena) -> memoryview:
    """Allocate just past what an auto-sized arena has left: it takes an overflow chunk."""
    view = arena.alloc(arena.available + 16)
    assert arena.capacity > arena.used - len(view), "the arena did not grow"
    return view


POOLS = ["fixed", "auto"]
LEVELS = ["off", "paranoid"]


def race(n: int, fn: Callable[[], object]) -> tuple[int, list[BaseException]]:
    """Run ``fn`` on ``n`` threads released together; (successes, errors)."""
    barrier = threading.Barrier(n)
    wins: list[int] = []
    errors: list[BaseException] = []

    def body() -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)
        else:
            wins.append(1)

    threads = [threading.Thread(target=body) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    return len(wins), errors


@contextmanager
def fast_switching() -> Iterator[None]:
    """Let the interpreter switch threads as often as it can, to widen race windows."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def assert_distinct_loans(aop: ArenaOfPools, n: int) -> None:
    """``n`` arenas lent at once have ``n`` different regions (the free list has no twins)."""
    arenas = [aop.get_arena() for _ in range(n)]
    try:
        addresses = [arena_address(a) for a in arenas]
        assert len(set(addresses)) == n, "two loans got the same region"
    finally:
        for a in arenas:
            aop.return_arena(a)


# -- many threads, one arena -------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", POOLS)
def test_threads_racing_to_return_one_arena_exactly_one_wins(kind: str, level: str) -> None:
    aop = make_pool(kind, leak_detection=level)
    with fast_switching():
        for trial in range(60):
            arena = aop.get_arena()
            arena.alloc(64)[:] = b"x" * 64
            if kind == "auto" and trial % 2:
                grow(arena)  # an overflow chunk: one more region to give back
            wins, errors = race(RACERS, partial(aop.return_arena, arena))
            assert wins == 1, f"{wins} threads gave the same arena back"
            assert len(errors) == RACERS - 1
            assert all(isinstance(e, DoubleRelease) for e in errors), errors
            assert arena.closed
            s = aop.statistics()
            assert s.active_arenas == 0
            assert s.bytes_in_use == 0
    assert_distinct_loans(aop, 16)


@pytest.mark.parametrize("level", LEVELS)
def test_threads_racing_to_return_one_buffer_exactly_one_wins(level: str) -> None:
    aop = make_pool("fixed", leak_detection=level)
    with fast_switching():
        for _ in range(60):
            buf = aop.get_buffer(1000)
            buf.write(b"payload")
            wins, errors = race(RACERS, partial(aop.return_buffer, buf))
            assert wins == 1, f"{wins} threads gave the same buffer back"
            assert all(isinstance(e, DoubleRelease) for e in errors), errors
            assert aop.statistics().active_buffers == 0
    bufs = [aop.get_buffer(1000) for _ in range(16)]
    assert len({buffer_address(b) for b in bufs}) == 16, "two buffers share a region"
    for b in bufs:
        aop.return_buffer(b)


def test_threads_racing_close_and_return_never_hand_out_a_region_twice() -> None:
    """``close()`` is idempotent, ``return_arena`` is not: mixed, one of them gives it back."""
    aop = make_pool("fixed")
    with fast_switching():
        for _ in range(60):
            arena = aop.get_arena()
            give_back: Callable[[], object] = arena.close
            calls: list[Callable[[], object]] = [give_back, partial(aop.return_arena, arena)]
            calls *= RACERS // 2
            it = iter(calls)
            lock = threading.Lock()

            def one(lock: threading.Lock = lock, it: Iterator[Callable[[], object]] = it) -> None:
                with lock:
                    fn = next(it)
                fn()

            _, errors = race(RACERS, one)
            assert all(isinstance(e, DoubleRelease) for e in errors), errors
            assert arena.closed
            assert aop.statistics().active_arenas == 0
    assert_distinct_loans(aop, 16)


def test_threads_racing_to_put_one_pooled_object_exactly_one_wins() -> None:
    pool: ObjectPool[bytearray] = ObjectPool(bytearray)
    with fast_switching():
        for _ in range(60):
            obj = pool.get()
            wins, errors = race(RACERS, partial(pool.put, obj))
            assert wins == 1, f"{wins} threads put the same object back"
            # Which refusal a loser sees is checked deterministically below.
            assert all(isinstance(e, DoubleRelease | ForeignObject) for e in errors), errors
            a, b = pool.get(), pool.get()
            assert a is not b, "a double put handed one object to two borrowers"
            pool.put(a)
            pool.put(b)


def test_a_put_racing_another_put_of_the_same_object_says_double_release() -> None:
    """While one put of ``obj`` runs its reset callback, a second put of ``obj`` is a double
    release, and must say so (not "not lent by this pool"). The callback stands in for the
    thread switch that produces this interleaving about one run in three."""
    in_reset, second_done = threading.Event(), threading.Event()

    def slow_reset(obj: bytearray) -> None:
        if not in_reset.is_set():
            in_reset.set()
            second_done.wait(10)

    pool: ObjectPool[bytearray] = ObjectPool(bytearray, reset=slow_reset)
    obj = pool.get()
    seen: list[BaseException] = []

    def second_put() -> None:
        in_reset.wait(10)
        try:
            pool.put(obj)
        except BaseException as exc:
            seen.append(exc)
        finally:
            second_done.set()

    t = threading.Thread(target=second_put)
    t.start()
    pool.put(obj)
    t.join(10)
    assert len(seen) == 1, "the second put was accepted"
    assert isinstance(seen[0], DoubleRelease), f"the second put raised {seen[0]!r}"
    assert pool.get() is obj
    assert pool.get() is not obj, "the object was pooled twice"


# -- the Jetty pattern, step by step -----------------------------------------------------------


@pytest.mark.parametrize("kind", POOLS)
def test_a_refused_double_release_never_makes_two_owners(kind: str) -> None:
    aop = make_pool(kind)
    a = aop.get_arena()
    if kind == "auto":
        grow(a)  # with an overflow chunk: it must come back exactly once too
    aop.return_arena(a)
    with pytest.raises(DoubleRelease):
        aop.return_arena(a)
    a.close()  # idempotent: a no-op, not a second release
    b, c = aop.get_arena(), aop.get_arena()
    assert arena_address(b) != arena_address(c)
    vb, vc = b.alloc(64), c.alloc(64)
    vb[:] = b"B" * 64
    vc[:] = b"C" * 64
    assert bytes(vb) == b"B" * 64
    assert bytes(vc) == b"C" * 64
    if kind == "auto":
        gb, gc = grow(b), grow(c)  # both grow: distinct chunks
        assert address(gb) != address(gc)
        gb[:] = b"b" * len(gb)
        assert bytes(gc) == bytes(len(gc))
        assert bytes(gb[:4]) == b"bbbb"
    aop.return_arena(b)
    aop.return_arena(c)
    assert aop.statistics().active_arenas == 0


def test_a_refused_double_put_never_makes_two_owners_of_a_buffer() -> None:
    for pool in (BufferPool(), make_pool("fixed")._buffers):
        buf = pool.get(500)
        pool.put(buf)
        with pytest.raises(DoubleRelease):
            pool.put(buf)
        b, c = pool.get(500), pool.get(500)
        assert buffer_address(b) != buffer_address(c)
        b.write(b"B" * 100)
        c.write(b"C" * 100)
        assert b.getvalue() == b"B" * 100
        assert c.getvalue() == b"C" * 100
        pool.put(b)
        pool.put(c)


# -- ten thousand concurrent loans, one owner each ---------------------------------------------


class Owners:
    """Who holds which region now; claiming a region someone holds is the bug."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: dict[int, int] = {}
        self.loans = 0

    def claim(self, addr: int, me: int) -> None:
        with self.lock:
            other = self.owner.get(addr)
            assert other is None, f"region {addr:#x} lent to {me} while {other} holds it"
            self.owner[addr] = me
            self.loans += 1

    def release(self, addr: int) -> None:
        with self.lock:
            del self.owner[addr]


@pytest.mark.slow
@pytest.mark.parametrize("kind", POOLS)
def test_no_region_ever_has_two_owners(kind: str) -> None:
    """4 threads x 2500 loans of arenas and buffers under a tight budget, while a saboteur
    thread keeps giving back stale arenas and buffers and stale exports scribble on memory
    that was given back. Every region has at most one owner at a time and every owner's
    bytes stay its own."""
    aop = make_pool(kind, pool_size=4, max_arenas=3, leak_detection="simple")
    owners = Owners()
    stale_arenas: list[Arena] = []
    stale_buffers: list[Buffer] = []
    stale_exports: list[memoryview] = []
    stale_lock = threading.Lock()
    stop = threading.Event()
    sabotage: list[BaseException] = []
    refused = [0]

    def saboteur() -> None:
        rng = random.Random(7)
        try:
            while not stop.is_set():
                with stale_lock:
                    arenas, buffers = list(stale_arenas[-8:]), list(stale_buffers[-8:])
                    exports = list(stale_exports[-8:])
                for a in arenas:
                    try:
                        aop.return_arena(a)
                    except DoubleRelease:
                        refused[0] += 1
                    else:
                        raise AssertionError("a stale arena was accepted back")
                for b in buffers:
                    try:
                        aop.return_buffer(b)
                    except DoubleRelease:
                        refused[0] += 1
                    else:
                        raise AssertionError("a stale buffer was accepted back")
                for e in exports:
                    e[:] = bytes([rng.randrange(256)]) * len(e)  # quarantined memory only
                time.sleep(0)
        except BaseException as exc:
            sabotage.append(exc)

    def worker(me: int, i: int) -> None:
        arena = aop.get_arena(timeout=30)
        buf = aop.get_buffer(300)
        try:
            keep = use(arena, buf, me, i)
        except BaseException:
            for lent in (arena, buf):  # so that the other workers are not left waiting
                if not lent.closed:
                    lent.close()
            raise
        aop.return_buffer(buf)
        aop.return_arena(arena)
        with stale_lock:
            stale_arenas.append(arena)
            stale_buffers.append(buf)
            if keep is not None:
                stale_exports.append(keep)
            del stale_arenas[:-16], stale_buffers[:-16], stale_exports[:-4]

    def use(arena: Arena, buf: Buffer, me: int, i: int) -> memoryview | None:
        """Own the loan's regions, stamp them, check nobody else touched them."""
        claimed: list[int] = []

        def claim(addr: int) -> None:
            owners.claim(addr, me)
            claimed.append(addr)

        claim(arena_address(arena))
        stamp = (me * 1_000_003 + i).to_bytes(8, "little") * 8
        mine = arena.alloc(64)
        assert mine == bytes(64), "a fresh arena showed earlier bytes"
        mine[:] = stamp
        grown: memoryview | None = None
        if kind == "auto" and i % 50 == 0:  # rare, or the learnt size climbs to the maximum
            grown = grow(arena)  # an overflow chunk: another region to own
            claim(address(grown))
            grown[:8] = stamp[:8]
        claim(buffer_address(buf))
        buf.write(stamp)
        if i % 3 == 0:
            time.sleep(0)
        assert bytes(mine) == stamp, "someone wrote into my arena"
        assert buf.getvalue() == stamp, "someone wrote into my buffer"
        if grown is not None:
            assert bytes(grown[:8]) == stamp[:8], "someone wrote into my chunk"
        for addr in claimed:
            owners.release(addr)
        return memoryview(mine) if i % 17 == 0 else None  # outlives the loan: quarantined

    spoiler = threading.Thread(target=saboteur)
    spoiler.start()
    try:
        with fast_switching():
            run_concurrent(4, worker, iterations=2500)
    finally:
        stop.set()
        spoiler.join(30)
    assert not sabotage, sabotage
    assert owners.loans >= 20_000
    assert refused[0] > 0, "the saboteur never ran"
    stale_exports.clear()
    s = aop.statistics()
    assert s.active_arenas == 0
    assert s.active_buffers == 0
    assert s.leaks_detected == 0
    assert s.waiting == 0


# -- use after return under concurrency --------------------------------------------------------


@pytest.mark.parametrize("kind", POOLS)
def test_a_thread_using_an_arena_given_back_elsewhere_fails_loudly(kind: str) -> None:
    """A thread keeps allocating and writing while another gives the arena back and takes a
    new one (usually the same region). The first thread must fail (ArenaClosed, or
    ValueError from a released view), and its writes must never reach the new loan."""
    aop = make_pool(kind)
    with fast_switching():
        for _ in range(100):
            arena = aop.get_arena()
            started = threading.Event()
            outcome: list[BaseException] = []

            def scribbler(
                arena: Arena = arena,
                started: threading.Event = started,
                outcome: list[BaseException] = outcome,
            ) -> None:
                views: list[memoryview] = []
                try:
                    for k in range(1_000_000):
                        v = arena.try_alloc(16)
                        if v is None:  # full: keep writing through the views it has
                            v = views[k % len(views)]
                        else:
                            views.append(v)
                        started.set()
                        v[:] = b"S" * 16
                except (ArenaClosed, ValueError) as exc:
                    outcome.append(exc)
                finally:
                    started.set()

            t = threading.Thread(target=scribbler)
            t.start()
            started.wait(10)
            aop.return_arena(arena)
            fresh = aop.get_arena()
            t.join(30)
            assert not t.is_alive(), "the scribbler never noticed the arena was gone"
            assert outcome, "use after return did not fail"
            view = fresh.alloc(ARENA if kind == "fixed" else fresh.available)
            assert b"S" not in bytes(view), "a write after return reached the next loan"
            aop.return_arena(fresh)
    assert aop.statistics().active_arenas == 0


def test_a_thread_using_a_buffer_given_back_elsewhere_fails_loudly() -> None:
    """The same for pooled buffers: writes and views after the put must fail, and never land
    in the next loan of the same memory."""
    aop = make_pool("fixed")
    with fast_switching():
        for _ in range(100):
            buf = aop.get_buffer(4096)
            started = threading.Event()
            outcome: list[BaseException] = []

            def scribbler(
                buf: Buffer = buf,
                started: threading.Event = started,
                outcome: list[BaseException] = outcome,
            ) -> None:
                try:
                    for _ in range(1_000_000):
                        if len(buf) < 2048:
                            buf.write(b"S" * 16)
                        view = buf.view()
                        started.set()
                        view[:16] = b"S" * 16
                except (BufferClosed, ValueError) as exc:
                    outcome.append(exc)
                finally:
                    started.set()

            t = threading.Thread(target=scribbler)
            t.start()
            started.wait(10)
            aop.return_buffer(buf)
            fresh = aop.get_buffer(4096)
            fresh.write(b"N" * fresh.capacity)
            t.join(30)
            assert not t.is_alive(), "the scribbler never noticed the buffer was gone"
            assert outcome, "use after return did not fail"
            assert fresh.getvalue() == b"N" * fresh.capacity, "a stale write reached the next loan"
            aop.return_buffer(fresh)
    assert aop.statistics().active_buffers == 0


def test_an_arena_reset_racing_its_return_does_not_come_back_to_life() -> None:
    """``reset()`` by the holder while another thread returns the arena: once the return
    succeeded the Arena object is dead, whatever the interleaving.

    A reset hook stands in for the thread switch: it pauses reset() after it began, the other
    thread returns the arena, then reset() resumes. Without a check, reset re-arms the dead
    object over a region that is back in the free list, and the next loan shares it.
    """
    aop = make_pool("fixed")
    arena = aop.get_arena()
    holder = threading.get_ident()
    in_reset, returned = threading.Event(), threading.Event()

    def pause_inside_reset() -> None:
        if threading.get_ident() == holder and not in_reset.is_set():
            in_reset.set()
            returned.wait(10)

    arena.call_on_reset(pause_inside_reset)

    def give_back() -> None:
        in_reset.wait(10)
        aop.return_arena(arena)
        returned.set()

    other = threading.Thread(target=give_back)
    other.start()
    try:
        arena.reset()
    except (ArenaClosed, ValueError):
        pass  # refusing the reset is fine
    other.join(10)
    assert returned.is_set()
    nxt = aop.get_arena()
    try:
        assert arena.closed, "a returned arena came back to life through reset()"
        with pytest.raises((ArenaClosed, ValueError)):
            arena.alloc(8)[:] = b"stale!!!"
    finally:
        assert bytes(nxt.alloc(32)) == bytes(32), "the next loan shares the dead arena's region"
        aop.return_arena(nxt)


# -- anyio tasks -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tasks_racing_to_return_one_arena_exactly_one_wins(anyio_backend: object) -> None:
    """Tasks hand the return to worker threads (true parallel races) and race in-loop."""
    aop = make_pool("fixed")
    for trial in range(20):
        arena = aop.get_arena()
        wins: list[int] = []
        doubles: list[int] = []

        async def racer(
            arena: Arena = arena,
            trial: int = trial,
            wins: list[int] = wins,
            doubles: list[int] = doubles,
        ) -> None:
            try:
                if trial % 2:
                    await anyio.to_thread.run_sync(aop.return_arena, arena)
                else:
                    await anyio.lowlevel.checkpoint()
                    aop.return_arena(arena)
            except DoubleRelease:
                doubles.append(1)
            else:
                wins.append(1)

        async with anyio.create_task_group() as tg:
            for _ in range(RACERS):
                tg.start_soon(racer)
        assert len(wins) == 1, f"{len(wins)} tasks gave the same arena back"
        assert len(doubles) == RACERS - 1
    assert aop.statistics().active_arenas == 0
    assert_distinct_loans(aop, 8)


@pytest.mark.anyio
async def test_a_scope_whose_arena_was_given_back_by_another_task(anyio_backend: object) -> None:
    """Task A's scope arena is given back by task B and re-lent to task C. A's next use
    fails loudly; A's scope end must not give back (or touch) C's loan."""
    aop = make_pool("fixed", max_arenas=1)
    a_inside, b_done, c_inside, a_done = (anyio.Event() for _ in range(4))
    seen: dict[str, object] = {}

    async def task_a() -> None:
        async with aop.arena(timeout=5) as arena:
            seen["a"] = arena
            a_inside.set()
            await b_done.wait()
            with pytest.raises(ArenaClosed):
                current_arena().alloc(8)
            await c_inside.wait()
        a_done.set()

    async def task_b() -> None:
        await a_inside.wait()
        arena = seen["a"]
        assert isinstance(arena, Arena)
        aop.return_arena(arena)
        b_done.set()

    async def task_c() -> None:
        await b_done.wait()
        async with aop.arena(timeout=5) as arena:
            view = arena.alloc(32)
            view[:] = b"C" * 32
            c_inside.set()
            await a_done.wait()
            assert not arena.closed, "another scope's exit gave my arena back"
            assert bytes(view) == b"C" * 32
            assert aop.statistics().active_arenas == 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(task_a)
        tg.start_soon(task_b)
        tg.start_soon(task_c)
    assert aop.statistics().active_arenas == 0


@pytest.mark.anyio
async def test_tasks_sharing_a_pool_never_share_memory(anyio_backend: object) -> None:
    """Many tasks in scopes, each checking its bytes across awaits, worker threads too."""
    aop = make_pool("fixed", max_arenas=4)
    owners = Owners()

    async def one(worker: int, i: int) -> None:
        async with aop.arena(timeout=10) as arena:
            base = arena_address(arena)
            owners.claim(base, worker)
            stamp = (worker * 7919 + i).to_bytes(4, "little") * 16
            view = arena.alloc(64)
            view[:] = stamp
            await anyio.lowlevel.checkpoint()
            if i % 4 == 0:
                await anyio.to_thread.run_sync(lambda: None)
            assert bytes(view) == stamp, "another task wrote into my arena"
            owners.release(base)

    async with anyio.create_task_group() as tg:
        for w in range(16):

            async def loop(w: int = w) -> None:
                for i in range(25):
                    await one(w, i)

            tg.start_soon(loop)
    assert owners.loans == 400
    assert aop.statistics().active_arenas == 0


# -- garbage collection at any moment ----------------------------------------------------------

_COLLECT_UNDER_THE_LOCK = """
import gc
import electron

aop = electron.ArenaOfPools(
    arena_size={arena_size!r}, min_arena_size=4096, max_arena_size=1 << 20, trim_interval=None
)


class Holder:
    pass


def leak() -> None:
    arena = aop.get_arena()
    arena.try_alloc(arena.available + 16)  # grows by an overflow chunk (auto mode)
    holder = Holder()
    holder.arena, holder.me = arena, holder  # a cycle: only the cyclic collector frees it


leak()
gc.set_threshold(1)  # collect at (nearly) every allocation, e.g. inside the pool's lock
for _ in range(50):
    aop.return_arena(aop.get_arena())
gc.set_threshold(700)
gc.collect()
print(aop.statistics().leaks_detected)
"""


@pytest.mark.parametrize("arena_size", [ARENA, "auto"])
def test_a_leaked_arena_collected_while_the_pool_is_busy_does_not_deadlock(
    arena_size: int | str,
) -> None:
    """The cyclic collector can run a leaked arena's finaliser at any allocation, including
    one made while this very thread holds the pool's lock: reclaiming it must not block on
    that lock. Run in a child process, so a deadlock is a timeout, not a stuck test run."""
    code = _COLLECT_UNDER_THE_LOCK.format(arena_size=arena_size)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        pytest.fail("deadlock: a leaked arena was collected while the pool's lock was held")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1", "the leaked arena was not reclaimed exactly once"
