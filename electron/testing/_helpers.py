"""The helpers behind ``electron.testing``."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._arena_of_pools import ArenaOfPools
from .._leaks import LeakDetection

__all__ = (
    "assert_no_leaks",
    "make_test_pool",
    "measure_throughput",
    "run_concurrent",
    "run_concurrent_tasks",
)


def make_test_pool(
    *,
    arena_size: int = 64 << 10,
    pool_size: int = 100,
    leak_detection: LeakDetection = "paranoid",
    **options: Any,
) -> ArenaOfPools:
    """An :class:`ArenaOfPools` configured for tests: small arenas, paranoid leak detection."""
    return ArenaOfPools(
        arena_size=arena_size, pool_size=pool_size, leak_detection=leak_detection, **options
    )


def assert_no_leaks(aop: ArenaOfPools) -> None:
    """Fail unless every arena and buffer of ``aop`` came back and none was leaked.

    Runs a garbage collection first, so an arena dropped without being returned is found
    (and counted in ``leaks_detected``) rather than merely still active.
    """
    gc.collect()
    stats = aop.statistics()
    problems = []
    if stats.active_arenas:
        problems.append(f"{stats.active_arenas} arena(s) still lent")
    if stats.active_buffers:
        problems.append(f"{stats.active_buffers} buffer(s) still lent")
    if stats.leaks_detected:
        problems.append(f"{stats.leaks_detected} arena(s)/buffer(s) garbage-collected unreturned")
    if problems:
        raise AssertionError(f"electron leak check failed for {aop!r}: " + "; ".join(problems))


def measure_throughput(fn: Callable[[], object], iterations: int = 100_000) -> float:
    """Call ``fn`` ``iterations`` times; return calls per second (wall clock)."""
    if iterations <= 0:
        raise ValueError(f"iterations must be > 0, not {iterations}")
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return iterations / (time.perf_counter() - start)


def run_concurrent(workers: int, fn: Callable[[int, int], object], *, iterations: int = 1) -> None:
    """Run ``fn(worker_id, iteration)`` ``iterations`` times on each of ``workers`` threads.

    All threads start together (a barrier) to maximise contention. Raises an
    :class:`ExceptionGroup` of every failure, after all threads finished.
    """
    if workers <= 0:
        raise ValueError(f"workers must be > 0, not {workers}")
    barrier = threading.Barrier(workers)
    errors: list[Exception] = []

    def body(worker: int) -> None:
        barrier.wait()
        try:
            for i in range(iterations):
                fn(worker, i)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise ExceptionGroup(f"{len(errors)} of {workers} workers failed", errors)


async def run_concurrent_tasks(
    workers: int, fn: Callable[[int, int], Awaitable[object]], *, iterations: int = 1
) -> None:
    """The async twin of :func:`run_concurrent`: ``workers`` tasks in an anyio task group.

    Failures propagate as the task group's :class:`ExceptionGroup`.
    """
    import anyio

    if workers <= 0:
        raise ValueError(f"workers must be > 0, not {workers}")

    async def body(worker: int) -> None:
        for i in range(iterations):
            await fn(worker, i)

    async with anyio.create_task_group() as tg:
        for w in range(workers):
            tg.start_soon(body, w)
