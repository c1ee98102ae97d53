"""The lock-free loan and return paths of the compiled core, and base-view reuse.

With the compiled core on a GIL build (``electron._memory.ATOMIC``), arenas and buffers are
lent and taken back without the pool's lock when no locked section is in progress. These
tests pin the conditions that send them to the locked path, and check that reusing a
buffer's base view never exposes or keeps alive anything from the previous loan.
"""

from __future__ import annotations

import sys
import threading

import pytest

from electron import Arena, ArenaOfPools, BufferPool, DoubleRelease
from electron._memory import ATOMIC

JOIN = 10.0  # seconds: a bug fails the test instead of hanging it


def test_atomic_flag_matches_the_build() -> None:
    import electron

    gil = bool(getattr(sys, "_is_gil_enabled", lambda: True)())
    assert (electron.COMPILED and gil) == ATOMIC


@pytest.mark.parametrize("what", ["arena", "buffer", "return_arena", "return_buffer"])
def test_loans_and_returns_wait_for_a_locked_section_in_progress(what: str) -> None:
    """A thread holding the pool lock (a locked section, perhaps suspended by a thread
    switch) must not see another thread change the pool's state under it."""
    with ArenaOfPools(arena_size=4096) as aop:
        aop.return_arena(aop.get_arena())  # one idle arena and buffer: the fast paths apply
        aop.return_buffer(aop.get_buffer(1024))
        lent_arena = aop.get_arena() if what == "return_arena" else None
        lent_buffer = aop.get_buffer(1024) if what == "return_buffer" else None
        done = threading.Event()

        def act() -> None:
            if what == "arena":
                aop.return_arena(aop.get_arena())
            elif what == "buffer":
                aop.return_buffer(aop.get_buffer(1024))
            elif lent_arena is not None:
                aop.return_arena(lent_arena)
            elif lent_buffer is not None:
                aop.return_buffer(lent_buffer)
            done.set()

        aop._lock.acquire()
        try:
            before = aop.stats()
            worker = threading.Thread(target=act, daemon=True)
            worker.start()
            # The worker must block on the lock: it cannot finish while we hold it.
            assert not done.wait(0.2), f"{what} went ahead during a locked section"
            assert aop.stats() == before
        finally:
            aop._lock.release()
        worker.join(JOIN)
        assert done.is_set()
        stats = aop.stats()
        assert stats.active_arenas == 0
        assert stats.active_buffers == 0


def test_a_returned_buffer_base_view_serves_the_next_loan_without_exposing_bytes() -> None:
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


def _race_returns(aop: ArenaOfPools, arena: Arena, racers: int) -> list[str]:
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def give_back() -> None:
        barrier.wait()
        try:
            aop.return_arena(arena)
            result = "ok"
        except DoubleRelease:
            result = "double"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=give_back) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    return sorted(outcomes)


def test_an_arena_returned_from_many_threads_is_counted_once() -> None:
    """Racing returns of one arena: exactly one wins, the others get DoubleRelease."""
    for _ in range(50):
        with ArenaOfPools(arena_size=4096) as aop:
            arena = aop.get_arena()
            arena.alloc(64)
            assert _race_returns(aop, arena, 4) == ["double", "double", "double", "ok"]
            assert aop.stats().active_arenas == 0
            assert aop.stats().pooled_arenas == 1


def test_stack_is_lifo_keeps_no_reference_to_popped_regions_and_trims_the_oldest() -> None:
    from electron._memory import UNMAPPED, Stack

    stack = Stack()
    regions = [bytearray(16 * (i + 1)) for i in range(4)]
    views = [memoryview(r) for r in regions[:2]]
    stack.push(regions[0], views[0])
    stack.push(regions[1], views[1])
    stack.push(regions[2], UNMAPPED)
    assert len(stack) == 3
    assert stack.top() is regions[2]
    assert stack.top_view() is UNMAPPED
    refs = sys.getrefcount(regions[2])
    assert stack.pop() is regions[2]
    after = sys.getrefcount(regions[2])  # outside an assert: pytest's rewrite holds operands
    assert after == refs - 1  # the popped slot let go of it
    assert stack.low == 0  # never reset by a trim: still the initial 0
    stack.low = stack.n  # what a trim does
    stack.push(regions[3], UNMAPPED)  # reuses the freed slot
    assert [stack.pop(), stack.top_view()] == [regions[3], views[1]]
    assert stack.low == 2
    assert stack.drop_oldest(1) == len(regions[0])
    assert len(stack) == 1
    assert stack.top() is regions[1]
    assert stack.top_view() is views[1]
    assert stack.clear() == len(regions[1])
    assert len(stack) == 0
    for v in views:
        v.release()
