"""Budgets and fairness: at most max_arenas inside, waiters served first come first served.

On trio, tasks start (and woken tasks resume) in an arbitrary order, so the tests record the
order in which tasks *enqueue* (nothing awaits between the record and the enqueue) and
compare it with the order they are served. Hand-offs are driven one at a time so the order
in which woken tasks get to run cannot blur the order in which they were served.
"""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import electron.aio._wait
from electron import Arena, ArenaOfPools, PoolExhausted
from electron.aio import acquire_arena, current_arena
from tests.support import JOIN, eventually

pytestmark = pytest.mark.anyio

WAKE_DEADLINE = 2.0  # seconds for a thread's return to reach an async waiter (it needs ~ms)


@pytest.fixture
def poll_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiters look at the leak queues once an hour: only a real wake-up ends their wait."""
    monkeypatch.setattr(electron.aio._wait, "_POLL", 3600.0)


async def test_at_most_max_arenas_tasks_are_inside_at_once() -> None:
    n = 4
    with ArenaOfPools(arena_size=4096, max_arenas=n) as aop:
        inside = most = done = 0

        async def task(i: int) -> None:
            nonlocal inside, most, done
            for _ in range(3):
                async with aop.arena() as arena:
                    inside += 1
                    most = max(most, inside)
                    arena.alloc(16)[:] = bytes([i]) * 16
                    for _ in range(i % 3 + 1):
                        await anyio.lowlevel.checkpoint()
                    assert current_arena() is arena
                    inside -= 1
            done += 1

        async with anyio.create_task_group() as tg:
            for i in range(10 * n):
                tg.start_soon(task, i)
        assert done == 10 * n
        assert most == n
        stats = aop.statistics()
        assert stats.active_arenas == 0
        assert stats.waiting == 0
        assert stats.waits > 0


async def serve_one_at_a_time(n: int, tasks: int) -> tuple[list[int], list[int], int]:
    """``tasks`` tasks over a budget of ``n``; returns (enqueue order, service order, most)."""
    enqueued: list[int] = []
    served: list[int] = []
    release = [anyio.Event() for _ in range(tasks)]
    inside = most = 0
    with ArenaOfPools(arena_size=1024, max_arenas=n) as aop:

        async def task(i: int) -> None:
            nonlocal inside, most
            enqueued.append(i)  # no await until the scope has queued (or served) it
            async with aop.arena():
                served.append(i)
                inside += 1
                most = max(most, inside)
                await release[i].wait()
                inside -= 1

        async with anyio.create_task_group() as tg:
            for i in range(tasks):
                tg.start_soon(task, i)
            await eventually(lambda: len(enqueued) == tasks, "every task to enqueue")
            await eventually(lambda: len(served) == min(n, tasks), "the first hand-outs")
            for k in range(tasks):
                # Free one arena, then wait until exactly the next waiter holds it.
                release[served[k]].set()
                want = min(n + k + 1, tasks)
                await eventually(lambda want=want: len(served) == want, "the next hand-off")  # type: ignore[misc]
        assert aop.statistics().active_arenas == 0
    return enqueued, served, most


async def test_waiters_are_served_first_come_first_served() -> None:
    n = 3
    enqueued, served, most = await serve_one_at_a_time(n, 10 * n)
    assert served == enqueued
    assert most == n


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 4), tasks=st.integers(1, 25))
async def test_fifo_holds_for_any_budget_and_crowd(n: int, tasks: int) -> None:
    enqueued, served, most = await serve_one_at_a_time(n, tasks)
    assert served == enqueued
    assert most == min(n, tasks)


@pytest.mark.parametrize("gives_up_by", ["timeout", "cancellation"])
async def test_a_waiter_that_gives_up_does_not_lose_the_next_hand_off(gives_up_by: str) -> None:
    with ArenaOfPools(arena_size=1024, max_arenas=1) as aop:
        held = aop.get_arena()
        gave_up = anyio.Event()
        order: list[str] = []
        w1_scope = anyio.CancelScope()

        async def first() -> None:
            try:
                with w1_scope:
                    async with aop.arena(timeout=0.2 if gives_up_by == "timeout" else None):
                        order.append("first")
            except PoolExhausted:
                order.append("first timed out")
            if w1_scope.cancelled_caught:
                order.append("first cancelled")
            gave_up.set()

        async def second() -> None:
            async with aop.arena():
                order.append("second")

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await eventually(lambda: aop.statistics().waiting == 1, "the first waiter")
            tg.start_soon(second)
            # Counted by ``waits`` (total queued so far): on a slow machine the first
            # waiter's timeout may already have run out by the time the second queues.
            await eventually(lambda: aop.statistics().waits == 2, "the second waiter")
            if gives_up_by == "cancellation":
                w1_scope.cancel()
            with anyio.fail_after(JOIN):
                await gave_up.wait()
            aop.return_arena(held)
        gave_up_as = "first timed out" if gives_up_by == "timeout" else "first cancelled"
        assert order == [gave_up_as, "second"]
        assert aop.statistics().active_arenas == 0
        assert aop.statistics().waiting == 0


async def test_a_waiter_cancelled_in_the_same_step_as_its_hand_off() -> None:
    # The arena is handed to the first waiter and the waiter is cancelled before it runs:
    # it must pass the arena on (or use and return it), never drop it.
    with ArenaOfPools(arena_size=1024, max_arenas=1) as aop:
        held = await acquire_arena(aop, None)
        order: list[str] = []
        w1_scope = anyio.CancelScope()

        async def first() -> None:
            with w1_scope:
                async with aop.arena():
                    order.append("first")
                    await anyio.sleep(JOIN)  # cancelled here on backends that let it in

        async def second() -> None:
            async with aop.arena():
                order.append("second")

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await eventually(lambda: aop.statistics().waiting == 1, "the first waiter")
            tg.start_soon(second)
            await eventually(lambda: aop.statistics().waiting == 2, "the second waiter")
            aop.return_arena(held)  # hands the arena to the first waiter ...
            w1_scope.cancel()  # ... which is cancelled before it gets to run
        assert order[-1] == "second"
        assert aop.statistics().active_arenas == 0
        assert aop.statistics().waiting == 0


@pytest.mark.usefixtures("poll_out_of_reach")
@pytest.mark.parametrize("via", ["anyio.to_thread", "threading.Thread"])
async def test_returning_an_arena_from_another_thread_wakes_an_async_waiter(via: str) -> None:
    # The waiter must be woken by the return itself, through the event loop's thread-safe
    # call: with the leak-queue poll pushed out of reach, a wake-up that went missing (or
    # that set the event from the wrong thread, which no loop notices) fails the deadline.
    with ArenaOfPools(arena_size=1024, max_arenas=1) as aop:
        held = aop.get_arena()
        got: list[Arena] = []
        entered = anyio.Event()
        returned_on: list[int] = []

        async def waiter() -> None:
            async with aop.arena() as arena:
                got.append(arena)
                entered.set()

        def give_back() -> None:
            returned_on.append(threading.get_ident())
            if via == "threading.Thread":
                # Let the event loop go idle in its selector first: a wake-up that only
                # queued a callback without waking the loop would then wait for the deadline.
                time.sleep(0.2)
            aop.return_arena(held)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await eventually(lambda: aop.statistics().waiting == 1, "the waiter")
            if via == "anyio.to_thread":
                await anyio.to_thread.run_sync(give_back)
            else:
                thread = threading.Thread(target=give_back)
                thread.start()
            with anyio.fail_after(WAKE_DEADLINE):
                await entered.wait()  # no polling here: only the wake-up can end this
            if via == "threading.Thread":
                thread.join(JOIN)
        assert len(returned_on) == 1
        assert returned_on[0] != threading.get_ident()
        assert len(got) == 1
        assert aop.statistics().active_arenas == 0


async def test_sync_threads_and_async_tasks_share_one_fifo_queue() -> None:
    with ArenaOfPools(arena_size=1024, max_arenas=1) as aop:
        held = aop.get_arena()
        order: list[str] = []
        release = {name: threading.Event() for name in ("task1", "thread", "task2")}

        async def task(name: str) -> None:
            async with aop.arena():
                order.append(name)
                await anyio.to_thread.run_sync(release[name].wait, JOIN)

        def thread_body() -> None:
            with aop.arena(timeout=JOIN):
                order.append("thread")
                release["thread"].wait(JOIN)

        thread = threading.Thread(target=thread_body)
        async with anyio.create_task_group() as tg:
            tg.start_soon(task, "task1")
            await eventually(lambda: aop.statistics().waiting == 1, "task1 to queue")
            thread.start()
            await eventually(lambda: aop.statistics().waiting == 2, "the thread to queue")
            tg.start_soon(task, "task2")
            await eventually(lambda: aop.statistics().waiting == 3, "task2 to queue")
            aop.return_arena(held)
            for k, name in enumerate(("task1", "thread", "task2")):
                await eventually(lambda k=k: len(order) == k + 1, f"{name} to be served")  # type: ignore[misc]
                release[name].set()
        thread.join(JOIN)
        assert order == ["task1", "thread", "task2"]
        assert aop.statistics().active_arenas == 0


async def test_a_waiter_looks_at_the_leak_queues_less_and_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A waiter wakes now and then to settle returns that finalizers queued; the interval
    # doubles up to a ceiling, so that many tasks queued on an exhausted pool (an overloaded
    # server) do not keep the event loop busy waking them.
    monkeypatch.setattr(electron.aio._wait, "_POLL", 0.01)
    monkeypatch.setattr(electron.aio._wait, "_POLL_MAX", 0.08)
    steps: list[float] = []
    move_on_after = anyio.move_on_after

    def counting(delay: float, shield: bool = False) -> anyio.CancelScope:
        if delay < 1:  # the waiter's steps, not the test helpers' own JOIN bounds
            steps.append(round(delay, 6))
        return move_on_after(delay, shield)

    with ArenaOfPools(arena_size=1024, max_arenas=1) as aop:
        held = aop.get_arena()
        async with anyio.create_task_group() as tg:
            monkeypatch.setattr(anyio, "move_on_after", counting)
            tg.start_soon(acquire_and_return, aop)
            await eventually(lambda: len(steps) >= 7, "the waiter's seventh look")
            aop.return_arena(held)
        assert steps[:4] == [0.01, 0.02, 0.04, 0.08]
        assert set(steps[4:]) == {0.08}
        assert aop.statistics().active_arenas == 0


async def acquire_and_return(aop: ArenaOfPools) -> None:
    async with aop.arena():
        pass


@pytest.mark.usefixtures("poll_out_of_reach")
async def test_a_task_waiting_on_the_byte_budget_is_woken_by_a_buffer_return() -> None:
    # max_bytes counts buffers too: a task can wait for an arena because buffers hold the
    # bytes, and giving one back must wake it (the poll is out of reach: no second chance).
    with ArenaOfPools(arena_size=1024, max_bytes=2048) as aop:
        first = aop.get_arena()
        buf = aop.get_buffer(1024)
        entered = anyio.Event()

        async def waiter() -> None:
            async with aop.arena():
                entered.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await eventually(lambda: aop.statistics().waiting == 1, "the waiter")
            assert not entered.is_set()
            aop.return_buffer(buf)
            with anyio.fail_after(WAKE_DEADLINE):
                await entered.wait()
        aop.return_arena(first)
        assert aop.statistics().active_arenas == 0
        assert aop.statistics().waiting == 0
