"""A lent arena or buffer is one handle: it cannot be duplicated, and a leaked one lets go.

Found by review: ``copy.copy`` of a lent handle gave a second live handle on the pure core
(two returns accepted, two later loans sharing one region) and crashed the compiled core;
and a handle collected as a leak kept its region referenced after the pool took it back,
so the next borrower's reference check quarantined the region for nothing.
"""

from __future__ import annotations

import copy
import gc
import pickle
from collections.abc import Callable, Iterator

import pytest

from electron import Arena, ArenaOfPools, Buffer, BufferPool


@pytest.fixture
def pool() -> Iterator[ArenaOfPools]:
    with ArenaOfPools(arena_size=4096) as aop:
        yield aop


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, pickle.dumps])
def test_a_lent_handle_cannot_be_duplicated(
    pool: ArenaOfPools, duplicate: Callable[[object], object]
) -> None:
    arena = pool.get_arena()
    buf = pool.get_buffer(64)
    for handle in (arena, buf):
        with pytest.raises(TypeError, match="cannot be"):
            duplicate(handle)
    pool.return_buffer(buf)
    pool.return_arena(arena)
    stats = pool.statistics()
    assert (stats.active_arenas, stats.active_buffers) == (0, 0)


@pytest.mark.parametrize("make", [lambda: Arena(64), lambda: Buffer(64)])
def test_a_standalone_handle_cannot_be_copied_either(make: Callable[[], object]) -> None:
    with pytest.raises(TypeError):
        copy.copy(make())


def _leak_in_a_cycle(take: Callable[[], object], while_collected: Callable[[], None]) -> None:
    """Leak the handle ``take()`` lends in a reference cycle, then collect it; the cycle also
    holds an object whose finalizer runs ``while_collected()`` as the handle is reclaimed."""

    class Later:
        cycle: object = None

        def __del__(self) -> None:
            while_collected()

    def leak() -> None:
        handle = take()  # made first: the collector finalizes it first, then runs Later's
        later = Later()
        holder: list[object] = [handle, later]
        holder.append(holder)
        later.cycle = holder

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        leak()
        gc.collect()
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.electron_leaks_expected
def test_a_leaked_buffer_does_not_get_its_region_quarantined() -> None:
    pool = BufferPool(leak_detection="off")
    reused: list[int] = []

    def take() -> Buffer:
        buf = pool.get(100)
        buf.write(b"x")
        buf.view()
        return buf

    def borrow_and_return() -> None:
        again = pool.get(100)
        again.write(b"z")
        reused.append(again.capacity)
        pool.put(again)

    _leak_in_a_cycle(take, borrow_and_return)
    stats = pool.statistics()
    assert reused
    assert stats.leaks_detected == 1
    assert stats.quarantined == 0
    assert stats.active == 0


@pytest.mark.electron_leaks_expected
def test_a_leaked_arena_does_not_get_its_region_quarantined(pool: ArenaOfPools) -> None:
    reused: list[int] = []

    def take() -> Arena:
        arena = pool.get_arena()
        arena.alloc(32)
        return arena

    def borrow_and_return() -> None:
        again = pool.get_arena()
        again.alloc(32)
        reused.append(again.capacity)
        pool.return_arena(again)

    _leak_in_a_cycle(take, borrow_and_return)
    stats = pool.statistics()
    assert reused
    assert stats.leaks_detected == 1
    assert stats.quarantine_events == 0
    assert stats.active_arenas == 0
