"""``max_bytes`` bounds everything a pool holds: lent, idle and quarantined memory alike."""

from __future__ import annotations

import pytest

from electron import ArenaOfPools, InsufficientCapacity, PoolExhausted

ARENA = 64 << 10
MiB = 1 << 20


def _held(aop: ArenaOfPools) -> int:
    return aop.statistics().bytes_reserved


def test_idle_memory_counts_and_is_released_to_make_room() -> None:
    with ArenaOfPools(arena_size=ARENA, max_bytes=6 * ARENA) as aop:
        arenas = [aop.get_arena() for _ in range(4)]
        for arena in arenas:
            aop.return_arena(arena)
        assert aop.statistics().pooled_arenas == 4  # idle, and counted
        assert _held(aop) == 4 * ARENA
        buf = aop.get_buffer(4 * ARENA)  # fits only once idle arenas are released
        assert _held(aop) <= 6 * ARENA
        assert aop.statistics().pooled_arenas <= 2
        aop.return_buffer(buf)
        assert _held(aop) <= 6 * ARENA


def test_held_bytes_never_pass_the_budget_whatever_the_mix() -> None:
    budget = 6 * ARENA
    with ArenaOfPools(arena_size=ARENA, max_bytes=budget) as aop:
        for size in (1000, 100_000, 3000, 200_000, 50, 120_000, 7000, 250_000):
            arena = aop.get_arena()
            buf = aop.get_buffer(size)
            buf.write(b"x" * size)
            assert _held(aop) <= budget
            aop.return_buffer(buf)
            aop.return_arena(arena)
            assert _held(aop) <= budget
        assert aop.statistics().high_water_bytes <= budget


def test_growth_past_the_budget_is_refused_at_the_write() -> None:
    with ArenaOfPools(arena_size=ARENA, max_bytes=MiB) as aop:
        other = aop.get_buffer(512 << 10)  # half the budget, held elsewhere
        buf = aop.get_buffer(1024)
        buf.write(b"a" * 1024)
        with pytest.raises(PoolExhausted) as refused:
            buf.write(b"b" * (600 << 10))  # fits the budget, not beside the other buffer
        assert refused.value.nbytes is not None  # what the growth asked for, beside 1024
        assert refused.value.nbytes >= (600 << 10) + 1024 - buf.capacity
        with pytest.raises(PoolExhausted) as refused:
            aop.get_buffer(600 << 10)
        assert refused.value.nbytes is not None
        assert refused.value.nbytes >= 600 << 10  # its size class
        assert buf.getvalue() == b"a" * 1024  # nothing was lost
        with pytest.raises(InsufficientCapacity, match="whole budget"):
            buf.write(b"c" * (2 * MiB))  # never fits: a final answer
        assert _held(aop) <= MiB
        aop.return_buffer(buf)
        aop.return_buffer(other)
        assert aop.statistics().bytes_in_use == 0


def test_a_body_that_fits_the_budget_gets_a_buffer() -> None:
    # Power-of-two classes would round 4 MiB + 1 up to 8 MiB; four classes per power of two
    # round it to 5 MiB, and what still would not fit is lent at its exact size.
    with ArenaOfPools(arena_size=ARENA, max_bytes=8 * MiB) as aop:
        buf = aop.get_buffer(4 * MiB + 1)
        assert 4 * MiB + 1 <= buf.capacity <= 5 * MiB
        aop.return_buffer(buf)
        buf = aop.get_buffer(8 * MiB - 100)
        assert 8 * MiB - 100 <= buf.capacity <= 8 * MiB
        aop.return_buffer(buf)
    with ArenaOfPools(arena_size=ARENA, max_bytes=7 * MiB) as aop:
        buf = aop.get_buffer(6 * MiB + 1)  # its class (7 MiB) fits exactly
        assert buf.capacity == 7 * MiB
        aop.return_buffer(buf)
        buf = aop.get_buffer(7 * MiB - 1)  # its class (7 MiB) fits
        aop.return_buffer(buf)
    with ArenaOfPools(arena_size=ARENA, max_bytes=5 * MiB + 1000) as aop:
        buf = aop.get_buffer(5 * MiB + 500)  # its class (6 MiB) would not: the exact size
        assert buf.capacity == 5 * MiB + 500
        aop.return_buffer(buf)


def test_a_request_larger_than_the_whole_budget_gets_a_final_answer() -> None:
    with ArenaOfPools(arena_size=ARENA, max_bytes=MiB) as aop:
        with pytest.raises(InsufficientCapacity) as info:
            aop.get_buffer(2 * MiB)
        assert (info.value.requested, info.value.capacity, info.value.where) == (
            2 * MiB,
            MiB,
            "budget",
        )
        assert str(2 * MiB) in str(info.value)
        assert str(MiB) in str(info.value)
        assert aop.statistics().bytes_in_use == 0


def test_pooled_buffers_default_to_at_most_half_the_budget() -> None:
    with ArenaOfPools(arena_size=ARENA, max_bytes=2 * MiB) as aop:
        bufs = [aop.get_buffer(256 << 10) for _ in range(6)]
        for buf in bufs:
            aop.return_buffer(buf)
        assert aop.statistics().pooled_buffers * (256 << 10) <= MiB


def test_trim_releases_idle_buffers_too() -> None:
    with ArenaOfPools(arena_size=ARENA, trim_interval=None) as aop:
        bufs = [aop.get_buffer(100_000) for _ in range(4)]
        for buf in bufs:
            aop.return_buffer(buf)
        aop.return_arena(aop.get_arena())
        aop.trim()  # marks what is idle now
        assert aop.statistics().pooled_buffers == 4
        freed = aop.trim()  # nothing was used since: all of it goes
        stats = aop.statistics()
        assert (stats.pooled_buffers, stats.pooled_arenas) == (0, 0)
        assert freed >= 4 * 100_000 + ARENA
