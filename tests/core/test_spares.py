"""Reviving dead handles (``electron._memory.Spares``) on the compiled core.

A loan on the compiled core may hand out a handle object that an earlier loan gave back,
when nothing at all still refers to it. These tests pin that it does happen, that a revived
handle is indistinguishable from a fresh one, and that a handle anything still holds stays
dead for good (``ArenaClosed`` / ``BufferClosed``) and is never lent again. Leak
detection is off here: a handle that carries a trace (where it was taken or given back, for
the errors that name it) is never revived.
"""

from __future__ import annotations

import gc

import pytest

from electron import ArenaClosed, ArenaOfPools, BufferClosed, BufferPool
from electron._memory import REVIVE

pytestmark = pytest.mark.skipif(
    not REVIVE,
    reason="handles are revived only by the compiled core on a GIL build before 3.14 (REVIVE)",
)


def state(handle: object) -> dict[str, object]:
    """Every slot of ``handle``; memory regions by size (their identity is the pool's)."""
    out: dict[str, object] = {}
    for cls in type(handle).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if not hasattr(handle, name):
                out[name] = "<unset>"
                continue
            value = getattr(handle, name)
            if isinstance(value, (bytearray, memoryview)):
                value = ("region", len(value))
            elif isinstance(value, list):
                value = ("list", len(value))
            elif name == "_owner":
                value = ("owner", id(value))
            out[name] = value
    return out


def test_a_dead_arena_nothing_refers_to_is_revived_fresh() -> None:
    with ArenaOfPools(arena_size=4096, leak_detection="off") as aop:
        fresh = aop.get_arena()
        fresh_state = state(fresh)
        aop.return_arena(fresh)

        a = aop.get_arena()
        a.alloc(100)[:] = b"x" * 100
        a_id = id(a)
        aop.return_arena(a)
        del a
        b = aop.get_arena()  # "a" is still the newer spare: not revived yet
        aop.return_arena(b)
        c = aop.get_arena()  # now "a" is the older spare and nothing refers to it
        assert id(c) == a_id, "the unreferenced spare was not revived"
        assert c is not b
        assert not c.closed
        assert state(c) == fresh_state
        aop.return_arena(c)
        assert aop.stats().active_arenas == 0


def test_a_dead_arena_someone_holds_stays_dead() -> None:
    with ArenaOfPools(arena_size=4096, leak_detection="off") as aop:
        held = aop.get_arena()
        aop.return_arena(held)
        later = []
        for _ in range(6):  # pass "held" through both spare slots and out again
            arena = aop.get_arena()
            assert arena is not held
            later.append(arena)
            aop.return_arena(arena)
        assert held.closed
        with pytest.raises(ArenaClosed):
            held.alloc(8)
        gc.collect()
        assert all(a is not held for a in later)
        assert aop.stats().active_arenas == 0


def test_a_dead_buffer_nothing_refers_to_is_revived_fresh() -> None:
    with BufferPool(leak_detection="off") as pool:
        fresh = pool.get(1024)
        fresh_state = state(fresh)
        pool.put(fresh)

        a = pool.get(1024)
        a.write(b"secret")
        a_id = id(a)
        pool.put(a)
        del a
        b = pool.get(1024)
        pool.put(b)
        c = pool.get(1024)
        assert id(c) == a_id, "the unreferenced spare was not revived"
        assert c is not b
        assert not c.closed
        assert len(c) == 0
        assert c.getvalue() == b""
        assert state(c) == fresh_state
        pool.put(c)


def test_a_dead_buffer_someone_holds_stays_dead() -> None:
    with BufferPool(leak_detection="off") as pool:
        held = pool.get(1024)
        pool.put(held)
        for _ in range(6):
            buf = pool.get(1024)
            assert buf is not held
            pool.put(buf)
        assert held.closed
        with pytest.raises(BufferClosed):
            held.write(b"late")
