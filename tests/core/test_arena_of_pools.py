"""ArenaOfPools: lending, death on return, misuse, budgets, trimming and ArenaOfPoolsStatistics."""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import math
import threading
import time
import tracemalloc
import weakref
from typing import Any, ClassVar

import numpy as np
import pytest

from electron import (
    Arena,
    ArenaClosed,
    ArenaOfPools,
    ArenaOfPoolsStatistics,
    Buffer,
    BufferClosed,
    BufferPool,
    DoubleRelease,
    ForeignObject,
    InvalidArgument,
    PoolClosed,
    PoolExhausted,
)

SIZE = 4096


def address(view: memoryview) -> int:
    probe = (ctypes.c_char * 1).from_buffer(view)
    try:
        return ctypes.addressof(probe)
    finally:
        del probe


class Ctx(ctypes.Structure):
    _fields_ = [("request_id", ctypes.c_int64), ("status", ctypes.c_int32)]


# -- lending and taking back ------------------------------------------------------------------


def test_get_arena_lends_a_fresh_empty_arena(aop: ArenaOfPools) -> None:
    arena = aop.get_arena()
    assert isinstance(arena, Arena)
    assert arena.capacity == aop.arena_size
    assert arena.used == 0
    assert not arena.closed
    assert aop.statistics().active_arenas == 1
    aop.return_arena(arena)
    s = aop.statistics()
    assert (s.active_arenas, s.pooled_arenas) == (0, 1)


def test_returned_arena_is_dead_and_its_views_released() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        arena = aop.get_arena()
        v = arena.alloc(100)
        p = arena.new(Ctx, 5, 200)
        p_value = p.request_id
        del p
        aop.return_arena(arena)
        assert p_value == 5
        assert arena.closed
        with pytest.raises(ValueError):
            v[0]
        for call in (
            lambda: arena.alloc(1),
            lambda: arena.try_alloc(1),
            lambda: arena.new(Ctx),
            lambda: arena.new(dict),
            arena.reset,
            lambda: arena.used,
            lambda: arena.available,
        ):
            with pytest.raises(ArenaClosed):
                call()
        arena.close()  # a no-op on a dead arena: it does not go back twice
        assert aop.statistics().active_arenas == 0


def test_memory_goes_to_the_next_caller_under_a_new_object_zeroed() -> None:
    with ArenaOfPools(arena_size=SIZE, pool_size=4) as aop:
        first = aop.get_arena()
        v = first.alloc(SIZE)
        v[:] = b"\xff" * SIZE
        addr = address(v)
        aop.return_arena(first)
        second = aop.get_arena()
        assert second is not first
        assert first.closed
        assert not second.closed
        w = second.alloc(SIZE)
        assert address(w) == addr, "the pooled region is reused"
        assert w == bytes(SIZE), "bytes of the previous request are visible"
        s = aop.statistics()
        assert (s.arenas_created, s.arenas_reused) == (1, 1)
        with pytest.raises(ArenaClosed):
            first.alloc(1)
        aop.return_arena(second)


def test_arena_close_and_with_give_it_back(aop: ArenaOfPools) -> None:
    arena = aop.get_arena()
    arena.close()
    assert arena.closed
    assert aop.statistics().active_arenas == 0
    with aop.get_arena() as a2:
        a2.alloc(10)
        assert aop.statistics().active_arenas == 1
    assert a2.closed
    assert aop.statistics().active_arenas == 0
    with pytest.raises(DoubleRelease):
        aop.return_arena(a2)


def test_reset_keeps_the_arena_lent(aop: ArenaOfPools) -> None:
    arena = aop.get_arena()
    arena.alloc(100)[:] = b"\x01" * 100
    arena.reset()
    assert not arena.closed
    assert arena.used == 0
    assert aop.statistics().active_arenas == 1
    assert arena.alloc(aop.arena_size) == bytes(aop.arena_size)
    aop.return_arena(arena)


class _Marker:
    """Something user code hangs on an arena, to see when the arena lets go of it."""


def test_what_a_reset_callback_adds_during_the_return_is_dropped_with_it(
    aop: ArenaOfPools,
) -> None:
    """A reset callback run by ``return_arena`` may register another callback or make an
    object with ``new``; the returned (dead) handle must not keep them: they are dropped
    during the return, not whenever the handle object happens to be dropped or reused."""
    arena = aop.get_arena()
    late = _Marker()
    late_ref = weakref.ref(late)
    late_callbacks = [lambda late=late: None]  # a callback that keeps ``late`` alive
    made: list[weakref.ref[_Marker]] = []

    def on_reset() -> None:
        arena.call_on_reset(late_callbacks.pop())
        made.append(weakref.ref(arena.new(_Marker)))

    arena.call_on_reset(on_reset)
    del late
    aop.return_arena(arena)
    assert arena.closed
    assert late_ref() is None, "the dead arena still holds a callback registered at return"
    assert len(made) == 1
    assert made[0]() is None, "the dead arena still holds an object made at return"


# -- misuse -----------------------------------------------------------------------------------


def test_return_twice_is_double_release() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        arena = aop.get_arena()
        aop.return_arena(arena)
        with pytest.raises(DoubleRelease):
            aop.return_arena(arena)
        s = aop.statistics()
        assert (s.active_arenas, s.pooled_arenas) == (0, 1)
        a, b = aop.get_arena(), aop.get_arena()
        va, vb = a.alloc(16), b.alloc(16)
        assert address(va) != address(vb), "a double return made two owners of one region"
        aop.return_arena(a)
        aop.return_arena(b)


def test_stale_handle_returned_after_its_memory_was_lent_again_is_refused() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        old = aop.get_arena()
        aop.return_arena(old)
        new = aop.get_arena()  # same region, new handle
        v = new.alloc(8)
        v[:] = b"new-user"
        with pytest.raises(DoubleRelease):
            aop.return_arena(old)
        assert v.tobytes() == b"new-user"
        assert aop.statistics().active_arenas == 1
        aop.return_arena(new)


def test_arena_from_another_pool_is_foreign() -> None:
    with ArenaOfPools(arena_size=SIZE) as a, ArenaOfPools(arena_size=SIZE) as b:
        arena = a.get_arena()
        with pytest.raises(ForeignObject):
            b.return_arena(arena)
        assert not arena.closed
        assert b.statistics().pooled_arenas == 0
        a.return_arena(arena)


@pytest.mark.parametrize(
    "thing", [None, bytearray(SIZE), "arena"], ids=["None", "bytearray", "str"]
)
def test_non_arenas_are_refused(thing: object) -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        with pytest.raises((ForeignObject, TypeError)):
            aop.return_arena(thing)  # type: ignore[arg-type]
        assert aop.statistics().pooled_arenas == 0


def test_standalone_arena_stays_usable_after_a_refused_return() -> None:
    arena = Arena(SIZE)
    with ArenaOfPools(arena_size=SIZE) as aop, pytest.raises(ForeignObject):
        aop.return_arena(arena)
    assert len(arena.alloc(10)) == 10


# -- buffers ----------------------------------------------------------------------------------


def test_get_buffer_and_return_buffer(aop: ArenaOfPools) -> None:
    buf = aop.get_buffer(1000)
    assert isinstance(buf, Buffer)
    assert buf.capacity >= 1000
    assert len(buf) == 0
    buf.write_str("response data")
    assert buf.getvalue() == b"response data"
    s = aop.statistics()
    assert s.active_buffers == 1
    assert s.bytes_in_use == buf.capacity
    v = buf.view()
    aop.return_buffer(buf)
    assert buf.closed
    with pytest.raises(BufferClosed):
        buf.write(b"x")
    with pytest.raises(ValueError):
        v[0]
    s = aop.statistics()
    assert (s.active_buffers, s.pooled_buffers, s.bytes_in_use) == (0, 1, 0)
    again = aop.get_buffer(1000)
    assert again is not buf
    assert again.reserve(again.capacity) == bytes(again.capacity)
    aop.return_buffer(again)


def test_buffer_close_gives_it_back_to_the_arena_of_pools(aop: ArenaOfPools) -> None:
    with aop.get_buffer(10) as buf:
        buf.write(b"abc")
    assert buf.closed
    assert aop.statistics().active_buffers == 0


def test_return_buffer_twice_is_double_release() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        buf = aop.get_buffer(100)
        aop.return_buffer(buf)
        with pytest.raises(DoubleRelease):
            aop.return_buffer(buf)
        s = aop.statistics()
        assert (s.active_buffers, s.pooled_buffers) == (0, 1)


def test_buffer_from_elsewhere_is_foreign() -> None:
    with ArenaOfPools(arena_size=SIZE) as a, ArenaOfPools(arena_size=SIZE) as b:
        buf = a.get_buffer(10)
        with pytest.raises(ForeignObject):
            b.return_buffer(buf)
        plain = BufferPool()
        pbuf = plain.get(10)
        for thing in (pbuf, Buffer(10)):
            with pytest.raises(ForeignObject):
                a.return_buffer(thing)
        with pytest.raises((ForeignObject, TypeError)):
            a.return_buffer(bytearray(10))  # type: ignore[arg-type]
        assert not buf.closed
        assert not pbuf.closed
        a.return_buffer(buf)
        plain.put(pbuf)
        assert a.statistics().active_buffers == 0
        assert b.statistics().active_buffers == 0


def test_shared_buffer_pool_is_used() -> None:
    pool = BufferPool()
    with ArenaOfPools(arena_size=SIZE, buffer_pool=pool) as aop:
        buf = aop.get_buffer(100)
        assert pool.statistics().active == 1
        aop.return_buffer(buf)
        assert pool.statistics().pooled == 1
        assert aop.statistics().pooled_buffers == 1


def test_buffer_exported_at_return_is_quarantined(aop: ArenaOfPools) -> None:
    buf = aop.get_buffer(256)
    buf.write(b"\x33" * 256)
    held = np.frombuffer(buf.view(), dtype=np.uint8)
    aop.return_buffer(buf)
    s = aop.statistics()
    assert s.quarantine_events >= 1
    assert s.pooled_buffers == 0
    nxt = aop.get_buffer(256)
    r = nxt.reserve(256)
    held[:] = 0xEE
    assert r == bytes(256)
    aop.return_buffer(nxt)
    del held


# -- quarantine of arenas ---------------------------------------------------------------------


def test_arena_exported_at_return_is_parked_then_reused_zeroed() -> None:
    with ArenaOfPools(arena_size=SIZE, pool_size=4) as aop:
        arena = aop.get_arena()
        v = arena.alloc(SIZE)
        v[:] = b"\x77" * SIZE
        stale = np.frombuffer(v, dtype=np.uint8)
        stale_addr = stale.ctypes.data
        aop.return_arena(arena)
        s = aop.statistics()
        assert (s.quarantined, s.quarantine_events, s.pooled_arenas) == (1, 1, 0)
        assert s.bytes_reserved >= SIZE  # the parked region still counts
        other = aop.get_arena()
        w = other.alloc(SIZE)
        assert address(w) != stale_addr, "a region still exported was lent again"
        assert w == bytes(SIZE)
        stale[:] = 0xEE  # scribbles go to the parked region only
        assert w == bytes(SIZE)
        del stale, v
        # The export is gone: the parked region may be lent again, wholly zeroed.
        third = aop.get_arena()
        x = third.alloc(SIZE)
        assert address(x) == stale_addr
        assert x == bytes(SIZE), "scribbles through a stale export leaked to the next use"
        assert aop.statistics().quarantined == 0
        aop.return_arena(other)
        aop.return_arena(third)


def test_reset_with_export_replaces_the_region_of_a_lent_arena() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        arena = aop.get_arena()
        v = arena.alloc(64)
        v[:] = b"\x55" * 64
        held = memoryview(v)
        arena.reset()
        assert arena.quarantined == 1
        s = aop.statistics()
        assert (s.quarantined, s.quarantine_events, s.active_arenas) == (1, 1, 1)
        w = arena.alloc(64)
        assert w == bytes(64)
        held[:] = b"\xee" * 64
        assert w == bytes(64)
        aop.return_arena(arena)
        del held
        assert aop.statistics().active_arenas == 0


# -- budgets ----------------------------------------------------------------------------------


def test_max_arenas_then_pool_exhausted() -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=2) as aop:
        a, b = aop.get_arena(), aop.get_arena()
        with pytest.raises(PoolExhausted):
            aop.get_arena(timeout=0)
        with pytest.raises(TimeoutError):
            aop.get_arena(timeout=0.02)
        s = aop.statistics()
        assert s.active_arenas == 2
        assert s.wait_timeouts == 2
        assert s.waits >= 1
        assert s.waiting == 0
        aop.return_arena(a)
        c = aop.get_arena(timeout=0)
        aop.return_arena(b)
        aop.return_arena(c)
        assert aop.statistics().active_arenas == 0


def test_max_bytes_counts_arenas_and_buffers() -> None:
    with ArenaOfPools(arena_size=1024, max_bytes=2048) as aop:
        arena = aop.get_arena()
        buf = aop.get_buffer(1024)
        assert buf.capacity == 1024
        s = aop.statistics()
        assert s.bytes_in_use == 2048
        with pytest.raises(PoolExhausted):
            aop.get_arena(timeout=0)
        with pytest.raises(PoolExhausted):
            aop.get_buffer(1)
        aop.return_buffer(buf)
        second = aop.get_arena(timeout=0)
        assert aop.statistics().bytes_in_use == 2048
        aop.return_arena(arena)
        aop.return_arena(second)
        assert aop.statistics().bytes_in_use == 0


def test_returning_a_buffer_wakes_an_arena_waiter() -> None:
    with ArenaOfPools(arena_size=1024, max_bytes=2048) as aop:
        arena = aop.get_arena()
        buf = aop.get_buffer(1024)
        got: list[Arena] = []
        t = threading.Thread(target=lambda: got.append(aop.get_arena(timeout=10)))
        t.start()
        for _ in range(5000):
            if aop.statistics().waiting:
                break
            time.sleep(0.001)
        assert aop.statistics().waiting == 1
        aop.return_buffer(buf)
        t.join(10)
        assert len(got) == 1
        aop.return_arena(got[0])
        aop.return_arena(arena)


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (float("nan"), InvalidArgument),
        (-1, InvalidArgument),
        (-0.001, InvalidArgument),
        (float("-inf"), InvalidArgument),
        ("1", TypeError),
    ],
    ids=repr,
)
def test_bad_timeouts_are_refused(timeout: object, error: type[Exception]) -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=1) as aop:
        with pytest.raises(error):
            aop.get_arena(timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(error):
            aop.arena(timeout=timeout)  # type: ignore[arg-type]
        assert aop.statistics().active_arenas == 0
        aop.return_arena(aop.get_arena(timeout=0))


def test_infinite_timeout_means_wait_forever() -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=1) as aop:
        arena = aop.get_arena(timeout=math.inf)
        aop.return_arena(arena)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"arena_size": 0},
        {"arena_size": -1},
        {"max_arenas": 0},
        {"max_arenas": -1},
        {"arena_size": 4096, "max_bytes": 1000},
        {"pool_size": -1},
        {"trim_interval": float("nan")},
        {"trim_interval": -1.0},
    ],
    ids=repr,
)
def test_bad_options_are_refused(kwargs: dict[str, object]) -> None:
    make: Any = ArenaOfPools
    with pytest.raises(InvalidArgument):
        make(**kwargs)


@pytest.mark.parametrize("hint", [-1, 1.5, "8", True], ids=repr)
def test_get_buffer_refuses_bad_hints(hint: object, aop: ArenaOfPools) -> None:
    with pytest.raises((InvalidArgument, TypeError)):
        aop.get_buffer(hint)  # type: ignore[arg-type]
    assert aop.statistics().active_buffers == 0


# -- close ------------------------------------------------------------------------------------


def test_close_refuses_new_gets_but_lent_resources_come_back() -> None:
    aop = ArenaOfPools(arena_size=SIZE)
    lent = aop.get_arena()
    buf = aop.get_buffer(100)
    aop.return_arena(aop.get_arena())  # one idle arena
    aop.close()
    assert aop.closed
    with pytest.raises(PoolClosed):
        aop.get_arena()
    with pytest.raises(PoolClosed):
        aop.get_buffer(10)
    with pytest.raises(PoolClosed), aop.arena():
        pass
    lent.alloc(10)[0] = 1
    buf.write(b"still usable")
    aop.return_arena(lent)
    aop.return_buffer(buf)
    s = aop.statistics()
    assert (s.active_arenas, s.pooled_arenas, s.active_buffers, s.pooled_buffers) == (0, 0, 0, 0)
    aop.close()  # idempotent


def test_context_manager_closes() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        assert isinstance(aop, ArenaOfPools)
        aop.return_arena(aop.get_arena())
    assert aop.closed
    with pytest.raises(PoolClosed):
        aop.get_arena()


# -- trimming ---------------------------------------------------------------------------------


def _burst(aop: ArenaOfPools, n: int) -> None:
    arenas = [aop.get_arena() for _ in range(n)]
    for a in arenas:
        a.alloc(100)
    for a in arenas:
        aop.return_arena(a)


def test_trim_releases_arenas_idle_since_the_last_trim() -> None:
    with ArenaOfPools(arena_size=SIZE, pool_size=16, trim_interval=None) as aop:
        _burst(aop, 8)
        assert aop.statistics().pooled_arenas == 8
        aop.trim()  # arenas used in this interval are kept
        assert aop.statistics().pooled_arenas == 8
        aop.return_arena(aop.get_arena())  # steady load: one arena
        freed = aop.trim()
        s = aop.statistics()
        assert freed >= 7 * SIZE
        assert s.pooled_arenas == 1
        assert s.trimmed_bytes >= 7 * SIZE
        aop.trim()
        s = aop.statistics()
        assert s.pooled_arenas == 0
        assert s.trimmed_bytes >= 8 * SIZE
        assert s.bytes_reserved == 0
        # Still works after trimming.
        aop.return_arena(aop.get_arena())


def test_trim_gives_memory_back() -> None:
    size = 256 << 10
    with ArenaOfPools(arena_size=size, pool_size=32, trim_interval=None) as aop:
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            _burst(aop, 16)
            for b in [aop.get_buffer(64 << 10) for _ in range(8)]:
                aop.return_buffer(b)
            peak = tracemalloc.get_traced_memory()[0]
            assert peak - base >= 16 * size
            aop.trim()
            aop.trim()
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        s = aop.statistics()
        assert (s.pooled_arenas, s.pooled_buffers) == (0, 0)
        assert s.trimmed_bytes >= 16 * size + 8 * (64 << 10)
        assert after - base < size, "trim did not give the burst's memory back"


class _WatchedRegion(bytearray):
    """A region that records, when it is freed, whether its pool's lock was held."""

    lock_held_at_free: ClassVar[list[bool]] = []
    pool: ClassVar[ArenaOfPools | None] = None

    def __del__(self) -> None:
        assert self.pool is not None
        self.lock_held_at_free.append(self.pool._lock.held())


@pytest.mark.parametrize("kind", ["arena", "buffer"])
@pytest.mark.parametrize("how", ["trim", "return"])
def test_trim_frees_no_region_under_the_lock(kind: str, how: str) -> None:
    # Freeing a large idle region unmaps its pages (about 0.1 ms per MiB): a trim does its
    # bookkeeping under the lock and frees what it released after letting go of it.
    freed = _WatchedRegion.lock_held_at_free = []
    with ArenaOfPools(arena_size=SIZE, trim_interval=None if how == "trim" else 0.0) as aop:
        _WatchedRegion.pool = aop
        size = aop._buffers.size_class(1 << 20)
        aop.return_buffer(aop.get_buffer(size))  # makes the size class, with one idle region
        aop.return_arena(aop.get_arena())  # one idle arena, lent first (last in, first out)
        with aop._lock:
            if kind == "arena":
                aop._free.regions.insert(0, _WatchedRegion(SIZE))
                aop._free_bytes += SIZE
            else:
                aop._buffers._classes[size].regions[0] = _WatchedRegion(size)
        if how == "trim":
            aop.trim()  # the region was idle for a whole interval only after this one
            assert freed == []
            assert aop.trim() >= SIZE
        else:
            for _ in range(4 * 256):  # interval 0: a trim every 256 returns
                aop.return_arena(aop.get_arena())
        gc.collect()
        assert freed == [False]
    _WatchedRegion.pool = None


def test_idle_trim_runs_as_arenas_come_back() -> None:
    with ArenaOfPools(arena_size=SIZE, pool_size=64, trim_interval=0.0) as aop:
        _burst(aop, 32)
        assert aop.statistics().pooled_arenas == 32
        for _ in range(10_000):  # steady load of one request at a time
            aop.return_arena(aop.get_arena())
        s = aop.statistics()
        assert s.pooled_arenas <= 2
        assert s.trimmed_bytes >= 30 * SIZE


def test_no_idle_trim_when_disabled() -> None:
    with ArenaOfPools(arena_size=SIZE, pool_size=64, trim_interval=None) as aop:
        _burst(aop, 32)
        for _ in range(1024):
            aop.return_arena(aop.get_arena())
        s = aop.statistics()
        assert s.pooled_arenas == 32
        assert s.trimmed_bytes == 0


def test_pool_size_bounds_idle_arenas() -> None:
    with ArenaOfPools(arena_size=SIZE, pool_size=3) as aop:
        _burst(aop, 10)
        s = aop.statistics()
        assert s.pooled_arenas == 3
        assert s.arenas_created == 10
        assert s.bytes_reserved == 3 * SIZE


# -- ArenaOfPoolsStatistics ----------------------------------------------------------------

REQUIRED_FIELDS = {
    "active_arenas",
    "pooled_arenas",
    "arenas_created",
    "active_buffers",
    "pooled_buffers",
    "bytes_reserved",
    "bytes_in_use",
    "quarantined",
    "high_water_bytes",
}


def test_stats_is_a_frozen_dataclass(aop: ArenaOfPools) -> None:
    s = aop.statistics()
    assert isinstance(s, ArenaOfPoolsStatistics)
    assert dataclasses.is_dataclass(s)
    names = {f.name for f in dataclasses.fields(s)}
    assert names >= REQUIRED_FIELDS
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.active_arenas = 5  # type: ignore[misc]
    d = s.as_dict()
    assert set(d) == names
    assert all(isinstance(v, int) for v in d.values())
    assert d == {n: getattr(s, n) for n in names}


def test_stats_values_are_consistent() -> None:
    with ArenaOfPools(arena_size=SIZE, pool_size=8) as aop:
        s0 = aop.statistics()
        assert (s0.active_arenas, s0.bytes_in_use, s0.bytes_reserved, s0.high_water_bytes) == (
            0,
            0,
            0,
            0,
        )
        arenas = [aop.get_arena() for _ in range(3)]
        bufs = [aop.get_buffer(1000) for _ in range(2)]
        caps = sum(b.capacity for b in bufs)
        s = aop.statistics()
        assert s.active_arenas == 3
        assert s.active_buffers == 2
        assert s.arenas_created == 3
        assert s.bytes_in_use == 3 * SIZE + caps
        assert s.bytes_reserved >= s.bytes_in_use
        assert s.high_water_bytes >= s.bytes_reserved
        peak = s.high_water_bytes
        for a in arenas:
            aop.return_arena(a)
        for b in bufs:
            aop.return_buffer(b)
        s = aop.statistics()
        assert (s.active_arenas, s.active_buffers, s.bytes_in_use) == (0, 0, 0)
        assert s.pooled_arenas == 3
        assert s.pooled_buffers == 2
        assert s.bytes_reserved == 3 * SIZE + caps
        assert s.high_water_bytes == peak, "the high-water mark must not drop"
        assert s.quarantined == 0
        aop.trim()
        aop.trim()
        s = aop.statistics()
        assert s.bytes_reserved == 0
        assert s.high_water_bytes == peak


def test_high_water_covers_everything_reserved_including_pooled_buffers() -> None:
    # ArenaOfPoolsStatistics documents high_water_bytes as "the most bytes_reserved has ever been".
    with ArenaOfPools(arena_size=1024) as aop:
        aop.return_buffer(aop.get_buffer(0))  # one idle 256-byte buffer
        arena = aop.get_arena()
        s = aop.statistics()
        assert s.bytes_reserved == 1024 + 256
        assert s.high_water_bytes >= s.bytes_reserved
        aop.return_arena(arena)


def test_high_water_never_drops_after_a_quarantine_replacement() -> None:
    with ArenaOfPools(arena_size=1024, trim_interval=None) as aop:
        arena = aop.get_arena()
        held = memoryview(arena.alloc(16))
        arena.reset()  # the exported region is parked, a second region is lent in its place
        s = aop.statistics()
        assert s.bytes_reserved == 2048
        assert s.high_water_bytes >= 2048
        aop.trim()  # the parked region stays counted: something still holds it
        assert aop.statistics().bytes_reserved == 2048
        del held
        aop.trim()  # nothing reaches it any more: released
        s = aop.statistics()
        assert s.bytes_reserved == 1024
        assert s.high_water_bytes >= 2048, "the high-water mark dropped"
        aop.return_arena(arena)


def test_metrics_record_arena_usage() -> None:
    with ArenaOfPools(arena_size=SIZE, metrics=True) as aop:
        for n in (100, 1000, 10):
            a = aop.get_arena()
            a.alloc(n)
            aop.return_arena(a)
        s = aop.statistics()
        assert s.arena_used_bytes_total == 1110
        assert s.arena_used_bytes_max == 1000
    with ArenaOfPools(arena_size=SIZE, metrics=False) as aop:
        a = aop.get_arena()
        a.alloc(100)
        aop.return_arena(a)
        s = aop.statistics()
        assert (s.arena_used_bytes_total, s.arena_used_bytes_max) == (0, 0)


# -- the arena() scope, synchronously ---------------------------------------------------------


def test_arena_scope_lends_and_returns() -> None:
    from electron.aio import current_arena

    with ArenaOfPools(arena_size=SIZE) as aop:
        with pytest.raises(LookupError):
            current_arena()
        scope = aop.arena()
        with scope as arena:
            assert current_arena() is arena
            assert aop.statistics().active_arenas == 1
            with aop.arena() as inner:
                assert current_arena() is inner
                assert inner is not arena
            assert current_arena() is arena
            assert inner.closed
        assert arena.closed
        assert aop.statistics().active_arenas == 0
        with pytest.raises(LookupError):
            current_arena()
        with pytest.raises(RuntimeError), scope:
            pass


def test_arena_scope_returns_on_error() -> None:
    with ArenaOfPools(arena_size=SIZE) as aop:
        with pytest.raises(KeyError), aop.arena() as arena:
            raise KeyError("x")
        assert arena.closed
        assert aop.statistics().active_arenas == 0


def test_arena_scope_timeout_raises_pool_exhausted() -> None:
    with ArenaOfPools(arena_size=SIZE, max_arenas=1) as aop:
        held = aop.get_arena()
        with pytest.raises(PoolExhausted), aop.arena(timeout=0.01):
            pass
        aop.return_arena(held)
        assert aop.statistics().active_arenas == 0
