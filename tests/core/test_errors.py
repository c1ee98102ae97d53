"""The error tree: every error is an ElectronError and the builtin it resembles.

Each error is raised here from a real call site, and its message states the facts
(sizes, capacities, limits) a user needs to act on it.
"""

from __future__ import annotations

import pytest

import electron
from electron import (
    Arena,
    ArenaClosed,
    ArenaOfPools,
    Buffer,
    BufferClosed,
    BufferPool,
    DoubleRelease,
    ElectronError,
    ForeignObject,
    InsufficientCapacity,
    InvalidArgument,
    PoolClosed,
    PoolExhausted,
    ResourceClosed,
)

HIERARCHY = [
    (InvalidArgument, ValueError),
    (InsufficientCapacity, MemoryError),
    (PoolExhausted, TimeoutError),
    (ResourceClosed, RuntimeError),
    (ArenaClosed, RuntimeError),
    (BufferClosed, RuntimeError),
    (PoolClosed, RuntimeError),
    (DoubleRelease, RuntimeError),
    (ForeignObject, ValueError),
]


@pytest.mark.parametrize(("error", "builtin"), HIERARCHY, ids=lambda x: x.__name__)
def test_error_subclasses_electron_error_and_builtin(
    error: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, ElectronError)
    assert issubclass(error, builtin)
    assert issubclass(ElectronError, Exception)
    assert not issubclass(ElectronError, builtin)


@pytest.mark.parametrize("error", [ArenaClosed, BufferClosed, PoolClosed])
def test_closed_errors_share_resource_closed(error: type[Exception]) -> None:
    assert issubclass(error, ResourceClosed)


def test_every_public_error_is_in_the_tree() -> None:
    errors = {
        obj
        for name in electron.__all__
        if isinstance(obj := getattr(electron, name), type) and issubclass(obj, BaseException)
    }
    assert errors == {e for e, _ in HIERARCHY} | {ElectronError}


def test_insufficient_capacity_states_sizes_and_is_catchable_as_memory_error() -> None:
    arena = Arena(1024)
    arena.alloc(100)  # used=100, the next allocation starts at offset 112
    with pytest.raises(MemoryError) as info:
        arena.alloc(2048)
    err = info.value
    assert isinstance(err, InsufficientCapacity)
    assert (err.requested, err.available, err.capacity) == (2048, 1024 - 112, 1024)
    msg = str(err)
    assert "2048" in msg
    assert str(1024 - 112) in msg
    assert "1024" in msg


def test_pool_exhausted_states_the_limit_and_is_a_timeout_error() -> None:
    with ArenaOfPools(arena_size=4096, max_arenas=1) as aop:
        held = aop.get_arena()
        with pytest.raises(TimeoutError) as info:
            aop.get_arena(timeout=0)
        assert isinstance(info.value, PoolExhausted)
        assert "max_arenas=1" in str(info.value)
        aop.return_arena(held)


def test_pool_exhausted_by_bytes_states_the_byte_budget() -> None:
    with ArenaOfPools(arena_size=4096, max_bytes=4096) as aop:
        held = aop.get_arena()
        with pytest.raises(PoolExhausted) as info:
            aop.get_arena(timeout=0.01)
        assert "max_bytes=4096" in str(info.value)
        assert "4096 of" in str(info.value)
        aop.return_arena(held)


def test_invalid_argument_names_the_argument_and_value() -> None:
    with pytest.raises(ValueError) as info:
        Arena(-5)
    assert isinstance(info.value, InvalidArgument)
    assert info.value.name == "capacity"
    assert "capacity" in str(info.value)
    assert "-5" in str(info.value)


def test_arena_closed_raised_after_close() -> None:
    arena = Arena(64)
    arena.close()
    with pytest.raises(RuntimeError) as info:
        arena.alloc(1)
    assert isinstance(info.value, ArenaClosed)
    assert "arena" in str(info.value)


def test_buffer_closed_raised_after_put() -> None:
    pool = BufferPool()
    buf = pool.get(10)
    pool.put(buf)
    with pytest.raises(BufferClosed) as info:
        buf.write(b"x")
    assert "buffer" in str(info.value)


def test_pool_closed_raised_after_close() -> None:
    aop = ArenaOfPools(arena_size=1024)
    aop.close()
    with pytest.raises(PoolClosed) as info:
        aop.get_arena()
    assert "pool" in str(info.value)


def test_double_release_and_foreign_object_name_the_kind() -> None:
    with ArenaOfPools(arena_size=1024) as aop:
        arena = aop.get_arena()
        aop.return_arena(arena)
        with pytest.raises(DoubleRelease, match="arena"):
            aop.return_arena(arena)
        with pytest.raises(ForeignObject, match="arena") as info:
            aop.return_arena(Arena(1024))
        assert info.value.pool is aop
        assert repr(aop) in str(info.value)


def test_errors_can_be_caught_by_the_root() -> None:
    pool = BufferPool()
    with pytest.raises(ElectronError):
        pool.put(Buffer(10))
