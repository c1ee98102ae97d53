"""Scheduler: results and errors through Job handles, per-job arenas, bounds, shutdown.

"No task left behind" is checked by counting the event loop's tasks (anyio's
``get_running_tasks``, which walks trio's task tree too) before and after.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from electron import (
    Arena,
    ArenaClosed,
    ArenaOfPools,
    ElectronError,
    InvalidArgument,
    PoolExhausted,
)
from electron.aio import (
    Job,
    JobCancelled,
    Scheduler,
    SchedulerClosed,
    SchedulerFull,
    SchedulerStatistics,
    current_arena,
)
from tests.support import JOIN

pytestmark = pytest.mark.anyio


def task_count() -> int:
    return len(anyio.get_running_tasks())


async def double(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


async def fail(message: str) -> None:
    await anyio.lowlevel.checkpoint()
    raise ValueError(message)


async def forever() -> None:
    await anyio.sleep_forever()


async def test_jobs_return_their_results_through_the_handles() -> None:
    before = task_count()
    async with Scheduler(3) as scheduler:
        assert task_count() == before + 3
        jobs = [await scheduler.submit(double, i) for i in range(20)]
        assert all(isinstance(job, Job) for job in jobs)
        assert [await job for job in jobs] == [2 * i for i in range(20)]
        assert await scheduler.run(double, 21) == 42
    assert task_count() == before
    stats = scheduler.statistics()
    assert isinstance(stats, SchedulerStatistics)
    assert (stats.submitted, stats.completed, stats.failed, stats.cancelled) == (21, 21, 0, 0)
    assert (stats.queued, stats.running) == (0, 0)
    assert all(job.done() and not job.cancelled() for job in jobs)
    assert jobs[5].result() == 10
    assert jobs[5].exception() is None
    with pytest.raises(AttributeError):
        stats.completed = 0  # type: ignore[misc]  # frozen


async def test_a_job_error_reaches_only_whoever_awaits_it() -> None:
    async with Scheduler(2) as scheduler:
        bad = await scheduler.submit(fail, "job failed")
        good = await scheduler.submit(double, 4)
        with pytest.raises(ValueError, match="job failed"):
            await bad
        with pytest.raises(ValueError, match="job failed"):
            await bad  # any number of awaiters see it
        assert await good == 8
        assert isinstance(bad.exception(), ValueError)
        with pytest.raises(ValueError, match="job failed"):
            bad.result()
        after = await scheduler.submit(double, 5)  # the scheduler carries on
        assert await after == 10
    stats = scheduler.statistics()
    assert (stats.completed, stats.failed) == (2, 1)


async def test_each_job_runs_in_its_own_arena(aop: ArenaOfPools) -> None:
    holding: dict[int, Arena] = {}
    overlaps: list[int] = []

    async def job(i: int) -> Arena:
        arena = current_arena()
        if any(other is arena for other in holding.values()):
            overlaps.append(i)
        holding[i] = arena
        view = arena.alloc(64)
        view[:] = bytes([i]) * 64
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        assert view.tobytes() == bytes([i]) * 64
        del holding[i]
        return arena

    async with Scheduler(4, aop=aop) as scheduler:
        jobs = [await scheduler.submit(job, i) for i in range(16)]
        arenas = [await j for j in jobs]
        with pytest.raises(LookupError):
            current_arena()  # the submitting task has none
    assert overlaps == []
    assert all(a.closed for a in arenas)
    with pytest.raises(ArenaClosed):
        arenas[0].alloc(1)
    assert aop.statistics().active_arenas == 0


async def test_a_job_without_an_arena_fails_with_pool_exhausted() -> None:
    with ArenaOfPools(arena_size=1024, max_arenas=1) as aop:
        held = aop.get_arena()
        async with Scheduler(1, aop=aop, arena_timeout=0.01) as scheduler:
            job = await scheduler.submit(double, 1)
            with pytest.raises(PoolExhausted):
                await job
        aop.return_arena(held)
        assert aop.statistics().active_arenas == 0


async def test_at_most_workers_jobs_run_at_once() -> None:
    running = most = 0

    async def job() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        running -= 1

    async with Scheduler(3, queue_size=math.inf) as scheduler:
        for _ in range(30):
            scheduler.submit_nowait(job)
    assert most == 3
    assert scheduler.statistics().completed == 30


async def test_a_full_queue_makes_submit_wait_and_submit_nowait_raise() -> None:
    gate = anyio.Event()

    async def blocked() -> str:
        await gate.wait()
        return "done"

    async with Scheduler(1, queue_size=2) as scheduler:
        running = await scheduler.submit(blocked)
        with anyio.fail_after(JOIN):
            while scheduler.statistics().running != 1:
                await anyio.lowlevel.checkpoint()
        queued = [await scheduler.submit(blocked), scheduler.submit_nowait(blocked)]
        with pytest.raises(SchedulerFull) as info:
            scheduler.submit_nowait(blocked)
        assert isinstance(info.value, ElectronError)
        assert isinstance(info.value, anyio.WouldBlock)
        late: list[Job[str]] = []

        async def submit_late() -> None:
            late.append(await scheduler.submit(blocked))

        async with anyio.create_task_group() as tg:
            tg.start_soon(submit_late)
            with anyio.fail_after(JOIN):
                while scheduler.statistics().waiting_submitters != 1:
                    await anyio.lowlevel.checkpoint()
            stats = scheduler.statistics()
            assert (stats.queued, stats.running, stats.queue_size) == (2, 1, 2)
            assert late == []
            gate.set()
        assert [await j for j in [running, *queued, *late]] == ["done"] * 4
    stats = scheduler.statistics()
    assert (stats.submitted, stats.completed, stats.cancelled) == (5, 4, 1)  # 1: refused


async def test_leaving_waits_for_all_work_including_jobs_submitted_by_jobs() -> None:
    finished: list[int] = []
    scheduler = Scheduler(2)

    async def job(depth: int) -> None:
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        if depth < 3:
            await scheduler.submit(job, depth + 1)
            await scheduler.submit(job, depth + 1)
        finished.append(depth)

    before = task_count()
    async with scheduler:
        await scheduler.submit(job, 0)
    assert len(finished) == 1 + 2 + 4 + 8
    assert task_count() == before
    with pytest.raises(SchedulerClosed):
        await scheduler.submit(double, 1)
    with pytest.raises(SchedulerClosed):
        scheduler.submit_nowait(double, 1)


async def test_an_error_in_the_body_cancels_the_jobs_and_propagates_unwrapped(
    aop: ArenaOfPools,
) -> None:
    before = task_count()
    jobs: list[Job[None]] = []
    scheduler = Scheduler(2, aop=aop, queue_size=10)

    async def body() -> None:
        async with scheduler:
            jobs.extend([await scheduler.submit(forever) for _ in range(6)])
            with anyio.fail_after(JOIN):
                while scheduler.statistics().running != 2:
                    await anyio.lowlevel.checkpoint()
            raise KeyError("body failed")

    with pytest.raises(KeyError, match="body failed"):
        await body()
    assert task_count() == before
    assert all(job.cancelled() for job in jobs)
    for job in jobs:
        with pytest.raises(JobCancelled):
            await job
    assert scheduler.statistics().cancelled == 6
    assert aop.statistics().active_arenas == 0


@pytest.mark.parametrize("how", ["fail_after", "move_on_after", "task_group"])
@pytest.mark.parametrize("where", ["body", "exit"])
async def test_cancelling_the_scheduler_leaves_no_task_and_no_arena(
    aop: ArenaOfPools, how: str, where: str
) -> None:
    before = task_count()
    jobs: list[Job[None]] = []
    deadline: list[anyio.CancelScope] = []

    async def host(tg: anyio.abc.TaskGroup | None) -> None:
        async with Scheduler(2, aop=aop) as scheduler:
            jobs.extend([await scheduler.submit(forever) for _ in range(5)])
            with anyio.fail_after(JOIN):
                while scheduler.statistics().running != 2:
                    await anyio.lowlevel.checkpoint()
            if tg is not None:
                tg.cancel_scope.cancel()
            else:
                deadline[0].deadline = anyio.current_time() - 1
            if where == "body":
                await anyio.sleep(JOIN)  # cancelled here; else while waiting for the jobs

    if how == "task_group":
        async with anyio.create_task_group() as tg:
            tg.start_soon(host, tg)
    elif how == "fail_after":

        async def host_with_deadline() -> None:
            with anyio.fail_after(JOIN) as scope:
                deadline.append(scope)
                await host(None)

        with pytest.raises(TimeoutError):
            await host_with_deadline()
    else:
        with anyio.move_on_after(JOIN) as scope:
            deadline.append(scope)
            await host(None)
        assert scope.cancelled_caught
    assert task_count() == before
    assert len(jobs) == 5
    assert all(job.cancelled() for job in jobs)
    assert aop.statistics().active_arenas == 0


async def test_cancelling_a_job_queued_or_running() -> None:
    started = anyio.Event()

    async def slow() -> None:
        started.set()
        await anyio.sleep_forever()

    async with Scheduler(1) as scheduler:
        running = await scheduler.submit(slow)
        queued = await scheduler.submit(double, 1)
        await started.wait()
        assert queued.cancel()
        assert running.cancel()
        with pytest.raises(JobCancelled):
            await queued
        with pytest.raises(JobCancelled):
            await running
        with pytest.raises(JobCancelled):
            running.result()
        assert not running.cancel()  # already finished
        assert await scheduler.run(double, 2) == 4  # the worker is free again
    stats = scheduler.statistics()
    assert (stats.cancelled, stats.completed) == (2, 1)


async def test_a_submitter_cancelled_while_waiting_for_room_cancels_its_job() -> None:
    ran: list[str] = []
    gate = anyio.Event()

    async def job(name: str) -> None:
        await gate.wait()
        ran.append(name)

    async with Scheduler(1, queue_size=0) as scheduler:
        await scheduler.submit(job, "first")  # taken by the worker at once
        with anyio.move_on_after(JOIN) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(scheduler.submit, job, "never")
                with anyio.fail_after(JOIN):
                    while scheduler.statistics().waiting_submitters != 1:
                        await anyio.lowlevel.checkpoint()
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        gate.set()
    assert ran == ["first"]
    assert scheduler.statistics().cancelled == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"workers": 0}, InvalidArgument, "workers"),
        ({"workers": 2**70}, InvalidArgument, "workers"),  # refused, not started until OOM
        ({"workers": 1.5}, TypeError, "workers"),
        ({"workers": True}, TypeError, "workers"),
        ({"workers": 1, "queue_size": -1}, InvalidArgument, "queue_size"),
        ({"workers": 1, "queue_size": 1.5}, InvalidArgument, "queue_size"),
        ({"workers": 1, "queue_size": "8"}, TypeError, "queue_size"),
        ({"workers": 1, "arena_timeout": math.nan}, InvalidArgument, "arena_timeout"),
        ({"workers": 1, "arena_timeout": -1}, InvalidArgument, "arena_timeout"),
        ({"workers": 1, "arena_timeout": "1"}, TypeError, "arena_timeout"),
        ({"workers": 1, "aop": 5}, TypeError, "aop"),
    ],
)
def test_bad_arguments_are_refused_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Scheduler(**kwargs)


async def test_misuse_is_refused() -> None:
    scheduler = Scheduler(1)
    with pytest.raises(SchedulerClosed):
        await scheduler.submit(double, 1)
    async with scheduler:
        with pytest.raises(RuntimeError, match="only once"):
            await scheduler.__aenter__()
        job = await scheduler.submit(double, 1)
        if not job.done():
            with pytest.raises(RuntimeError, match="not finished"):
                job.result()
        assert await job == 2
    with pytest.raises(RuntimeError, match="only once"):
        async with scheduler:
            pass


async def test_keyword_arguments_go_through_functools_partial() -> None:
    async def job(a: int, *, b: int) -> int:
        await anyio.lowlevel.checkpoint()
        return a - b

    async with Scheduler(1) as scheduler:
        assert await scheduler.run(functools.partial(job, b=3), 10) == 7


_OUTCOMES = st.lists(st.one_of(st.integers(-100, 100), st.none()), max_size=40)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    outcomes=_OUTCOMES,
    workers=st.integers(1, 5),
    queue_size=st.sampled_from([0, 1, 3, math.inf]),
    use_arenas=st.booleans(),
)
async def test_results_match_a_sequential_run(
    outcomes: list[int | None], workers: int, queue_size: float, use_arenas: bool
) -> None:
    # Each outcome is a job: an int is returned doubled, None raises. However the jobs are
    # interleaved, every handle gives what a plain sequential loop would have.
    aop = ArenaOfPools(arena_size=1024, max_arenas=2) if use_arenas else None
    before = task_count()

    async def job(i: int, value: int | None) -> int:
        if aop is not None:
            current_arena().alloc(8)
        for _ in range(i % 3):
            await anyio.lowlevel.checkpoint()
        if value is None:
            raise ValueError(i)
        return 2 * value

    async with Scheduler(workers, aop=aop, queue_size=queue_size) as scheduler:
        jobs = [await scheduler.submit(job, i, v) for i, v in enumerate(outcomes)]
    assert task_count() == before
    for i, (j, v) in enumerate(zip(jobs, outcomes, strict=True)):
        if v is None:
            assert isinstance(j.exception(), ValueError)
            assert j.exception().args == (i,)  # type: ignore[union-attr]
        else:
            assert j.result() == 2 * v
    stats = scheduler.statistics()
    assert stats.failed == outcomes.count(None)
    assert stats.completed + stats.failed == stats.submitted == len(outcomes)
    if aop is not None:
        assert aop.statistics().active_arenas == 0
        aop.close()
