"""ObjectPool: reuse, reset callback, bounds, borrow, misuse, and binding to an arena."""

from __future__ import annotations

import ctypes
import gc
import threading
import weakref

import pytest

from electron import Arena, ArenaClosed, DoubleRelease, ForeignObject, InvalidArgument, ObjectPool


class Conn:
    """A stand-in for an expensive reusable object."""

    def __init__(self) -> None:
        self.used = 0
        self.data: list[int] = []


class Node(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_int64),
        ("value", ctypes.c_double),
        ("payload", ctypes.c_char * 24),
    ]


def test_put_then_get_returns_the_same_object() -> None:
    made: list[Conn] = []

    def factory() -> Conn:
        made.append(Conn())
        return made[-1]

    pool = ObjectPool(factory)
    a = pool.get()
    a.used += 1
    pool.put(a)
    b = pool.get()
    assert b is a
    assert b.used == 1
    assert len(made) == 1
    c = pool.get()  # nothing idle: the factory runs
    assert c is not a
    assert len(made) == 2
    s = pool.statistics()
    assert (s.active, s.pooled, s.created, s.reused) == (2, 0, 2, 1)
    pool.put(b)
    pool.put(c)
    assert len(pool) == 2


def test_reset_callback_runs_on_every_put() -> None:
    seen: list[Conn] = []

    def reset(obj: Conn) -> None:
        seen.append(obj)
        obj.data.clear()

    pool = ObjectPool(Conn, reset=reset)
    a = pool.get()
    a.data.extend([1, 2, 3])
    assert seen == []
    pool.put(a)
    assert seen == [a]
    again = pool.get()
    assert again is a
    assert again.data == []
    assert seen == [a], "reset runs on put, not on get"


def test_max_size_bounds_idle_objects() -> None:
    pool = ObjectPool(Conn, max_size=2)
    objs = [pool.get() for _ in range(4)]
    for o in objs:
        pool.put(o)
    assert len(pool) == 2
    assert pool.statistics().pooled == 2
    got = [pool.get() for _ in range(3)]
    assert sum(any(g is o for o in objs) for g in got) == 2
    assert pool.statistics().created == 5


def test_max_size_zero_keeps_nothing() -> None:
    pool = ObjectPool(Conn, max_size=0)
    a = pool.get()
    pool.put(a)
    assert len(pool) == 0
    assert pool.get() is not a


def test_borrow_gets_and_puts_back() -> None:
    pool = ObjectPool(Conn)
    with pool.borrow() as obj:
        assert isinstance(obj, Conn)
        assert pool.statistics().active == 1
    assert pool.statistics().active == 0
    assert len(pool) == 1
    with pool.borrow() as again:
        assert again is obj


def test_borrow_puts_back_on_error() -> None:
    pool = ObjectPool(Conn)
    with pytest.raises(KeyError), pool.borrow():
        raise KeyError("boom")
    s = pool.statistics()
    assert (s.active, s.pooled) == (0, 1)


def test_put_twice_is_double_release() -> None:
    pool = ObjectPool(Conn)
    a = pool.get()
    pool.put(a)
    with pytest.raises(DoubleRelease):
        pool.put(a)
    assert len(pool) == 1, "a double put must not pool the object twice"
    x, y = pool.get(), pool.get()
    assert x is not y


def test_put_twice_when_the_pool_was_full_is_double_release() -> None:
    # The first put dropped the object (max_size reached); the second put is still a
    # second release of the same object and must say so, not blame another pool.
    pool = ObjectPool(Conn, max_size=1)
    a, b = pool.get(), pool.get()
    pool.put(a)
    pool.put(b)  # dropped: the pool is full
    with pytest.raises(DoubleRelease):
        pool.put(b)


def test_object_not_lent_is_foreign() -> None:
    pool = ObjectPool(Conn)
    with pytest.raises(ForeignObject):
        pool.put(Conn())
    other = ObjectPool(Conn)
    obj = other.get()
    with pytest.raises(ForeignObject):
        pool.put(obj)
    assert len(pool) == 0
    other.put(obj)


def test_discard_forgets_a_lent_object() -> None:
    pool = ObjectPool(Conn)
    a = pool.get()
    pool.discard(a)
    assert pool.statistics().active == 0
    with pytest.raises(ForeignObject):
        pool.put(a)
    assert pool.get() is not a


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        ObjectPool(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        ObjectPool(Conn, max_size=-1)


def test_concurrent_get_put_never_lends_one_object_twice() -> None:
    pool = ObjectPool(Conn, max_size=4)
    lent: set[int] = set()
    lock = threading.Lock()
    errors: list[str] = []
    start = threading.Barrier(6)

    def worker() -> None:
        start.wait()
        for _ in range(500):
            obj = pool.get()
            with lock:
                if id(obj) in lent:
                    errors.append("object lent to two threads at once")
                lent.add(id(obj))
            obj.used += 1
            with lock:
                lent.discard(id(obj))
            pool.put(obj)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = pool.statistics()
    assert s.active == 0
    assert s.pooled <= 4
    assert s.created + s.reused == 6 * 500


# -- bound to an arena ------------------------------------------------------------------------


def test_pool_with_arena_backing_reuses_arena_objects() -> None:
    arena = Arena(4096)
    pool = ObjectPool(lambda: arena.new(Node), arena=arena)
    a = pool.get()
    a.key = 7
    used = arena.used
    assert used >= ctypes.sizeof(Node)
    pool.put(a)
    b = pool.get()
    assert b is a
    assert b.key == 7
    assert arena.used == used, "reuse must not allocate again"
    pool.put(b)
    del a, b


def test_pool_survives_arena_reset() -> None:
    arena = Arena(4096)
    pool = ObjectPool(lambda: arena.new(Node), arena=arena)
    lent = pool.get()
    idle = pool.get()
    lent.key, idle.key = 1, 2
    lent.payload = b"old generation"
    pool.put(idle)
    idle_addr, lent_addr = ctypes.addressof(idle), ctypes.addressof(lent)
    del idle
    arena.reset()
    assert pool.statistics().generation == 1
    assert len(pool) == 0, "idle objects of the old generation are forgotten"
    fresh = pool.get()
    assert fresh is not lent
    assert (fresh.key, fresh.value, fresh.payload) == (0, 0.0, b"")
    assert pool.statistics().created == 3
    # The old object is still referenced here, so its memory was quarantined: writes
    # through it never reach the new generation.
    assert arena.quarantined == 1
    lent.key = 99
    lent.payload = b"scribble"
    assert (fresh.key, fresh.payload) == (0, b"")
    # Putting the old object back is silently dropped, never handed out again.
    pool.put(lent)
    assert len(pool) == 0
    pool.put(fresh)
    got = {ctypes.addressof(pool.get()) for _ in range(3)}
    assert ctypes.addressof(lent) not in got
    assert ctypes.addressof(fresh) in got
    assert idle_addr != lent_addr
    del lent, fresh


def test_arena_reset_drops_the_pools_references_to_old_objects() -> None:
    arena = Arena(1024)
    pool = ObjectPool(lambda: arena.new(Conn), arena=arena)
    obj = pool.get()
    pool.put(obj)
    ref = weakref.ref(obj)
    del obj
    arena.reset()
    gc.collect()
    assert ref() is None, "neither the arena nor the pool may keep an old object alive"
    assert isinstance(pool.get(), Conn)


def test_old_generation_objects_are_dropped_across_several_resets() -> None:
    arena = Arena(1024)
    pool = ObjectPool(lambda: arena.new(Conn), arena=arena)
    old = [pool.get() for _ in range(3)]
    for gen in range(1, 4):
        arena.reset()
        assert pool.statistics().generation == gen
    for o in old:
        pool.put(o)  # silently dropped
    assert len(pool) == 0
    new = pool.get()
    assert all(new is not o for o in old)
    pool.put(new)
    assert pool.get() is new


def test_pool_bound_to_a_closed_arena_fails_cleanly() -> None:
    arena = Arena(1024)
    pool = ObjectPool(lambda: arena.new(Node), arena=arena)
    obj = pool.get()
    pool.put(obj)
    del obj
    arena.close()
    assert len(pool) == 0
    with pytest.raises(ArenaClosed):
        pool.get()
