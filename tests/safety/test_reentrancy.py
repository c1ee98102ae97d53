"""Code that runs inside electron's own methods cannot bring a returned handle back (hazard 7).

A garbage collection can start at any allocation and run finalizers; an argument's
``__index__`` or ``__buffer__`` is user code. Whatever gives an arena or buffer back in the
middle of one of its own methods, the handle stays dead: the method fails with the handle's
closed error (or a released view's ``ValueError``), nothing it hands out reaches the memory
once that is lent again, a second return is :class:`~electron.DoubleRelease`, and the books
balance. The collection tests force one collection at each allocation point in turn.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from electron import (
    Arena,
    ArenaClosed,
    ArenaOfPools,
    Buffer,
    BufferClosed,
    DoubleRelease,
)

CLOSED = (ArenaClosed, BufferClosed, ValueError)  # ValueError: a released memoryview
MARK = 0xAA
MAX_POINTS = 200  # more collection points than any method here has


class _Struct(ctypes.Structure):
    _fields_ = (("a", ctypes.c_uint64), ("b", ctypes.c_uint32))


class _Plain:
    pass


@contextmanager
def collection_number(k: int, give_back: Callable[[], object]) -> Iterator[list[bool]]:
    """Collect at (nearly) every allocation; at the ``k``-th collection, call ``give_back``."""
    fired = [False]
    seen = [0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase != "start" or fired[0]:
            return
        seen[0] += 1
        if seen[0] == k:
            fired[0] = True
            give_back()

    threshold = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(callback)
    gc.set_threshold(1)
    try:
        yield fired
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(callback)


def _outputs(result: object) -> list[memoryview]:
    if isinstance(result, memoryview):
        return [result]
    if isinstance(result, list):
        return [v for v in result if isinstance(v, memoryview)]
    if isinstance(result, ctypes.Structure):
        return [memoryview(result).cast("B")]
    return []


def _unreachable(view: memoryview) -> bool:
    """True when ``view`` no longer shows memory a later loan writes (released or apart)."""
    try:
        data = bytes(view)
    except ValueError:
        return True
    return MARK not in data


def _check_dead_and_apart(aop: ArenaOfPools, handle: Arena | Buffer, out: list[memoryview]) -> None:
    """``handle`` was given back: dead for good, and nothing it gave out aliases a new loan."""
    assert handle.closed
    give_back = aop.return_arena if isinstance(handle, Arena) else aop.return_buffer
    with pytest.raises(DoubleRelease):
        give_back(handle)  # type: ignore[arg-type]
    # The next loans most likely get the same memory: fill it and look through the old views.
    arena = aop.get_arena()
    arena.alloc(arena.available)[:] = bytes([MARK]) * arena.capacity
    buf = aop.get_buffer(4096)
    buf.write(bytes([MARK]) * buf.capacity)
    try:
        assert all(_unreachable(v) for v in out), "a returned handle's view shows a new loan"
        if isinstance(handle, Buffer):
            with pytest.raises(BufferClosed):
                handle.write(b"x")
        else:
            with pytest.raises(ArenaClosed):
                handle.alloc(1)
    finally:
        aop.return_buffer(buf)
        aop.return_arena(arena)
    stats = aop.statistics()
    assert (stats.active_arenas, stats.active_buffers) == (0, 0)
    assert stats.bytes_in_use == 0


def _alloc_then_reset(arena: Arena) -> memoryview:
    view = arena.alloc(64)
    arena.reset()
    return view


ArenaCase = Callable[[Arena], object]
BufferCase = Callable[[Buffer], object]

ARENA_CASES: dict[str, ArenaCase] = {
    "first alloc": lambda a: a.alloc(64),
    "later alloc": lambda a: (a.alloc(16), a.alloc(64))[1],
    "try_alloc": lambda a: a.try_alloc(64),
    "new ctypes": lambda a: a.new(_Struct, 1, 2),
    "new object": lambda a: a.new(_Plain),
    "grow past the first chunk": lambda a: a.alloc(a.capacity + 64),
    "reset": lambda a: _alloc_then_reset(a),
}

BUFFER_CASES: dict[str, BufferCase] = {
    "first write": lambda b: b.write(b"x" * 100),
    "write a bytearray": lambda b: b.write(bytearray(b"x" * 100)),
    "write a view": lambda b: b.write(memoryview(b"x" * 100)),
    "write that grows": lambda b: (b.write(b"x" * 10), b.write(b"y" * 10_000)),
    "write_str": lambda b: b.write_str("é" * 50),
    "view": lambda b: (b.write(b"abc"), b.view())[1],
    "reserve": lambda b: b.reserve(100),
    "reserve that grows": lambda b: b.reserve(10_000),
    "getvalue": lambda b: (b.write(b"abc"), b.getvalue())[1],
    "split": lambda b: (b.write(b"a b c"), b.split())[1],
    "write_json_string": lambda b: b.write_json_string("x" * 100),
}


def _pool(auto: bool = False) -> ArenaOfPools:
    if auto:
        return ArenaOfPools(arena_size="auto", min_arena_size=4096, max_arena_size=1 << 20)
    return ArenaOfPools(arena_size=4096)


def _each_collection_point(
    make: Callable[[ArenaOfPools], Arena | Buffer],
    case: Callable[[Any], object],
    auto: bool = False,
) -> int:
    """Run ``case`` on a new loan once per collection point, giving the loan back there."""
    for k in range(1, MAX_POINTS):
        with _pool(auto) as aop:
            handle = make(aop)
            give_back = handle.close
            result: object = None
            with collection_number(k, give_back) as fired:
                try:
                    result = case(handle)
                except CLOSED:
                    pass
            if not fired[0]:
                if not handle.closed:
                    handle.close()
                return k - 1  # every collection point of the method was tried
            _check_dead_and_apart(aop, handle, _outputs(result))
            del result
    raise AssertionError(f"more than {MAX_POINTS} collections in one call")


@pytest.mark.parametrize("name", ARENA_CASES)
def test_an_arena_given_back_by_a_collection_inside_its_method_stays_dead(name: str) -> None:
    auto = name == "grow past the first chunk"
    _each_collection_point(lambda aop: aop.get_arena(), ARENA_CASES[name], auto)


@pytest.mark.parametrize("name", BUFFER_CASES)
def test_a_buffer_given_back_by_a_collection_inside_its_method_stays_dead(name: str) -> None:
    _each_collection_point(lambda aop: aop.get_buffer(256), BUFFER_CASES[name])


class _IndexGivingBack:
    """An int-like argument whose ``__index__`` gives a handle back first."""

    def __init__(self, give_back: Callable[[], object], value: int) -> None:
        self.give_back = give_back
        self.value = value

    def __index__(self) -> int:
        self.give_back()
        return self.value


INDEX_CASES: dict[str, Callable[[Arena | Buffer, _IndexGivingBack], object]] = {
    "Arena.alloc": lambda h, n: h.alloc(n),  # type: ignore[union-attr]
    "Arena.try_alloc": lambda h, n: h.try_alloc(n),  # type: ignore[union-attr]
    "Buffer.reserve": lambda h, n: h.reserve(n),  # type: ignore[union-attr]
    "Buffer.commit": lambda h, n: (h.reserve(64), h.commit(n)),  # type: ignore[union-attr]
    "Buffer.find": lambda h, n: (h.write(b"abc"), h.find(b"b", n))[1],  # type: ignore[union-attr]
    "Buffer.write_int": lambda h, n: h.write_int(n),  # type: ignore[union-attr]
}


@pytest.mark.parametrize("name", INDEX_CASES)
def test_an_index_argument_that_gives_the_handle_back_leaves_it_dead(name: str) -> None:
    with _pool() as aop:
        handle: Arena | Buffer = aop.get_arena() if name.startswith("Arena") else aop.get_buffer()
        result: object = None
        try:
            result = INDEX_CASES[name](handle, _IndexGivingBack(handle.close, 64))
        except CLOSED:
            pass
        _check_dead_and_apart(aop, handle, _outputs(result))


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is Python 3.12+ (PEP 688)")
@pytest.mark.parametrize("first", [False, True])
def test_a_buffer_argument_that_gives_the_buffer_back_leaves_it_dead(first: bool) -> None:
    with _pool() as aop:
        buf = aop.get_buffer(256)
        if not first:
            buf.write(b"before")

        class GivesBack:
            def __buffer__(self, flags: int) -> memoryview:
                buf.close()
                return memoryview(b"x" * 100)

        with pytest.raises(CLOSED):
            buf.write(GivesBack())
        _check_dead_and_apart(aop, buf, [])
