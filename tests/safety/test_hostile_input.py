"""Hostile input: every public entry point of the core given garbage.

Wrong types, negative, zero, huge and out-of-range sizes, NaN/inf/negative timeouts, objects
from another pool and objects already given back must each end in a typed error (TypeError
or an :class:`~electron.ElectronError`), never in a crash, a hang or a corrupted pool. After
every bad call the pool's statistics must still add up and a full get/alloc/return cycle must
still work. A hypothesis fuzzer and a state machine (with threads) mix valid and invalid
calls.
"""

from __future__ import annotations

import ctypes
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

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
    ObjectPool,
    PoolClosed,
    PoolExhausted,
)
from electron.aio import acquire_arena

MAX_SIZE = 1 << 40  # electron._checks.MAX_SIZE: the largest size accepted anywhere
ARENA = 4096
MAX_ARENAS = 4
BUDGET = MAX_ARENAS * ARENA + (64 << 10)  # room for every arena plus 64 KiB of buffers
TYPED = (TypeError, ElectronError)


class Index:
    """Not an int, but has ``__index__``: accepted wherever a size is."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Index({self.n})"


# Values that are not sizes at all: TypeError.
BAD_SIZE_TYPES: list[object] = [
    None,
    1.0,
    1.5,
    math.nan,
    math.inf,
    "8",
    b"8",
    [8],
    (8,),
    {8: 8},
    object(),
    True,
    False,
    complex(8, 0),
    Decimal(8),
    Fraction(8),
    np.float64(8),
]
# Integers out of range: InvalidArgument.
BAD_SIZE_VALUES: list[object] = [
    -1,
    -(2**63),
    MAX_SIZE + 1,
    2**64,
    2**200,
    np.int64(-1),
    Index(-5),
    Index(MAX_SIZE + 1),
]
# Not numbers: TypeError.
BAD_TIMEOUT_TYPES: list[object] = ["1", b"1", [1], object(), True, complex(1, 0), Decimal(1)]
# Numbers out of range: InvalidArgument.
BAD_TIMEOUT_VALUES: list[object] = [-1, -1e-9, -math.inf, math.nan, np.float64(math.nan), -0.5]


def _id(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


@dataclass
class Env:
    """A budgeted pool holding one arena and one buffer, plus every kind of stray object."""

    aop: ArenaOfPools
    other: ArenaOfPools
    arena: Arena
    buffer: Buffer
    dead_arena: Arena
    dead_buffer: Buffer
    foreign_arena: Arena
    foreign_buffer: Buffer
    foreign_dead_arena: Arena
    bpool: BufferPool
    opool: ObjectPool[list[int]]
    closed: ArenaOfPools
    cleanup: list[Callable[[], object]] = field(default_factory=list)

    def check(self) -> None:
        """The pool's statistics add up, and it (and what it lent) still works."""
        check_pool(self.aop, arenas=1, buffer_bytes=self.buffer.capacity, buffers=1)
        full_cycle(self.aop)
        v = self.arena.try_alloc(16)  # None if a fuzzed call filled it: that is allowed
        if v is not None:
            assert v == bytes(16)
            v[:] = b"still-mine-16byt"
            assert bytes(v) == b"still-mine-16byt"
        self.buffer.write(b"ok")
        check_pool(self.aop, arenas=1, buffer_bytes=self.buffer.capacity, buffers=1)


def check_pool(aop: ArenaOfPools, *, arenas: int, buffers: int, buffer_bytes: int) -> None:
    s = aop.statistics()
    assert all(v >= 0 for v in s.as_dict().values()), s
    assert s.active_arenas == arenas, s
    assert s.active_buffers == buffers, s
    assert s.bytes_in_use == arenas * aop.arena_size + buffer_bytes, s
    assert s.bytes_reserved >= s.bytes_in_use, s
    assert s.high_water_bytes >= s.bytes_reserved, s
    assert s.waiting == 0, s
    assert s.leaks_detected == 0, s


def full_cycle(aop: ArenaOfPools) -> None:
    """Take an arena and a buffer, use them, give them back."""
    arena = aop.get_arena(timeout=5)
    view = arena.alloc(64)
    assert view == bytes(64), "a fresh allocation must read zero"
    view[:] = b"\xab" * 64
    buf = aop.get_buffer(100)
    assert len(buf) == 0
    buf.write(b"hello")
    assert buf.getvalue() == b"hello"
    aop.return_buffer(buf)
    aop.return_arena(arena)
    assert arena.closed
    assert buf.closed


@contextmanager
def make_env() -> Iterator[Env]:
    """A fresh :class:`Env`; on a clean exit, checks everything came back and still works."""
    aop = ArenaOfPools(arena_size=ARENA, pool_size=4, max_arenas=MAX_ARENAS, max_bytes=BUDGET)
    other = ArenaOfPools(arena_size=ARENA)
    dead_arena = aop.get_arena()
    aop.return_arena(dead_arena)
    dead_buffer = aop.get_buffer(10)
    aop.return_buffer(dead_buffer)
    foreign_dead_arena = other.get_arena()
    other.return_arena(foreign_dead_arena)
    closed = ArenaOfPools(arena_size=ARENA)
    closed.close()
    e = Env(
        aop=aop,
        other=other,
        arena=aop.get_arena(),
        buffer=aop.get_buffer(300),
        dead_arena=dead_arena,
        dead_buffer=dead_buffer,
        foreign_arena=other.get_arena(),
        foreign_buffer=other.get_buffer(10),
        foreign_dead_arena=foreign_dead_arena,
        bpool=BufferPool(),
        opool=ObjectPool(list),
        closed=closed,
    )
    yield e
    for fn in e.cleanup:
        fn()
    e.check()
    aop.return_arena(e.arena)
    aop.return_buffer(e.buffer)
    other.return_arena(e.foreign_arena)
    other.return_buffer(e.foreign_buffer)
    check_pool(aop, arenas=0, buffers=0, buffer_bytes=0)
    check_pool(other, arenas=0, buffers=0, buffer_bytes=0)


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env() as e:
        yield e


# -- sizes and timeouts, every entry point --------------------------------------------------

SIZE_ENTRIES: dict[str, Callable[[Env, Any], object]] = {
    "Arena(capacity)": lambda e, v: Arena(v),
    "Arena.alloc": lambda e, v: e.arena.alloc(v),
    "Arena.try_alloc": lambda e, v: e.arena.try_alloc(v),
    "Buffer(capacity)": lambda e, v: Buffer(v),
    "Buffer.reserve": lambda e, v: e.buffer.reserve(v),
    "Buffer.commit": lambda e, v: e.buffer.commit(v),
    "BufferPool(min_size)": lambda e, v: BufferPool(min_size=v),
    "BufferPool(max_size)": lambda e, v: BufferPool(max_size=v),
    "BufferPool(max_pooled_bytes)": lambda e, v: BufferPool(max_pooled_bytes=v),
    "BufferPool(max_per_class)": lambda e, v: BufferPool(max_per_class=v),
    "BufferPool.get": lambda e, v: e.bpool.get(v),
    "ObjectPool(max_size)": lambda e, v: ObjectPool(list, max_size=v),
    "ArenaOfPools(arena_size)": lambda e, v: ArenaOfPools(arena_size=v),
    "ArenaOfPools(pool_size)": lambda e, v: ArenaOfPools(pool_size=v),
    "ArenaOfPools(max_arenas)": lambda e, v: ArenaOfPools(max_arenas=v),
    "ArenaOfPools(max_bytes)": lambda e, v: ArenaOfPools(max_bytes=v),
    "ArenaOfPools(min_arena_size)": lambda e, v: ArenaOfPools(min_arena_size=v),
    "ArenaOfPools(max_arena_size)": lambda e, v: ArenaOfPools(max_arena_size=v),
    "ArenaOfPools.get_buffer": lambda e, v: e.aop.get_buffer(v),
}

TIMEOUT_ENTRIES: dict[str, Callable[[Env, Any], object]] = {
    "ArenaOfPools.get_arena": lambda e, v: e.aop.get_arena(v),
    "ArenaOfPools.arena": lambda e, v: e.aop.arena(timeout=v),
    "ArenaOfPools(trim_interval)": lambda e, v: ArenaOfPools(trim_interval=v),
}


# Entry points where None is legal ("no limit").
NONE_OK = {
    "ObjectPool(max_size)",
    "ArenaOfPools(max_arenas)",
    "ArenaOfPools(max_bytes)",
    "BufferPool(max_pooled_bytes)",  # None: the default (64 MiB, at most half a budget)
}


@pytest.mark.parametrize(
    ("entry", "value"),
    [
        pytest.param(entry, value, id=f"{entry}-{_id(value)}")
        for entry in SIZE_ENTRIES
        for value in BAD_SIZE_TYPES
        if not (value is None and entry in NONE_OK)
    ],
)
def test_a_size_of_the_wrong_type_is_a_type_error(env: Env, entry: str, value: object) -> None:
    # arena_size also takes the string "auto": any other string is a bad value.
    auto_ok = entry == "ArenaOfPools(arena_size)" and isinstance(value, str)
    expected = TYPED if auto_ok else TypeError
    with pytest.raises(expected):
        SIZE_ENTRIES[entry](env, value)


@pytest.mark.parametrize("value", BAD_SIZE_VALUES, ids=_id)
@pytest.mark.parametrize("entry", SIZE_ENTRIES)
def test_a_size_out_of_range_is_invalid(env: Env, entry: str, value: object) -> None:
    with pytest.raises(InvalidArgument):
        SIZE_ENTRIES[entry](env, value)


@pytest.mark.parametrize("value", BAD_TIMEOUT_TYPES, ids=_id)
@pytest.mark.parametrize("entry", TIMEOUT_ENTRIES)
def test_a_timeout_of_the_wrong_type_is_a_type_error(env: Env, entry: str, value: object) -> None:
    with pytest.raises(TypeError):
        TIMEOUT_ENTRIES[entry](env, value)


@pytest.mark.parametrize("value", BAD_TIMEOUT_VALUES, ids=_id)
@pytest.mark.parametrize("entry", TIMEOUT_ENTRIES)
def test_a_timeout_out_of_range_is_invalid(env: Env, entry: str, value: object) -> None:
    with pytest.raises(InvalidArgument):
        TIMEOUT_ENTRIES[entry](env, value)


@pytest.mark.parametrize("value", [0, np.int64(16), Index(16), 16])
def test_index_objects_and_zero_are_sizes(env: Env, value: object) -> None:
    v = env.arena.alloc(value)  # type: ignore[arg-type]
    assert len(v) == int(value)  # type: ignore[call-overload]
    buf = env.aop.get_buffer(value)  # type: ignore[arg-type]
    assert buf.capacity >= int(value)  # type: ignore[call-overload]
    env.aop.return_buffer(buf)


def test_huge_but_legal_sizes_are_refused_cleanly(env: Env) -> None:
    """Up to MAX_SIZE a size is an allocation attempt: refused by capacity or budget."""
    with pytest.raises(InsufficientCapacity):
        env.arena.alloc(MAX_SIZE)
    assert env.arena.try_alloc(MAX_SIZE) is None
    with pytest.raises(InsufficientCapacity, match="whole budget"):
        env.aop.get_buffer(MAX_SIZE)  # over max_bytes: a final answer, before any allocation
    with pytest.raises(PoolExhausted):
        env.aop.get_buffer(BUDGET)  # fits the budget, but not beside what is lent now


# -- one-off bad calls ------------------------------------------------------------------------

CallCase = tuple[Callable[[Env], object], tuple[type[BaseException], ...]]


def _enter(scope: Any) -> None:
    with scope:
        pass


def _ctypes_new_bad_args(e: Env) -> object:
    return e.arena.new(ctypes.c_int32, "not an int")


def _returns_arena(value: object) -> Callable[[Env], object]:
    return lambda e: e.aop.return_arena(value)  # type: ignore[arg-type]


def _returns_buffer(value: object) -> Callable[[Env], object]:
    return lambda e: e.aop.return_buffer(value)  # type: ignore[arg-type]


BAD_CALLS: dict[str, CallCase] = {
    # constructors given impossible values
    "Arena(0)": (lambda e: Arena(0), (InvalidArgument,)),
    "ArenaOfPools(arena_size=0)": (lambda e: ArenaOfPools(arena_size=0), (InvalidArgument,)),
    "ArenaOfPools(max_arenas=0)": (lambda e: ArenaOfPools(max_arenas=0), (InvalidArgument,)),
    "ArenaOfPools(max_bytes<arena_size)": (
        lambda e: ArenaOfPools(arena_size=4096, max_bytes=4095),
        (InvalidArgument,),
    ),
    "ArenaOfPools(leak_detection='loud')": (
        lambda e: ArenaOfPools(leak_detection="loud"),  # type: ignore[arg-type]
        (InvalidArgument,),
    ),
    "ArenaOfPools(leak_detection=5)": (
        lambda e: ArenaOfPools(leak_detection=5),  # type: ignore[arg-type]
        TYPED,
    ),
    "ArenaOfPools(buffer_pool=5)": (
        lambda e: ArenaOfPools(buffer_pool=5),  # type: ignore[arg-type]
        (TypeError,),
    ),
    "ArenaOfPools(buffer_pool=bound)": (
        lambda e: ArenaOfPools(buffer_pool=e.aop._buffers),
        (InvalidArgument,),
    ),
    "BufferPool(min_size=0)": (lambda e: BufferPool(min_size=0), (InvalidArgument,)),
    "BufferPool(max_size<min_size)": (
        lambda e: BufferPool(min_size=1024, max_size=512),
        (InvalidArgument,),
    ),
    "ObjectPool(5)": (lambda e: ObjectPool(5), (TypeError,)),  # type: ignore[arg-type]
    "ObjectPool(reset=5)": (
        lambda e: ObjectPool(list, reset=5),  # type: ignore[arg-type]
        (TypeError,),
    ),
    "ObjectPool(arena=5)": (
        lambda e: ObjectPool(list, arena=5),  # type: ignore[arg-type]
        (TypeError,),
    ),
    # arenas
    "Arena.new(5)": (lambda e: e.arena.new(5), (TypeError,)),  # type: ignore[arg-type]
    "Arena.new(c_int32, 'x')": (_ctypes_new_bad_args, (TypeError,)),
    "Arena.call_on_reset(5)": (
        lambda e: e.arena.call_on_reset(5),  # type: ignore[arg-type]
        (TypeError,),
    ),
    # buffers
    "Buffer.write(None)": (lambda e: e.buffer.write(None), (TypeError,)),  # type: ignore[arg-type]
    "Buffer.write(5)": (lambda e: e.buffer.write(5), (TypeError,)),  # type: ignore[arg-type]
    "Buffer.write('str')": (lambda e: e.buffer.write("str"), (TypeError,)),  # type: ignore[arg-type]
    "Buffer.write(object())": (
        lambda e: e.buffer.write(object()),  # type: ignore[arg-type]
        (TypeError,),
    ),
    "Buffer.write_str(b'x')": (
        lambda e: e.buffer.write_str(b"x"),  # type: ignore[arg-type]
        (TypeError,),
    ),
    "Buffer.write_str(5)": (lambda e: e.buffer.write_str(5), (TypeError,)),  # type: ignore[arg-type]
    "Buffer.commit(past capacity)": (
        lambda e: e.buffer.commit(e.buffer.capacity + 1),
        (InvalidArgument,),
    ),
    # giving back the wrong thing
    **{
        f"return_arena({name})": (
            _returns_arena(value),
            (TypeError,),
        )
        for name, value in [
            ("None", None),
            ("5", 5),
            ("'arena'", "arena"),
            ("bytearray", bytearray(16)),
            ("memoryview", memoryview(bytearray(16))),
            ("Buffer", Buffer(16)),
        ]
    },
    **{
        f"return_buffer({name})": (
            _returns_buffer(value),
            (TypeError,),
        )
        for name, value in [
            ("None", None),
            ("5", 5),
            ("bytes", b"buffer"),
            ("bytearray", bytearray(16)),
            ("memoryview", memoryview(bytearray(16))),
            ("Arena", Arena(16)),
        ]
    },
    "return_arena(its buffer)": (lambda e: e.aop.return_arena(e.buffer), (TypeError,)),  # type: ignore[arg-type]
    "return_buffer(its arena)": (lambda e: e.aop.return_buffer(e.arena), (TypeError,)),  # type: ignore[arg-type]
    "return_arena(standalone Arena)": (lambda e: e.aop.return_arena(Arena(64)), (ForeignObject,)),
    "return_arena(other pool's)": (
        lambda e: e.aop.return_arena(e.foreign_arena),
        (ForeignObject,),
    ),
    "return_arena(other pool's, returned)": (
        lambda e: e.aop.return_arena(e.foreign_dead_arena),
        (ForeignObject,),
    ),
    "return_arena(returned)": (lambda e: e.aop.return_arena(e.dead_arena), (DoubleRelease,)),
    "return_buffer(standalone Buffer)": (
        lambda e: e.aop.return_buffer(Buffer(64)),
        (ForeignObject,),
    ),
    "return_buffer(other pool's)": (
        lambda e: e.aop.return_buffer(e.foreign_buffer),
        (ForeignObject,),
    ),
    "return_buffer(returned)": (lambda e: e.aop.return_buffer(e.dead_buffer), (DoubleRelease,)),
    "BufferPool.put(pool's buffer)": (lambda e: e.bpool.put(e.buffer), (ForeignObject,)),
    "BufferPool.put(5)": (lambda e: e.bpool.put(5), (TypeError,)),  # type: ignore[arg-type]
    "ObjectPool.put(foreign)": (lambda e: e.opool.put([1]), (ForeignObject,)),
    "return_arena(to another, closed, pool)": (
        lambda e: e.closed.return_arena(e.arena),
        (ForeignObject,),
    ),
    # use after return
    "dead Arena.alloc": (lambda e: e.dead_arena.alloc(1), (ArenaClosed,)),
    "dead Arena.try_alloc": (lambda e: e.dead_arena.try_alloc(1), (ArenaClosed,)),
    "dead Arena.new": (lambda e: e.dead_arena.new(ctypes.c_int), (ArenaClosed,)),
    "dead Arena.new(object)": (lambda e: e.dead_arena.new(list), (ArenaClosed,)),
    "dead Arena.reset": (lambda e: e.dead_arena.reset(), (ArenaClosed,)),
    "dead Arena.used": (lambda e: e.dead_arena.used, (ArenaClosed,)),
    "dead Arena.available": (lambda e: e.dead_arena.available, (ArenaClosed,)),
    "dead Arena.call_on_reset": (
        lambda e: e.dead_arena.call_on_reset(lambda: None),
        (ArenaClosed,),
    ),
    "dead Arena: with": (lambda e: _enter(e.dead_arena), (ArenaClosed,)),
    "dead Buffer.write": (lambda e: e.dead_buffer.write(b"x"), (BufferClosed,)),
    "dead Buffer.write_str": (lambda e: e.dead_buffer.write_str("x"), (BufferClosed,)),
    "dead Buffer.reserve": (lambda e: e.dead_buffer.reserve(1), (BufferClosed,)),
    "dead Buffer.commit": (lambda e: e.dead_buffer.commit(0), (BufferClosed,)),
    "dead Buffer.getvalue": (lambda e: e.dead_buffer.getvalue(), (BufferClosed,)),
    "dead Buffer.view": (lambda e: e.dead_buffer.view(), (BufferClosed,)),
    "dead Buffer.clear": (lambda e: e.dead_buffer.clear(), (BufferClosed,)),
    "dead Buffer: len": (lambda e: len(e.dead_buffer), (BufferClosed,)),
    "dead Buffer: with": (lambda e: _enter(e.dead_buffer), (BufferClosed,)),
    # a closed pool
    "closed get_arena": (lambda e: e.closed.get_arena(), (PoolClosed,)),
    "closed get_arena(0)": (lambda e: e.closed.get_arena(0), (PoolClosed,)),
    "closed get_buffer": (lambda e: e.closed.get_buffer(10), (PoolClosed,)),
    "closed arena()": (lambda e: _enter(e.closed.arena()), (PoolClosed,)),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_call_raises_a_typed_error_and_the_pool_survives(env: Env, case: str) -> None:
    call, expected = BAD_CALLS[case]
    with pytest.raises(expected):
        call(env)
    # ``env`` checks at teardown that the pool still adds up and works.


def test_a_scope_entered_twice_is_refused(env: Env) -> None:
    scope = env.aop.arena()
    with scope:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        _enter(scope)


def test_a_second_put_of_a_pooled_object_is_a_double_release(env: Env) -> None:
    obj = env.opool.get()
    env.opool.put(obj)
    with pytest.raises(DoubleRelease):
        env.opool.put(obj)
    a, b = env.opool.get(), env.opool.get()
    assert a is not b, "a double put must not hand one object to two borrowers"


def test_a_failing_reset_hook_does_not_strand_the_arena(env: Env) -> None:
    """A callback given to call_on_reset that raises must not keep the arena lent forever."""
    arena = env.aop.get_arena()

    def hook() -> None:
        raise RuntimeError("hook failed")

    arena.call_on_reset(hook)
    try:
        env.aop.return_arena(arena)
    except RuntimeError:  # reporting the hook's error is fine; stranding the arena is not
        pass
    assert arena.closed, "the arena must be given back even though a hook raised"
    check_pool(env.aop, arenas=1, buffers=1, buffer_bytes=env.buffer.capacity)


_HOOK_REENTERS_POOL = """
import electron
aop = electron.ArenaOfPools(arena_size=4096)
arena = aop.get_arena()
buf = aop.get_buffer(100)
arena.call_on_reset(lambda: aop.return_buffer(buf))  # give the buffer back with the arena
aop.return_arena(arena)
assert aop.statistics().active_buffers == 0
print("returned")
"""


def test_a_reset_hook_may_use_the_pool() -> None:
    """A hook that gives a buffer back (or reads stats) must not deadlock return_arena.

    Run in a child process: if the hook runs under the pool's own (non-reentrant) lock, the
    child hangs and is killed, rather than a thread of this process staying stuck.
    """
    try:
        out = subprocess.run(
            [sys.executable, "-c", _HOOK_REENTERS_POOL],
            capture_output=True,
            text=True,
            timeout=10,
            env=dict(os.environ),
        )
    except subprocess.TimeoutExpired:
        pytest.fail("return_arena deadlocked: a reset hook that calls into the pool hangs")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "returned"


def test_a_huge_finite_timeout_waits_instead_of_failing() -> None:
    """``get_arena(timeout=1e10)`` is 'a very long wait': it must not raise OverflowError
    (threading's TIMEOUT_MAX) and must not leave a dead waiter in the queue."""
    aop = ArenaOfPools(arena_size=ARENA, max_arenas=1)
    held = aop.get_arena()
    timer = threading.Timer(0.2, aop.return_arena, (held,))
    timer.start()
    try:
        arena = aop.get_arena(timeout=1e10)
    except OverflowError as exc:
        timer.join()
        waiting = aop.statistics().waiting
        pytest.fail(f"get_arena(timeout=1e10) raised {exc!r}; {waiting} waiter(s) left queued")
    timer.join()
    aop.return_arena(arena)
    check_pool(aop, arenas=0, buffers=0, buffer_bytes=0)


@pytest.mark.parametrize("timeout", [0, 0.0, -0.0, 1e-9, math.inf, None])
def test_edge_timeouts_are_accepted(env: Env, timeout: float | None) -> None:
    arena = env.aop.get_arena(timeout)
    env.aop.return_arena(arena)
    with env.aop.arena(timeout=timeout) as a:
        a.alloc(1)


def test_commit_never_exposes_an_earlier_loans_bytes() -> None:
    """commit(n) counts bytes as written; bytes nobody wrote in *this* loan must never show.

    A pooled buffer's memory is reused as-is; only reserve() zeroes. A commit past what was
    reserved (or without reserve) would hand the previous request's data to this one.
    """
    aop = ArenaOfPools(arena_size=ARENA)
    first = aop.get_buffer(256)
    first.write(b"previous request's secret " * 9)
    aop.return_buffer(first)
    second = aop.get_buffer(256)
    try:
        second.commit(200)
    except (InvalidArgument, ValueError):
        pass  # refusing a commit past the reserved bytes is fine
    else:
        assert b"secret" not in second.getvalue(), "commit exposed an earlier loan's bytes"
    second.clear()
    second.reserve(10)
    try:
        second.commit(200)  # more than was reserved
    except (InvalidArgument, ValueError):
        pass
    else:
        assert b"secret" not in second.getvalue(), "commit exposed an earlier loan's bytes"
    aop.return_buffer(second)


# -- huge-but-legal sizes on unbudgeted pools: the allocation fails, the books must not --------


def _unbudgeted() -> ArenaOfPools:
    return ArenaOfPools(arena_size=ARENA)


def test_a_failed_huge_buffer_get_leaves_the_books_straight() -> None:
    """Without a budget, get_buffer(2**40) reaches the allocator, which fails (MemoryError).

    The loan never happened, so it must not stay counted as lent (1 TiB "in use" forever,
    which would also block every later request under a max_bytes budget).
    """
    aop = _unbudgeted()
    with pytest.raises(MemoryError):
        aop.get_buffer(MAX_SIZE)
    check_pool(aop, arenas=0, buffers=0, buffer_bytes=0)
    full_cycle(aop)


def test_a_failed_huge_reserve_leaves_the_books_straight() -> None:
    aop = _unbudgeted()
    buf = aop.get_buffer(10)
    with pytest.raises(MemoryError):
        buf.reserve(MAX_SIZE)
    assert len(buf) == 0
    buf.write(b"still works")
    aop.return_buffer(buf)
    check_pool(aop, arenas=0, buffers=0, buffer_bytes=0)


def test_a_failed_huge_arena_leaves_the_books_straight() -> None:
    aop = ArenaOfPools(arena_size=MAX_SIZE, max_arenas=1)
    with pytest.raises(MemoryError):
        aop.get_arena(timeout=0)
    s = aop.statistics()
    assert s.active_arenas == 0, s
    # The budget slot was not lost: the next attempt fails the same way, not PoolExhausted.
    with pytest.raises(MemoryError):
        aop.get_arena(timeout=0)


# -- bad timeouts to the async entry points --------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("1", TypeError),
        (object(), TypeError),
        (math.nan, InvalidArgument),
        (-1.0, InvalidArgument),
    ],
    ids=["str", "object", "nan", "negative"],
)
@pytest.mark.parametrize("budget", ["free", "exhausted"])
async def test_acquire_arena_checks_its_timeout(
    anyio_backend: object, bad: object, expected: type[Exception], budget: str
) -> None:
    """acquire_arena validates ``timeout`` like get_arena does, whether or not it must wait."""
    aop = ArenaOfPools(arena_size=ARENA, max_arenas=1)
    held = aop.get_arena() if budget == "exhausted" else None
    arena: Arena | None = None
    try:
        with pytest.raises(expected):
            arena = await acquire_arena(aop, bad)  # type: ignore[arg-type]
    finally:
        if arena is not None:
            aop.return_arena(arena)
        if held is not None:
            aop.return_arena(held)
    check_pool(aop, arenas=0, buffers=0, buffer_bytes=0)


@pytest.mark.anyio
async def test_async_scope_after_close_and_with_bad_timeouts(anyio_backend: object) -> None:
    aop = ArenaOfPools(arena_size=ARENA, max_arenas=1)
    for bad, expected in ((math.nan, InvalidArgument), ("x", TypeError), (-1, InvalidArgument)):
        with pytest.raises(expected):
            aop.arena(timeout=bad)  # type: ignore[arg-type]
    async with aop.arena(timeout=math.inf) as a:
        a.alloc(8)
        with pytest.raises(PoolExhausted):
            async with aop.arena(timeout=0):
                pass
        with pytest.raises(PoolExhausted):
            async with aop.arena(timeout=0.01):
                pass
    check_pool(aop, arenas=0, buffers=0, buffer_bytes=0)
    aop.close()
    with pytest.raises(PoolClosed):
        async with aop.arena():
            pass


# -- fuzzing ---------------------------------------------------------------------------------

SAFE_INTS = st.one_of(
    st.integers(-(2**70), 1 << 14),  # negative or small enough to really allocate
    st.integers(MAX_SIZE + 1, 2**80),  # out of range: refused before any allocation
)
ANYTHING = st.one_of(
    SAFE_INTS,
    SAFE_INTS.map(Index),
    st.integers(-(2**62), 2**14).map(np.int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.none(),
    st.booleans(),
    st.builds(object),
    st.lists(st.integers(0, 9), max_size=3),
    st.decimals(allow_nan=True),
    st.fractions(),
    st.complex_numbers(),
)
# Entry points where any legal size is safe to try: a capacity or budget refuses it.
BOUNDED_ENTRIES = ("Arena.alloc", "Arena.try_alloc", "ArenaOfPools.get_buffer")
BOUNDED_ANYTHING = st.one_of(ANYTHING, st.integers(0, MAX_SIZE))


def _dispose(result: object, e: Env) -> None:
    lent_buffer = isinstance(result, Buffer) and result._owner is not None
    if lent_buffer or isinstance(result, ArenaOfPools | BufferPool):
        result.close()  # type: ignore[attr-defined]


def _fuzz_one(entry: str, value: object, table: dict[str, Callable[[Env, Any], object]]) -> None:
    with make_env() as e:
        try:
            result = table[entry](e, value)
        except TYPED:
            pass
        else:
            _dispose(result, e)
        e.check()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(entry=st.sampled_from(sorted(SIZE_ENTRIES)), value=ANYTHING)
def test_fuzz_sizes(entry: str, value: object) -> None:
    _fuzz_one(entry, value, SIZE_ENTRIES)


@FUZZ
@given(entry=st.sampled_from(BOUNDED_ENTRIES), value=BOUNDED_ANYTHING)
def test_fuzz_sizes_up_to_the_limit(entry: str, value: object) -> None:
    _fuzz_one(entry, value, SIZE_ENTRIES)


@FUZZ
@given(entry=st.sampled_from(sorted(TIMEOUT_ENTRIES)), value=ANYTHING)
def test_fuzz_timeouts(entry: str, value: object) -> None:
    # A legal timeout lends the arena (there is budget left): _dispose cannot know the scope,
    # so a lent arena is given back here.
    with make_env() as e:
        try:
            result = TIMEOUT_ENTRIES[entry](e, value)
        except TYPED:
            pass
        else:
            if isinstance(result, Arena):
                e.aop.return_arena(result)
            elif isinstance(result, ArenaOfPools):
                result.close()
        e.check()


@FUZZ
@given(value=ANYTHING)
def test_fuzz_give_back(value: object) -> None:
    with make_env() as e:
        for give_back in (e.aop.return_arena, e.aop.return_buffer, e.bpool.put, e.opool.put):
            with pytest.raises(TYPED):
                give_back(value)  # type: ignore[arg-type]
        e.check()


@FUZZ
@given(data=st.one_of(ANYTHING, st.binary(max_size=64), st.text(max_size=16)))
def test_fuzz_buffer_write(data: object) -> None:
    with make_env() as e:
        before = len(e.buffer)
        try:
            n = e.buffer.write(data)  # type: ignore[arg-type]
        except TYPED:
            assert len(e.buffer) == before
        else:
            assert len(e.buffer) == before + n
        e.check()


# -- a state machine mixing valid and invalid calls, with threads ----------------------------

M_ARENA = 1024
M_MAX_ARENAS = 6
M_BUDGET = M_MAX_ARENAS * M_ARENA + 8 * 1024


def _size_class(hint: int) -> int:
    """Four classes per power of two from 256 (256, 320, 384, 448, 512, 640 ...)."""
    if hint <= 256:
        return 256
    step = (1 << ((hint - 1).bit_length() - 1)) >> 2
    return -(-hint // step) * step


class HostileMachine(RuleBasedStateMachine):
    """Valid and invalid operations interleaved; the pool must match the model throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.aop = ArenaOfPools(
            arena_size=M_ARENA,
            pool_size=3,
            max_arenas=M_MAX_ARENAS,
            max_bytes=M_BUDGET,
            trim_interval=None,
        )
        self.other = ArenaOfPools(arena_size=M_ARENA)
        self.held: list[tuple[Arena, memoryview, bytes]] = []
        self.buffers: list[tuple[Buffer, int, bytes]] = []
        self.dead_arenas: list[Arena] = []
        self.dead_buffers: list[Buffer] = []
        self.stamp = 0

    def _lent_bytes(self) -> int:
        return len(self.held) * M_ARENA + sum(cap for _, cap, _ in self.buffers)

    def _arena_fits(self) -> bool:
        return len(self.held) < M_MAX_ARENAS and self._lent_bytes() + M_ARENA <= M_BUDGET

    def _stamp(self) -> bytes:
        self.stamp += 1
        return self.stamp.to_bytes(8, "little") * 4

    @rule()
    def get_arena(self) -> None:
        if self._arena_fits():
            arena = self.aop.get_arena(timeout=0)
            view = arena.alloc(32)
            assert view == bytes(32)
            mark = self._stamp()
            view[:] = mark
            self.held.append((arena, view, mark))
        else:
            with pytest.raises(PoolExhausted):
                self.aop.get_arena(timeout=0)

    @rule(i=st.integers(0, 99))
    @precondition(lambda self: bool(self.held))
    def return_arena(self, i: int) -> None:
        arena, view, mark = self.held.pop(i % len(self.held))
        assert bytes(view) == mark
        self.aop.return_arena(arena)
        self.dead_arenas.append(arena)
        with pytest.raises(ValueError):
            view[0]

    @rule(i=st.integers(0, 99), how=st.sampled_from(["return", "close", "alloc", "reset"]))
    @precondition(lambda self: bool(self.dead_arenas))
    def misuse_dead_arena(self, i: int, how: str) -> None:
        arena = self.dead_arenas[i % len(self.dead_arenas)]
        if how == "return":
            with pytest.raises(DoubleRelease):
                self.aop.return_arena(arena)
        elif how == "close":
            arena.close()  # idempotent: a no-op on a dead arena
        elif how == "alloc":
            with pytest.raises(ArenaClosed):
                arena.alloc(1)
        else:
            with pytest.raises(ArenaClosed):
                arena.reset()

    @rule(value=ANYTHING)
    def give_back_garbage(self, value: object) -> None:
        with pytest.raises(TypeError):
            self.aop.return_arena(value)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            self.aop.return_buffer(value)  # type: ignore[arg-type]

    @rule()
    def give_back_foreign(self) -> None:
        arena = self.other.get_arena()
        buf = self.other.get_buffer(10)
        with pytest.raises(ForeignObject):
            self.aop.return_arena(arena)
        with pytest.raises(ForeignObject):
            self.aop.return_buffer(buf)
        self.other.return_arena(arena)
        self.other.return_buffer(buf)

    @rule(value=ANYTHING)
    def bad_timeout(self, value: object) -> None:
        if value is None or (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and not math.isnan(value)
            and value >= 0
        ):
            return  # a legal timeout: not this rule's business
        with pytest.raises(TYPED):
            self.aop.get_arena(value)  # type: ignore[arg-type]

    @rule(value=SAFE_INTS | ANYTHING, i=st.integers(0, 99))
    @precondition(lambda self: bool(self.held))
    def alloc_anything(self, value: object, i: int) -> None:
        arena = self.held[i % len(self.held)][0]
        try:
            v = arena.try_alloc(value)  # type: ignore[arg-type]
        except TYPED:
            return
        if v is not None:
            assert v == bytes(len(v))
            v[:] = b"\xcc" * len(v)

    @rule(hint=st.integers(0, 3000))
    def get_buffer(self, hint: int) -> None:
        cap = _size_class(hint)
        if self._lent_bytes() + cap <= M_BUDGET:
            buf = self.aop.get_buffer(hint)
            assert buf.capacity == cap
            mark = self._stamp()[: min(hint, 32)]
            buf.write(mark)
            self.buffers.append((buf, cap, mark))
        else:
            with pytest.raises(PoolExhausted):
                self.aop.get_buffer(hint)

    @rule(i=st.integers(0, 99))
    @precondition(lambda self: bool(self.buffers))
    def return_buffer(self, i: int) -> None:
        buf, _, mark = self.buffers.pop(i % len(self.buffers))
        assert buf.getvalue() == mark
        self.aop.return_buffer(buf)
        self.dead_buffers.append(buf)

    @rule(i=st.integers(0, 99))
    @precondition(lambda self: bool(self.dead_buffers))
    def misuse_dead_buffer(self, i: int) -> None:
        buf = self.dead_buffers[i % len(self.dead_buffers)]
        with pytest.raises(DoubleRelease):
            self.aop.return_buffer(buf)
        with pytest.raises(BufferClosed):
            buf.write(b"x")

    @rule(threads=st.integers(2, 4), loops=st.integers(1, 20))
    @precondition(lambda self: self._arena_fits())
    def threads_churn(self, threads: int, loops: int) -> None:
        """Threads take, check and give back arenas (and misuse dead ones) concurrently."""
        aop = self.aop
        dead = list(self.dead_arenas[-8:])
        failures: list[BaseException] = []
        barrier = threading.Barrier(threads)

        def worker(w: int) -> None:
            try:
                barrier.wait()
                mark = bytes([w + 1]) * 32
                for k in range(loops):
                    arena = aop.get_arena(timeout=10)
                    v = arena.alloc(32)
                    assert v == bytes(32), "a fresh arena showed someone else's bytes"
                    v[:] = mark
                    if dead:
                        with pytest.raises(DoubleRelease):
                            aop.return_arena(dead[(w + k) % len(dead)])
                    assert bytes(v) == mark, "another thread wrote into my arena"
                    aop.return_arena(arena)
                    with pytest.raises(DoubleRelease):
                        aop.return_arena(arena)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
        assert not any(t.is_alive() for t in pool), "a worker thread hung"
        assert not failures, failures

    @rule(racers=st.integers(2, 6))
    @precondition(lambda self: bool(self.held))
    def threads_race_to_return(self, racers: int) -> None:
        arena, _, _ = self.held.pop()
        wins: list[int] = []
        doubles: list[int] = []
        barrier = threading.Barrier(racers)

        def racer() -> None:
            barrier.wait()
            try:
                self.aop.return_arena(arena)
            except DoubleRelease:
                doubles.append(1)
            else:
                wins.append(1)

        pool = [threading.Thread(target=racer) for _ in range(racers)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
        assert len(wins) == 1, f"{len(wins)} threads gave the same arena back"
        assert len(doubles) == racers - 1
        self.dead_arenas.append(arena)

    @invariant()
    def books_match_the_model(self) -> None:
        s = self.aop.statistics()
        assert s.active_arenas == len(self.held), s
        assert s.active_buffers == len(self.buffers), s
        assert s.bytes_in_use == self._lent_bytes(), s
        assert s.bytes_reserved >= s.bytes_in_use
        assert s.waiting == 0
        assert s.leaks_detected == 0
        assert s.pooled_arenas <= 3
        for _, view, mark in self.held:
            assert bytes(view) == mark, "a held arena's bytes changed under it"

    def teardown(self) -> None:
        for arena, _, _ in self.held:
            self.aop.return_arena(arena)
        for buf, _, _ in self.buffers:
            self.aop.return_buffer(buf)
        self.held.clear()
        self.buffers.clear()
        check_pool(self.aop, arenas=0, buffers=0, buffer_bytes=0)
        full_cycle(self.aop)
        self.aop.close()
        self.other.close()


TestHostileMachine = HostileMachine.TestCase
TestHostileMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_a_timeout_beyond_any_float_means_forever() -> None:
    # 10**400 has no float: it is a (very) long wait, not an OverflowError.
    with ArenaOfPools(arena_size=4096, trim_interval=10**400) as aop:
        aop.return_arena(aop.get_arena(10**400))
        with aop.arena(timeout=10**400) as arena:
            arena.alloc(1)
        assert aop.statistics().active_arenas == 0


@pytest.mark.parametrize("bound", [2**70, -(2**70), 2**63, -(2**63) - 1, 0])
@pytest.mark.parametrize("method", ["find", "count", "startswith", "endswith"])
def test_search_bounds_of_any_size_answer_as_bytes_does(method: str, bound: int) -> None:
    buf = Buffer(16)
    buf.write(b"abcabc")
    for start, end in [(bound, None), (0, bound), (bound, bound), (None, bound)]:
        want = getattr(b"abcabc", method)(b"b", start, end)
        assert getattr(buf, method)(b"b", start, end) == want, (start, end)
