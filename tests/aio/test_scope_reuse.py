"""Reusing finished scopes (``aop.arena()`` on the compiled core).

``aop.arena()`` hands out the scope object it made last time when nothing but the pool
refers to it any more (the C ``ScopeFactory``, electron/_cscope.c). These tests pin that
this happens, that a reused scope behaves exactly as a new one, and that a scope anything
still holds is never handed out again: it stays single-use for whoever holds it.
"""

from __future__ import annotations

import contextvars
import gc
import sys
import threading

import pytest

from electron import ArenaOfPools
from electron._memory import REVIVE
from electron.aio import current_arena

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not REVIVE,
        reason="scopes are reused only by the compiled core on a GIL build before 3.14 (REVIVE)",
    ),
]


async def test_a_finished_scope_nothing_refers_to_is_reused(aop: ArenaOfPools) -> None:
    scope = aop.arena()
    first = id(scope)
    async with scope as arena:
        arena.alloc(10)
    del scope
    again = aop.arena()
    assert id(again) == first, "the finished, unreferenced scope was not reused"
    assert repr(again).startswith("<ArenaScope fresh")
    async with again as arena:  # single use was reset: it enters like a new scope
        assert current_arena() is arena
        assert aop.stats().active_arenas == 1
    assert arena.closed
    assert aop.stats().active_arenas == 0


async def test_a_held_scope_is_never_handed_out_again(aop: ArenaOfPools) -> None:
    held = aop.arena()
    async with held:
        pass
    other = aop.arena()
    assert other is not held
    with pytest.raises(RuntimeError, match="entered only once"):
        async with held:
            pass
    # Held but never entered: not handed out either, and still usable by its holder.
    fresh = aop.arena()
    assert aop.arena() is not fresh
    async with fresh as arena:
        assert current_arena() is arena


async def test_a_scope_held_while_inside_is_not_reused_by_a_nested_scope(
    aop: ArenaOfPools,
) -> None:
    async with aop.arena() as outer:
        async with aop.arena() as inner:  # the outer scope is held by the interpreter
            assert inner is not outer
            assert current_arena() is inner
        assert current_arena() is outer
    assert aop.stats().active_arenas == 0


async def test_a_scope_whose_exit_is_held_is_never_handed_out_again(aop: ArenaOfPools) -> None:
    # ``scope.__aexit__`` is the scope itself (no bound method): holding it holds the scope,
    # so a stale exit can never leave a later request's scope and take its arena.
    scope = aop.arena()
    stale_exit = scope.__aexit__
    async with scope:
        pass
    del scope
    async with aop.arena() as arena:
        await stale_exit(None, None, None)  # the old scope, finished: does nothing
        arena.alloc(16)  # still lent to this scope
        assert current_arena() is arena
        assert aop.stats().active_arenas == 1
    assert arena.closed
    assert aop.stats().active_arenas == 0


async def test_reusing_a_scope_abandoned_inside_gives_its_arena_back_as_a_leak() -> None:
    # Leak detection off: the leak is counted without a trace (or its ResourceWarning).
    with ArenaOfPools(arena_size=4096, leak_detection="off") as aop:
        scope = aop.arena()
        # Entered (in a context thrown away afterwards, so that nothing but the scope holds
        # the arena) and never left: the arena stays lent.
        contextvars.Context().run(scope.__enter__)
        del scope
        assert aop.stats().active_arenas == 1
        async with aop.arena() as arena:  # reuses the abandoned scope, dropping its arena
            assert current_arena() is arena
        gc.collect()
        aop.trim()  # settles collected leaks
        stats = aop.stats()
        assert stats.active_arenas == 0
        assert stats.leaks_detected == 1


def test_threads_never_share_a_scope() -> None:
    """Threads entering scopes of one pool, switching as often as the interpreter allows:
    a scope one thread is inside is never handed to another."""
    inside: dict[int, int] = {}  # id(scope) -> the thread inside it
    errors: list[str] = []
    lock = threading.Lock()

    def work(aop: ArenaOfPools) -> None:
        me = threading.get_ident()
        for _ in range(2_000):
            scope = aop.arena()
            with scope as arena:
                with lock:
                    other = inside.setdefault(id(scope), me)
                if other != me:
                    errors.append(f"scope {id(scope):#x} handed to two threads at once")
                arena.alloc(8)
                if current_arena() is not arena:
                    errors.append("current_arena() is another thread's arena")
                with lock:
                    del inside[id(scope)]
            del scope

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ArenaOfPools(arena_size=4096) as aop:
            threads = [threading.Thread(target=work, args=(aop,)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads)
            assert aop.stats().active_arenas == 0
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
