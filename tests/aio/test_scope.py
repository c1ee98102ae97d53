"""ArenaScope: current_arena inside and outside scopes, nesting, single use, timeouts, threads.

Every async test runs on asyncio, asyncio+uvloop and trio (the ``anyio_backend`` fixture).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
from collections.abc import Callable

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from electron import Arena, ArenaClosed, ArenaOfPools, PoolClosed, PoolExhausted
from electron.aio import ArenaScope, acquire_arena, current_arena
from tests.support import JOIN, eventually

pytestmark = pytest.mark.anyio

def test_current_arena_outside_any_scope_raises_lookup_error() -> None:
    with pytest.raises(LookupError, match="no current arena"):
        current_arena()


async def test_current_arena_outside_any_scope_raises_lookup_error_in_a_task() -> None:
    with pytest.raises(LookupError):
        current_arena()


async def test_scope_lends_the_current_arena_and_takes_it_back(aop: ArenaOfPools) -> None:
    async with aop.arena() as arena:
        assert isinstance(arena, Arena)
        assert current_arena() is arena
        arena.alloc(100)
        assert aop.statistics().active_arenas == 1
    assert arena.closed
    assert aop.statistics().active_arenas == 0
    with pytest.raises(LookupError):
        current_arena()


async def test_scope_returns_the_arena_when_the_body_raises(aop: ArenaOfPools) -> None:
    with pytest.raises(KeyError):
        async with aop.arena() as arena:
            raise KeyError("boom")
    assert arena.closed
    assert aop.statistics().active_arenas == 0
    with pytest.raises(LookupError):
        current_arena()


async def test_nested_scopes_get_their_own_arena_and_restore_the_outer(
    aop: ArenaOfPools,
) -> None:
    async with aop.arena() as outer:
        async with aop.arena() as inner:
            assert inner is not outer
            assert current_arena() is inner
            async with aop.arena() as innermost:
                assert current_arena() is innermost
            assert innermost.closed
            assert current_arena() is inner
        assert inner.closed
        assert not outer.closed
        assert current_arena() is outer
        with pytest.raises(ValueError, match="inner failed"):
            async with aop.arena():
                raise ValueError("inner failed")
        assert current_arena() is outer
        assert aop.statistics().active_arenas == 1
    with pytest.raises(LookupError):
        current_arena()


async def test_a_scope_can_be_entered_only_once(aop: ArenaOfPools) -> None:
    scope = aop.arena()
    assert isinstance(scope, ArenaScope)
    async with scope:
        with pytest.raises(RuntimeError, match="only once"):
            await scope.__aenter__()
    with pytest.raises(RuntimeError, match="only once"):
        async with scope:
            pass
    with pytest.raises(RuntimeError, match="only once"), scope:
        pass
    assert aop.statistics().active_arenas == 0


async def test_a_scope_whose_entry_failed_cannot_be_reused() -> None:
    with ArenaOfPools(arena_size=4096, max_arenas=1) as aop:
        held = aop.get_arena()
        scope = aop.arena(timeout=0)
        with pytest.raises(PoolExhausted):
            await scope.__aenter__()
        aop.return_arena(held)
        with pytest.raises(RuntimeError, match="only once"):
            await scope.__aenter__()
        assert aop.statistics().active_arenas == 0


async def test_leaving_a_scope_never_suspends(aop: ArenaOfPools) -> None:
    # No await point in __aexit__ means no cancellation can land between the body's end
    # and the arena's return: what it returns must finish on its first step.
    scope = aop.arena()
    arena = await scope.__aenter__()
    exit_coro = scope.__aexit__(None, None, None)
    with pytest.raises(StopIteration):
        exit_coro.send(None)
    assert arena.closed
    assert aop.statistics().active_arenas == 0


async def test_closing_the_arena_inside_the_scope_is_allowed(aop: ArenaOfPools) -> None:
    async with aop.arena() as arena:
        arena.close()
        assert aop.statistics().active_arenas == 0
        with pytest.raises(ArenaClosed):
            arena.alloc(1)
    assert aop.statistics().active_arenas == 0


async def test_on_the_class_aenter_and_aexit_behave_as_methods(aop: ArenaOfPools) -> None:
    # contextlib.AsyncExitStack looks the two up on the class and passes the scope first.
    scope = aop.arena()
    arena = await ArenaScope.__aenter__(scope)
    assert current_arena() is arena
    await ArenaScope.__aexit__(scope, None, None, None)
    assert arena.closed
    async with contextlib.AsyncExitStack() as stack:
        arena = await stack.enter_async_context(aop.arena())
        assert current_arena() is arena
        assert aop.statistics().active_arenas == 1
    assert arena.closed
    assert aop.statistics().active_arenas == 0


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy])
async def test_a_scope_cannot_be_copied(
    aop: ArenaOfPools, copier: Callable[[object], object]
) -> None:
    # A copy made inside would leave with the same arena and context token: a second return.
    scope = aop.arena()
    with pytest.raises(TypeError, match="cannot be copied"):
        copier(scope)
    async with scope as arena:
        with pytest.raises(TypeError, match="cannot be copied"):
            copier(scope)
        assert current_arena() is arena
    assert aop.statistics().active_arenas == 0


async def test_pool_exhausted_after_the_timeout() -> None:
    with ArenaOfPools(arena_size=4096, max_arenas=1) as aop:
        async with aop.arena():
            with pytest.raises(PoolExhausted) as info:
                async with aop.arena(timeout=0.02):
                    pytest.fail("the budget allows one arena only")
            assert info.value.timeout == pytest.approx(0.02)
            assert isinstance(info.value, TimeoutError)
            stats = aop.statistics()
            assert stats.waiting == 0
            assert stats.wait_timeouts == 1
            with pytest.raises(PoolExhausted):
                async with aop.arena(timeout=0):
                    pytest.fail("timeout=0 must not wait")
            assert aop.statistics().waits == 1  # timeout=0 never queued
        assert aop.statistics().active_arenas == 0
        async with aop.arena(timeout=0) as arena:
            assert current_arena() is arena


async def test_a_waiter_gets_pool_closed_when_the_pool_closes() -> None:
    aop = ArenaOfPools(arena_size=4096, max_arenas=1)
    held = aop.get_arena()
    errors: list[BaseException] = []

    async def waiter() -> None:
        try:
            async with aop.arena():
                pytest.fail("the pool closed before an arena was free")
        except PoolClosed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await eventually(lambda: aop.statistics().waiting == 1, "the waiter to queue")
        aop.close()
    assert len(errors) == 1
    aop.return_arena(held)
    assert aop.statistics().active_arenas == 0
    with pytest.raises(PoolClosed):
        async with aop.arena():
            pass


async def test_acquire_arena_lends_an_arena_the_caller_returns(aop: ArenaOfPools) -> None:
    arena = await acquire_arena(aop, None)
    assert not arena.closed
    with pytest.raises(LookupError):
        current_arena()  # acquire_arena does not make it current; the scope does
    aop.return_arena(arena)
    assert arena.closed


def test_sync_scope_in_threads_is_per_thread() -> None:
    workers = 8
    with ArenaOfPools(arena_size=4096, max_arenas=3) as aop:
        lock = threading.Lock()
        inside = 0
        most = 0
        failures: list[str] = []

        def work(i: int) -> None:
            nonlocal inside, most
            try:
                current_arena()
                failures.append(f"thread {i} saw an arena outside any scope")
            except LookupError:
                pass
            for _ in range(50):
                with aop.arena(timeout=JOIN) as arena:
                    with lock:
                        inside += 1
                        most = max(most, inside)
                    if current_arena() is not arena:
                        failures.append(f"thread {i}: current_arena is not its own")
                    arena.alloc(64)[:] = bytes([i]) * 64
                    with lock:
                        inside -= 1
                if not arena.closed:
                    failures.append(f"thread {i}: the arena was not returned")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN)
        assert not any(t.is_alive() for t in threads)
        assert failures == []
        assert 1 <= most <= 3
        assert aop.statistics().active_arenas == 0


def test_sync_scopes_nest_on_a_thread(aop: ArenaOfPools) -> None:
    with aop.arena() as outer:
        with aop.arena() as inner:
            assert current_arena() is inner
        assert current_arena() is outer
    with pytest.raises(LookupError):
        current_arena()


def test_sync_scope_raises_pool_exhausted_after_the_timeout() -> None:
    with ArenaOfPools(arena_size=4096, max_arenas=1) as aop:
        with aop.arena(), pytest.raises(PoolExhausted), aop.arena(timeout=0.01):
            pytest.fail("the budget allows one arena only")
        assert aop.statistics().active_arenas == 0


def test_leaving_in_another_context_still_returns_the_arena(aop: ArenaOfPools) -> None:
    scope = aop.arena()
    ctx = contextvars.copy_context()
    arena = ctx.run(scope.__enter__)
    assert ctx.run(current_arena) is arena
    scope.__exit__(None, None, None)  # here, not in ctx: nothing to restore, arena back
    assert arena.closed
    assert aop.statistics().active_arenas == 0
    with pytest.raises(LookupError):
        current_arena()


# A random sequence of nested enters and exits (some exits by exception) checked against a
# stack: the current arena is always the top of the stack, each level has its own arena,
# and the pool lends exactly one arena per level.
_STEPS = st.lists(st.sampled_from(["enter", "exit", "raise"]), max_size=30)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_STEPS)
async def test_nesting_matches_a_stack_model(steps: list[str]) -> None:
    aop = ArenaOfPools(arena_size=1024)

    class Unwind(Exception):
        pass

    async def level(stack: list[Arena], remaining: list[str]) -> None:
        while remaining:
            step = remaining.pop(0)
            if step == "enter":
                async with aop.arena() as arena:
                    assert arena not in stack
                    stack.append(arena)
                    assert current_arena() is arena
                    assert aop.statistics().active_arenas == len(stack)
                    try:
                        await level(stack, remaining)
                    finally:
                        stack.pop()
                assert arena.closed
                if stack:
                    assert current_arena() is stack[-1]
                else:
                    with pytest.raises(LookupError):
                        current_arena()
                assert aop.statistics().active_arenas == len(stack)
            elif stack:
                await anyio.lowlevel.checkpoint()
                if step == "raise":
                    raise Unwind
                return

    try:
        await level([], list(steps))
    except Unwind:
        pass
    with pytest.raises(LookupError):
        current_arena()
    assert aop.statistics().active_arenas == 0
    aop.close()
