"""Cancellation at every await point of a scope never loses an arena.

A scope has three places where a cancellation can land: while it waits for an arena
(enter), anywhere in the body, and around its exit (other context managers awaiting while
the stack unwinds, with the cancellation already pending when the scope's own exit runs).
Each is cancelled by an ``anyio.fail_after`` deadline, a ``move_on_after`` deadline and a
task-group cancellation; afterwards ``active_arenas`` is back to what the test itself holds,
nobody is left waiting, and the next hand-off still works. No real time is involved:
deadlines are moved to the past once the victim is where it should be cancelled.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Literal

import anyio
import pytest
from anyio.abc import TaskGroup

from electron import ArenaOfPools
from electron.aio import current_arena
from tests.support import JOIN, eventually

pytestmark = pytest.mark.anyio

Where = Literal["enter", "body", "exit"]
How = Literal["fail_after", "move_on_after", "task_group"]


async def wait_until_waiting(aop: ArenaOfPools, n: int) -> None:
    await eventually(lambda: aop.statistics().waiting == n, f"{n} waiting")


@pytest.mark.parametrize("how", ["fail_after", "move_on_after", "task_group"])
@pytest.mark.parametrize("where", ["enter", "body", "exit"])
async def test_cancellation_never_loses_an_arena(where: Where, how: How) -> None:
    with ArenaOfPools(arena_size=4096, max_arenas=1) as aop:
        held = aop.get_arena() if where == "enter" else None  # makes the victim wait
        reached = anyio.Event()
        deadlines: list[anyio.CancelScope] = []
        outcome: list[str] = []
        active_after_exit: list[int] = []

        def cancel(tg: TaskGroup) -> None:
            if how == "task_group":
                tg.cancel_scope.cancel()
            else:
                deadlines[0].deadline = anyio.current_time() - 1

        async def body(tg: TaskGroup) -> None:
            if where == "enter":
                async with aop.arena():
                    outcome.append("entered")
            elif where == "body":
                async with aop.arena():
                    reached.set()
                    await anyio.sleep(JOIN)
            else:
                async with AsyncExitStack() as stack:
                    stack.push_async_callback(anyio.sleep, 0)  # awaits after our exit
                    await stack.enter_async_context(aop.arena())
                    stack.push_async_callback(anyio.sleep, JOIN)  # awaits before our exit
                    cancel(tg)  # pending from here on; lands on the next await
                active_after_exit.append(aop.statistics().active_arenas)
            outcome.append("completed")

        async def victim(tg: TaskGroup) -> None:
            try:
                if how == "fail_after":
                    with anyio.fail_after(JOIN) as scope:
                        deadlines.append(scope)
                        await body(tg)
                elif how == "move_on_after":
                    with anyio.move_on_after(JOIN) as scope:
                        deadlines.append(scope)
                        await body(tg)
                    if scope.cancelled_caught:
                        outcome.append("moved on")
                else:
                    await body(tg)
            except TimeoutError:
                outcome.append("timed out")
            finally:
                active_after_exit.append(aop.statistics().active_arenas)

        async with anyio.create_task_group() as tg:
            tg.start_soon(victim, tg)
            if where == "enter":
                await wait_until_waiting(aop, 1)
                cancel(tg)
            elif where == "body":
                with anyio.fail_after(JOIN):
                    await reached.wait()
                cancel(tg)

        expected = {"fail_after": ["timed out"], "move_on_after": ["moved on"], "task_group": []}
        assert outcome == expected[how]
        assert active_after_exit[-1] == (1 if held else 0)
        stats = aop.statistics()
        assert stats.waiting == 0
        if held is not None:
            aop.return_arena(held)  # must not go to the cancelled waiter
        assert aop.statistics().active_arenas == 0
        async with aop.arena(timeout=0) as arena:
            assert current_arena() is arena
        assert aop.statistics().active_arenas == 0


async def test_cancelling_many_waiters_and_holders_at_once() -> None:
    # 30 tasks over a budget of 3: some inside, most waiting, all cancelled together.
    with ArenaOfPools(arena_size=4096, max_arenas=3) as aop:
        inside = 0

        async def task() -> None:
            nonlocal inside
            async with aop.arena():
                inside += 1
                await anyio.sleep(JOIN)

        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(task)
            await wait_until_waiting(aop, 27)
            tg.cancel_scope.cancel()
        assert inside == 3
        stats = aop.statistics()
        assert stats.active_arenas == 0
        assert stats.waiting == 0


@pytest.fixture
def native_asyncio(anyio_backend: tuple[str, dict[str, object]]) -> None:
    """Skip a test that cancels with asyncio's own Task.cancel() on other backends."""
    if anyio_backend[0] != "asyncio":
        pytest.skip("Task.cancel() without a cancel scope is asyncio's (aiohttp's) own API")


@pytest.mark.usefixtures("native_asyncio")
async def test_native_asyncio_task_cancel_never_loses_an_arena() -> None:
    with ArenaOfPools(arena_size=4096, max_arenas=1) as aop:
        reached = asyncio.Event()

        async def in_body() -> None:
            async with aop.arena():
                reached.set()
                await asyncio.sleep(JOIN)

        async def waiting() -> None:
            async with aop.arena():
                pytest.fail("the budget is taken")

        holder = asyncio.create_task(in_body())
        await asyncio.wait_for(reached.wait(), JOIN)
        waiter = asyncio.create_task(waiting())
        await wait_until_waiting(aop, 1)
        waiter.cancel()
        holder.cancel()
        for t in (holder, waiter):
            with pytest.raises(asyncio.CancelledError):
                await t
        assert aop.statistics().active_arenas == 0
        assert aop.statistics().waiting == 0


@pytest.mark.usefixtures("native_asyncio")
async def test_a_waiter_cancelled_after_its_hand_off_passes_the_arena_on() -> None:
    # The arena is handed to the first waiter and, in the same step, the waiter is cancelled:
    # it wakes with the cancellation, holding an arena it never entered a scope with, and
    # must pass it to the next waiter. Only a native Task.cancel() lands there for sure
    # (anyio and trio deliver a cancellation after a pending wake-up); aiohttp uses it.
    with ArenaOfPools(arena_size=4096, max_arenas=1) as aop:
        held = aop.get_arena()
        order: list[str] = []

        async def waiter(name: str) -> None:
            async with aop.arena():
                order.append(name)

        first = asyncio.create_task(waiter("first"))
        await wait_until_waiting(aop, 1)
        second = asyncio.create_task(waiter("second"))
        await wait_until_waiting(aop, 2)
        aop.return_arena(held)  # the first waiter is served: it holds the arena, not yet awake
        assert aop.statistics().waiting == 1
        assert aop.statistics().active_arenas == 1
        first.cancel()  # ... and cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, JOIN)
        assert order == ["second"]
        assert aop.statistics().active_arenas == 0
        assert aop.statistics().waiting == 0
