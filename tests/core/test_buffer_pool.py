"""BufferPool: size classes, reuse, bounded retention, quarantine, trim and misuse."""

from __future__ import annotations

import ctypes
import gc
import threading
from typing import Any

import numpy as np
import pytest

from electron import (
    Buffer,
    BufferClosed,
    BufferPool,
    DoubleRelease,
    ForeignObject,
    InvalidArgument,
    PoolClosed,
)


def _is_size_class(n: int) -> bool:
    """Four classes per power of two: 4, 5, 6 or 7 times a power of two (from 256 on)."""
    shift = max(0, n.bit_length() - 3)
    return n >= 256 and n % (1 << shift) == 0 and 4 <= n >> shift <= 7


@pytest.mark.parametrize("hint", [0, 1, 100, 256, 257, 1000, 4096, 5000, 65536, 1 << 20])
def test_get_gives_empty_buffer_with_capacity_at_least_hint(hint: int) -> None:
    pool = BufferPool()
    buf = pool.get(hint)
    assert isinstance(buf, Buffer)
    assert len(buf) == 0
    assert buf.getvalue() == b""
    assert buf.capacity >= hint
    # Four size classes per power of two: a hint wastes less than a quarter of the capacity.
    assert _is_size_class(buf.capacity)
    assert buf.capacity < 1.25 * max(hint, 256)
    assert buf.capacity == pool.size_class(hint)
    pool.put(buf)


def test_hints_in_one_size_class_share_pooled_memory() -> None:
    pool = BufferPool()
    a = pool.get(300)
    pool.put(a)
    b = pool.get(320)  # same class (320) as 300
    stats = pool.statistics()
    assert (stats.created, stats.reused) == (1, 1)
    c = pool.get(330)  # next class (384): fresh memory
    assert pool.statistics().created == 2
    assert c.capacity > b.capacity
    pool.put(b)
    pool.put(c)


def test_put_then_get_reuses_memory_under_a_new_object() -> None:
    pool = BufferPool()
    buf = pool.get(1000)
    buf.write(b"first use")
    cap = buf.capacity
    pool.put(buf)
    again = pool.get(1000)
    assert again is not buf
    assert buf.closed
    assert not again.closed
    assert again.capacity == cap
    assert len(again) == 0
    assert again.getvalue() == b""
    assert again.reserve(cap) == bytes(cap), "bytes of the previous use are visible"
    with pytest.raises(BufferClosed):
        buf.write(b"x")
    assert pool.statistics().reused == 1
    pool.put(again)


def test_capacity_kept_across_uses_after_growth() -> None:
    pool = BufferPool(max_size=1 << 20)
    buf = pool.get(0)
    buf.write(b"x" * 10_000)
    grown = buf.capacity
    assert grown >= 10_000
    pool.put(buf)
    again = pool.get(10_000)
    assert again.capacity == grown
    assert pool.statistics().reused == 1
    pool.put(again)


def test_statistics_track_active_pooled_created_reused() -> None:
    pool = BufferPool()
    bufs = [pool.get(100) for _ in range(3)]
    s = pool.statistics()
    assert (s.active, s.pooled, s.created, s.reused, s.pooled_bytes) == (3, 0, 3, 0, 0)
    for b in bufs:
        pool.put(b)
    s = pool.statistics()
    assert (s.active, s.pooled, s.pooled_bytes) == (0, 3, 3 * 256)
    held = pool.get(100)
    s = pool.statistics()
    assert (s.active, s.pooled, s.reused) == (1, 2, 1)
    pool.put(held)


# -- bounded retention ------------------------------------------------------------------------


def test_max_per_class_bounds_idle_buffers() -> None:
    pool = BufferPool(max_per_class=2)
    bufs = [pool.get(100) for _ in range(5)]
    for b in bufs:
        pool.put(b)
    s = pool.statistics()
    assert s.pooled == 2
    assert s.dropped == 3
    assert s.active == 0


def test_max_pooled_bytes_bounds_total_retention() -> None:
    pool = BufferPool(max_pooled_bytes=1024)
    bufs = [pool.get(256) for _ in range(6)]
    for b in bufs:
        pool.put(b)
    s = pool.statistics()
    assert s.pooled_bytes <= 1024
    assert s.pooled == 4
    assert s.dropped == 2


def test_buffer_above_max_size_is_dropped_on_put() -> None:
    pool = BufferPool(max_size=64 << 10)
    big = pool.get(100_000)
    assert big.capacity >= 100_000
    big.write(b"x" * 100_000)
    pool.put(big)
    s = pool.statistics()
    assert (s.pooled, s.pooled_bytes, s.dropped) == (0, 0, 1)
    again = pool.get(100_000)
    assert again is not big
    assert pool.statistics().created == 2
    pool.put(again)


def test_buffer_that_grew_above_max_size_while_lent_is_dropped() -> None:
    pool = BufferPool(max_size=4096)
    buf = pool.get(100)
    buf.write(b"y" * 10_000)
    pool.put(buf)
    s = pool.statistics()
    # The grown region is dropped; the 256-byte one it outgrew went back to the pool.
    assert (s.pooled, s.pooled_bytes, s.dropped) == (1, 256, 1)


def test_default_pool_drops_a_large_outlier() -> None:
    pool = BufferPool()
    outlier = pool.get(16 << 20)
    pool.put(outlier)
    assert pool.statistics().pooled_bytes == 0


# -- misuse -----------------------------------------------------------------------------------


def test_put_twice_is_double_release() -> None:
    pool = BufferPool()
    buf = pool.get(100)
    pool.put(buf)
    with pytest.raises(DoubleRelease):
        pool.put(buf)
    s = pool.statistics()
    assert (s.active, s.pooled) == (0, 1), "the second put must not pool the memory twice"
    a, b = pool.get(100), pool.get(100)
    assert pool.statistics().created == 2, "two gets after a double put share memory"
    pool.put(a)
    pool.put(b)


def test_put_twice_after_the_memory_was_lent_again_is_still_refused() -> None:
    pool = BufferPool()
    buf = pool.get(100)
    pool.put(buf)
    other = pool.get(100)  # same memory, new object
    other.write(b"owner two")
    with pytest.raises(DoubleRelease):
        pool.put(buf)
    assert other.getvalue() == b"owner two"
    assert pool.statistics().active == 1
    pool.put(other)


def test_buffer_from_another_pool_is_foreign() -> None:
    a, b = BufferPool(), BufferPool()
    buf = a.get(10)
    with pytest.raises(ForeignObject):
        b.put(buf)
    assert not buf.closed
    assert b.statistics().pooled == 0
    a.put(buf)


def test_standalone_buffer_is_foreign() -> None:
    pool = BufferPool()
    buf = Buffer(10)
    with pytest.raises(ForeignObject):
        pool.put(buf)
    assert not buf.closed
    assert pool.statistics().pooled == 0


@pytest.mark.parametrize("thing", [bytearray(10), b"abc", None], ids=["bytearray", "bytes", "None"])
def test_non_buffers_are_refused(thing: object) -> None:
    pool = BufferPool()
    with pytest.raises((ForeignObject, TypeError)):
        pool.put(thing)  # type: ignore[arg-type]
    assert pool.statistics().pooled == 0


@pytest.mark.parametrize(
    ("hint", "error"),
    [(-1, InvalidArgument), (1.5, TypeError), ("1", TypeError), (True, TypeError)],
)
def test_get_refuses_bad_hints(hint: object, error: type[Exception]) -> None:
    pool = BufferPool()
    with pytest.raises(error):
        pool.get(hint)  # type: ignore[arg-type]
    assert pool.statistics().active == 0
    pool.put(pool.get(1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_size": 0},
        {"min_size": 1024, "max_size": 512},
        {"max_pooled_bytes": -1},
        {"max_per_class": -1},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, int]) -> None:
    make: Any = BufferPool
    with pytest.raises(InvalidArgument):
        make(**kwargs)


# -- quarantine -------------------------------------------------------------------------------


def _export_numpy(v: memoryview) -> object:
    return np.frombuffer(v, dtype=np.uint8)


def _export_derived(v: memoryview) -> object:
    return memoryview(v)


def _export_ctypes(v: memoryview) -> object:
    return (ctypes.c_char * len(v)).from_buffer(v)


@pytest.mark.parametrize("export", [_export_numpy, _export_derived, _export_ctypes])
def test_view_still_exported_at_put_is_quarantined(export: object) -> None:
    pool = BufferPool(max_per_class=4)
    buf = pool.get(256)
    buf.write(b"\x42" * 256)
    held = export(buf.view())  # type: ignore[operator]
    pool.put(buf)
    s = pool.statistics()
    assert s.quarantined == 1
    assert s.pooled == 0, "memory still exported must not be pooled"
    nxt = pool.get(256)
    assert pool.statistics().created == 2
    r = nxt.reserve(256)
    assert r == bytes(256)
    r[:] = b"\x01" * 256
    # Scribble through the stale export: the new buffer's memory must not change.
    if isinstance(held, np.ndarray):
        held[:] = 0xEE
    elif isinstance(held, memoryview):
        held[:] = b"\xee" * len(held)
    else:
        assert isinstance(held, ctypes.Array)
        ctypes.memset(ctypes.addressof(held), 0xEE, 256)
    assert r == b"\x01" * 256
    pool.put(nxt)


def test_reserve_view_exported_at_put_is_quarantined() -> None:
    pool = BufferPool()
    buf = pool.get(100)
    arr = np.frombuffer(buf.reserve(64), dtype=np.uint8)
    pool.put(buf)
    assert pool.statistics().quarantined == 1
    assert pool.statistics().pooled == 0
    del arr


def test_plain_views_do_not_cause_quarantine() -> None:
    pool = BufferPool()
    buf = pool.get(100)
    buf.write(b"abc")
    v = buf.view()
    r = buf.reserve(10)
    pool.put(buf)
    s = pool.statistics()
    assert (s.quarantined, s.pooled) == (0, 1)
    del v, r


# -- trim -------------------------------------------------------------------------------------


def test_trim_releases_buffers_unused_since_last_trim() -> None:
    pool = BufferPool()
    bufs = [pool.get(1000) for _ in range(4)]
    for b in bufs:
        pool.put(b)
    pool.trim()  # a trim only drops what stayed idle for a whole interval
    # During this interval one buffer is used: it is kept, the three idle ones go.
    pool.put(pool.get(1000))
    freed = pool.trim()
    assert freed == 3 * 1024
    s = pool.statistics()
    assert (s.pooled, s.pooled_bytes) == (1, 1024)
    # Nothing used in the next interval: the last one goes too.
    assert pool.trim() == 1024
    s = pool.statistics()
    assert (s.pooled, s.pooled_bytes) == (0, 0)
    assert pool.trim() == 0


def test_trim_after_burst_returns_memory_to_baseline() -> None:
    pool = BufferPool()
    bufs = [pool.get(64 << 10) for _ in range(16)]
    for b in bufs:
        b.write(b"z" * (64 << 10))
    for b in bufs:
        pool.put(b)
    del bufs
    assert pool.statistics().pooled_bytes == 16 * (64 << 10)
    total = pool.trim() + pool.trim()
    assert total == 16 * (64 << 10)
    gc.collect()
    assert pool.statistics().pooled_bytes == 0
    # The pool still works after trimming.
    b = pool.get(64 << 10)
    assert b.capacity == 64 << 10
    pool.put(b)


def test_clear_releases_every_idle_buffer() -> None:
    pool = BufferPool()
    for b in [pool.get(100) for _ in range(3)]:
        pool.put(b)
    pool.clear()
    s = pool.statistics()
    assert (s.pooled, s.pooled_bytes) == (0, 0)


# -- close ------------------------------------------------------------------------------------


def test_close_refuses_gets_but_accepts_lent_buffers() -> None:
    pool = BufferPool()
    lent = pool.get(100)
    idle = pool.get(100)
    pool.put(idle)
    with pool:
        pass
    with pytest.raises(PoolClosed):
        pool.get(10)
    assert pool.statistics().pooled == 0
    lent.write(b"still usable")
    pool.put(lent)
    s = pool.statistics()
    assert (s.active, s.pooled) == (0, 0)


# -- threads ----------------------------------------------------------------------------------


def test_concurrent_get_put_never_shares_a_buffer() -> None:
    pool = BufferPool(max_per_class=8)
    errors: list[str] = []
    start = threading.Barrier(8)

    def worker(ident: int) -> None:
        start.wait()
        tag = bytes([ident + 1]) * 64
        for _ in range(500):
            buf = pool.get(512)
            if len(buf) != 0 or buf.reserve(512) != bytes(512):
                errors.append("dirty buffer")
            buf.write(tag)
            if buf.getvalue() != tag:
                errors.append("buffer shared between threads")
            pool.put(buf)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = pool.statistics()
    assert s.active == 0
    assert s.pooled <= 8
    assert s.created + s.reused == 8 * 500


def test_a_returned_buffer_serves_the_next_loan_without_exposing_bytes() -> None:
    pool = BufferPool()
    first = pool.get(1024)
    first.write(b"secret" * 100)
    pool.put(first)
    second = pool.get(1024)
    assert second.capacity >= 1024
    assert second.getvalue() == b""
    assert bytes(second.view()) == b""
    second.write(b"ok")
    assert second.getvalue() == b"ok"
    assert pool.statistics().reused >= 1
    pool.put(second)
    with pytest.raises(DoubleRelease):
        pool.put(second)


def test_a_buffer_that_handed_out_a_view_comes_back_through_the_export_checks() -> None:
    pool = BufferPool()
    buf = pool.get(1024)
    buf.write(b"abc")
    view = buf.view()
    pool.put(buf)
    with pytest.raises(ValueError):
        bytes(view)  # released on put
    again = pool.get(1024)
    assert again.getvalue() == b""
    pool.put(again)
    assert pool.statistics().quarantined == 0


def test_a_derived_view_of_a_returned_buffer_quarantines_the_region() -> None:
    pool = BufferPool()
    buf = pool.get(1024)
    buf.write(b"abc")
    derived = memoryview(buf.view())  # an export the pool cannot release
    pool.put(buf)
    assert pool.statistics().quarantined == 1
    fresh = pool.get(1024)
    fresh.write(b"xyz")
    assert bytes(derived) == b"abc"  # the old memory was not handed out again
    pool.put(fresh)


def test_growth_reuses_pooled_regions_once_warm() -> None:
    # A buffer that grows by writes (as read_body's do) grows into idle regions of the next
    # class and leaves the region it outgrew to the pool: after the first round, no fresh memory.
    pool = BufferPool()
    chunk = b"u" * 10_000
    for _ in range(3):
        buf = pool.get(len(chunk))
        for _ in range(100):
            buf.write(chunk)
        assert buf.getvalue() == chunk * 100
        pool.put(buf)
        created = pool.statistics().created
    for _ in range(3):
        buf = pool.get(len(chunk))
        for _ in range(100):
            buf.write(chunk)
        pool.put(buf)
    assert pool.statistics().created == created
    assert pool.statistics().active == 0


def test_a_region_outgrown_while_its_view_is_held_is_not_reused() -> None:
    pool = BufferPool()
    buf = pool.get(256)
    buf.write(b"a" * 200)
    kept = memoryview(buf.view())  # derived: survives the buffer's return, still exported
    buf.write(b"b" * 2000)  # grows: the old region must not go back to the pool
    fresh = pool.get(256)
    fresh.write(b"x" * 256)
    assert bytes(kept) == b"a" * 200
    pool.put(fresh)
    pool.put(buf)
    kept.release()


def test_a_region_outgrown_while_its_obj_is_held_is_not_reused() -> None:
    pool = BufferPool()
    buf = pool.get(256)
    buf.write(b"c" * 200)
    view = buf.view()
    region: Any = view.obj  # the bytearray itself: no export, only a reference
    view.release()
    buf._views = None  # as if no view had been handed out: only the reference check is left
    buf.write(b"d" * 2000)
    fresh = pool.get(256)
    fresh.write(b"y" * 256)
    assert bytes(region[:200]) == b"c" * 200
    pool.put(fresh)
    pool.put(buf)
