"""ArenaOfPools(arena_size="auto"): learns the size from use, grows arenas within bounds."""

from __future__ import annotations

import random

import pytest

import electron

KIB = 1 << 10


def _serve(aop: electron.ArenaOfPools, sizes: list[int]) -> None:
    for n in sizes:
        arena = aop.get_arena()
        view = arena.alloc(n)
        view[-1:] = b"\x01"
        assert arena.used >= n
        aop.return_arena(arena)


def test_converges_to_the_p95_of_use() -> None:
    aop = electron.ArenaOfPools(arena_size="auto", min_arena_size=KIB, max_arena_size=1 << 20)
    assert aop.auto_sized
    rng = random.Random(7)
    # 96% of requests use ~3 KB, 4% use 100 KB: the p95 is ~3 KB, so arenas become 4 KiB.
    sizes = [3000 if rng.random() < 0.96 else 100_000 for _ in range(3000)]
    _serve(aop, sizes)
    assert aop.arena_size == 4 * KIB
    assert aop.statistics().arena_size == 4 * KIB
    # The workload shifts to ~40 KB requests: the size follows within a window.
    _serve(aop, [40_000] * 1500)
    assert aop.arena_size == 64 * KIB
    stats = aop.statistics()
    assert stats.active_arenas == 0
    assert stats.bytes_in_use == 0


def test_respects_its_bounds() -> None:
    aop = electron.ArenaOfPools(
        arena_size="auto", min_arena_size=8 * KIB, max_arena_size=128 * KIB
    )
    _serve(aop, [100] * 600)
    assert aop.arena_size == 8 * KIB  # not below min_arena_size
    _serve(aop, [100 * KIB] * 600)  # each request grows its arena; the size follows
    assert aop.arena_size == 128 * KIB  # not above max_arena_size


def test_arena_grows_for_an_outlier_up_to_max_arena_size() -> None:
    aop = electron.ArenaOfPools(arena_size="auto", min_arena_size=4 * KIB, max_arena_size=256 * KIB)
    arena = aop.get_arena()
    first = arena.capacity
    big = arena.alloc(first * 2)  # does not fit: the arena grows by a chunk
    big[:] = b"\xff" * len(big)
    assert arena.capacity > first
    assert aop.statistics().bytes_in_use == arena.capacity
    with pytest.raises(electron.InsufficientCapacity):
        arena.alloc(256 * KIB)  # would pass max_arena_size
    assert arena.try_alloc(256 * KIB) is None
    small = arena.alloc(16)
    assert bytes(small) == bytes(16)
    aop.return_arena(arena)
    stats = aop.statistics()
    assert stats.bytes_in_use == 0
    assert stats.active_arenas == 0
    # The memory that comes back is zeroed, chunks included (they are dropped, not reused).
    again = aop.get_arena()
    assert bytes(again.alloc(again.capacity)) == bytes(again.capacity)
    aop.return_arena(again)


def test_grown_arena_reset_gives_chunks_back() -> None:
    aop = electron.ArenaOfPools(arena_size="auto", min_arena_size=4 * KIB, max_arena_size=256 * KIB)
    arena = aop.get_arena()
    base = arena.capacity
    arena.alloc(base + 1)
    assert aop.statistics().bytes_in_use > base
    arena.reset()
    assert arena.capacity == base
    assert arena.used == 0
    assert aop.statistics().bytes_in_use == base
    aop.return_arena(arena)


def test_exported_chunk_is_quarantined_not_reused() -> None:
    aop = electron.ArenaOfPools(arena_size="auto", min_arena_size=4 * KIB, max_arena_size=256 * KIB)
    arena = aop.get_arena()
    view = arena.alloc(arena.capacity * 2)
    kept = memoryview(view)  # survives release: pins the overflow chunk
    aop.return_arena(arena)
    assert aop.statistics().quarantined == 1
    kept[:4] = b"evil"
    nxt = aop.get_arena()
    assert bytes(nxt.alloc(nxt.capacity)) == bytes(nxt.capacity)
    aop.return_arena(nxt)
    del kept


def test_auto_respects_max_bytes_when_growing() -> None:
    aop = electron.ArenaOfPools(
        arena_size="auto", min_arena_size=4 * KIB, max_arena_size=1 << 20, max_bytes=96 * KIB
    )
    arena = aop.get_arena()
    assert arena.try_alloc(200 * KIB) is None  # would pass the pool's budget
    arena.alloc(16)
    aop.return_arena(arena)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(electron.InvalidArgument):
        electron.ArenaOfPools(arena_size="auto", min_arena_size=8 * KIB, max_arena_size=KIB)
    with pytest.raises(electron.InvalidArgument):
        electron.ArenaOfPools(arena_size="big")  # type: ignore[arg-type]
