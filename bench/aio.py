"""The seed loop written with ``async with aop.arena()``, on uvloop, asyncio and trio.

    python -m bench.aio [--quick] [--json FILE] [--repeat N]

Each iteration of the seed loop (issue 4) enters a scope, makes a small request context in
the arena with ``new`` (the slotted class of ``bench.micro``'s seed loop), takes a 1 KiB
buffer, writes to it, and gives both back (the buffer by hand, the arena by leaving the
scope). Next to it, measured in the same run and on the same event loop:

- the same work with no electron at all (the same class and a ``bytearray``);
- both loops again with a ctypes struct as the context, which ``new`` places in arena
  memory (the plain loop makes a standalone struct);
- the floor: a bare ``async with`` of an empty async context manager (new object each time);
- the same seed loop with the synchronous ``get_arena``/``return_arena`` inside the
  coroutine (what the core costs without the aio layer);
- the seed loop and an empty scope with ``ArenaScope(aop)`` built directly, bypassing the
  ``aop.arena()`` method (its own cost shows as the difference);
- an empty scope (``async with aop.arena(): pass``) and an empty get/return pair.

Each event loop is started by its own runner (``uvloop.run``, ``asyncio.run``, ``trio.run``),
as an application runs it; ``uvloop-anyio`` runs the uvloop cases again under ``anyio.run``,
whose context holds one more variable (see :data:`BACKENDS`). The target (issue 4) applies
to ``uvloop``. Loops run inside one event loop run (no loop start-up in the figures); the
cases take turns and each keeps its fastest of N runs, timed by this thread's CPU clock by
default (``--clock wall`` for the wall clock). Reported: scopes/s, ratios against the
no-electron loop and the floor, and the extra nanoseconds per scope over the floor and over
the core alone.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import anyio

import electron
from electron.aio import ArenaScope

from ._harness import (
    Result,
    add_common_args,
    interpreter_line,
    print_table,
    ratio_vs,
    write_json,
)
from .micro import Context

SCOPE_TARGET = 1_000_000  # scopes/s of the seed loop on uvloop (issue 4)
PAYLOAD = b"response data"

AsyncLoop = Callable[[int], Awaitable[None]]
T = TypeVar("T")


class CContext(ctypes.Structure):
    """A request context as a ctypes struct, placed in arena memory by ``Arena.new``."""

    _fields_ = (("request_id", ctypes.c_int64), ("flags", ctypes.c_int32))


class Empty:
    """The floor: an async context manager that does nothing."""

    __slots__ = ()

    async def __aenter__(self) -> Empty:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _cases(aop: electron.ArenaOfPools) -> dict[str, AsyncLoop]:
    arena_scope = aop.arena
    get_arena, return_arena = aop.get_arena, aop.return_arena
    get_buffer, return_buffer = aop.get_buffer, aop.return_buffer

    def seed_scope_of(ctx_class: type[Any]) -> AsyncLoop:
        async def seed_scope(n: int) -> None:
            for i in range(n):
                async with arena_scope() as arena:
                    ctx = arena.new(ctx_class)
                    ctx.request_id = i
                    buf = get_buffer(1024)
                    buf.write(PAYLOAD)
                    return_buffer(buf)
                    del ctx  # a live ctypes object pins arena memory (it would be quarantined)

        return seed_scope

    def seed_plain_of(ctx_class: type[Any]) -> AsyncLoop:
        async def seed_plain(n: int) -> None:
            for i in range(n):
                ctx = ctx_class()
                ctx.request_id = i
                buf = bytearray(1024)
                memoryview(buf)[: len(PAYLOAD)] = PAYLOAD

        return seed_plain

    async def seed_scope_direct(n: int) -> None:
        for i in range(n):
            async with ArenaScope(aop) as arena:
                ctx = arena.new(Context)
                ctx.request_id = i
                buf = get_buffer(1024)
                buf.write(PAYLOAD)
                return_buffer(buf)

    async def seed_sync(n: int) -> None:
        for i in range(n):
            arena = get_arena()
            ctx = arena.new(Context)
            ctx.request_id = i
            buf = get_buffer(1024)
            buf.write(PAYLOAD)
            return_buffer(buf)
            return_arena(arena)

    async def floor(n: int) -> None:
        for _ in range(n):
            async with Empty():
                pass

    async def empty_scope(n: int) -> None:
        for _ in range(n):
            async with arena_scope():
                pass

    async def empty_scope_direct(n: int) -> None:
        for _ in range(n):
            async with ArenaScope(aop):
                pass

    async def empty_sync(n: int) -> None:
        for _ in range(n):
            return_arena(get_arena())

    return {
        "seed loop: async with aop.arena()": seed_scope_of(Context),
        "seed loop: async with ArenaScope(aop)": seed_scope_direct,
        "seed loop: get/return in a coroutine": seed_sync,
        "seed loop: no electron": seed_plain_of(Context),
        "seed loop, ctypes ctx: async with aop.arena()": seed_scope_of(CContext),
        "seed loop, ctypes ctx: no electron": seed_plain_of(CContext),
        "floor: async with Empty()": floor,
        "empty: async with aop.arena()": empty_scope,
        "empty: async with ArenaScope(aop)": empty_scope_direct,
        "empty: get_arena/return_arena": empty_sync,
    }


CLOCKS: dict[str, Callable[[], int]] = {
    # CPU time of this thread: a shared machine's other processes do not inflate it, and
    # these loops never block, so on an idle machine it equals the wall clock.
    "cpu": time.thread_time_ns,
    "wall": time.perf_counter_ns,
}


async def _time_cases(
    cases: dict[str, AsyncLoop], n: int, repeat: int, clock: Callable[[], int]
) -> dict[str, float]:
    """Nanoseconds per iteration of each case, the minimum over ``repeat`` runs.

    The cases take turns (round robin) so that a burst of load elsewhere on the machine
    hits all of them alike instead of one case's every run.
    """
    for fn in cases.values():
        await fn(max(1, n // 10))  # warm up pools, caches and the specialising interpreter
    best = dict.fromkeys(cases, float("inf"))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, fn in cases.items():
                t0 = clock()
                await fn(n)
                best[name] = min(best[name], clock() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: ns / n for name, ns in best.items()}


def _asyncio_run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(_await(fn))


def _uvloop_run(fn: Callable[[], Awaitable[T]]) -> T:
    import uvloop

    return uvloop.run(_await(fn))


def _trio_run(fn: Callable[[], Awaitable[T]]) -> T:
    import trio

    return trio.run(fn)


def _anyio_uvloop_run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": True})


async def _await(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


#: Each event loop started by its own runner, as an application (an aiohttp server) runs it,
#: plus uvloop started by ``anyio.run``. That one differs in the task's context: anyio sets
#: sniffio's context variable, so every set and reset of electron's copies a bigger HAMT
#: node (about 800 instructions per scope more, see ``bench.aio_count``).
BACKENDS: dict[str, tuple[str, Callable[[Callable[[], Awaitable[Any]]], Any]]] = {
    "uvloop": ("uvloop.run()", _uvloop_run),
    "asyncio": ("asyncio.run()", _asyncio_run),
    "trio": ("trio.run()", _trio_run),
    "uvloop-anyio": ("anyio.run(backend='asyncio', use_uvloop=True)", _anyio_uvloop_run),
}


def run_on(backend: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine function ``fn`` with ``backend``'s runner (see :data:`BACKENDS`)."""
    return cast(T, BACKENDS[backend][1](fn))


def _run_backend(label: str, n: int, repeat: int, clock: str) -> list[Result]:
    runner = BACKENDS[label][0]  # how the loop was started, kept with every result

    async def measure_all() -> list[Result]:
        with electron.ArenaOfPools() as aop:
            times = await _time_cases(_cases(aop), n, repeat, CLOCKS[clock])
            out = [
                Result(label, f"{label}: {name}", ns, extra={"clock": clock, "runner": runner})
                for name, ns in times.items()
            ]
            stats = aop.statistics()
            assert stats.active_arenas == 0, "the benchmark leaked an arena"
            # The seed loop must reuse regions, not quarantine them (see ``del ctx``).
            assert stats.quarantine_events == 0, "seed loop arenas were quarantined"
        return out

    return run_on(label, measure_all)


def run(quick: bool, repeat: int | None, backends: list[str], clock: str = "cpu") -> list[Result]:
    """Measure every case on every backend; fill in ratios, extras and the target."""
    reps = repeat or (3 if quick else 10)
    n = 10_000 if quick else 50_000
    results: list[Result] = []
    for label in backends:
        part = _run_backend(label, n, reps, clock)
        results.extend(part)
        by_name = {r.name.split(": ", 1)[1]: r for r in part}
        plain = by_name["seed loop: no electron"]
        sync = by_name["seed loop: get/return in a coroutine"]
        floor = by_name["floor: async with Empty()"]
        core = by_name["empty: get_arena/return_arena"]
        seed = by_name["seed loop: async with aop.arena()"]
        ratio_vs(results, core.name, floor.name)
        ratio_vs(results, sync.name, plain.name)
        ratio_vs(
            results,
            by_name["seed loop, ctypes ctx: async with aop.arena()"].name,
            by_name["seed loop, ctypes ctx: no electron"].name,
        )
        for via in ("aop.arena()", "ArenaScope(aop)"):
            seed_via = by_name[f"seed loop: async with {via}"]
            empty = by_name[f"empty: async with {via}"]
            ratio_vs(results, seed_via.name, plain.name)
            ratio_vs(results, empty.name, floor.name)
            # Per scope, beyond a bare ``async with``: all of it, and what is left after
            # the core's own get/return (the aio layer: scope object, context variable).
            over_floor = empty.ns_per_op - floor.ns_per_op
            empty.extra["ns_over_floor"] = round(over_floor, 1)
            empty.extra["aio_layer_ns"] = round(over_floor - core.ns_per_op, 1)
            # In the seed loop: against the same loop with the sync core, no scope.
            seed_via.extra["ns_over_sync_core"] = round(seed_via.ns_per_op - sync.ns_per_op, 1)
        if label == "uvloop":
            seed.target = f">= {SCOPE_TARGET:,} scopes/s"
            seed.passed = seed.ops_per_s >= SCOPE_TARGET
    return results


def _print_extras(results: list[Result]) -> None:
    print("\nextra nanoseconds per scope:")
    for r in results:
        if "ns_over_floor" in r.extra:
            print(
                f"  {r.name:46} {r.extra['ns_over_floor']:7.1f} over the floor, of which "
                f"{r.extra['aio_layer_ns']:7.1f} beyond the core's get/return"
            )
        elif "ns_over_sync_core" in r.extra:
            print(
                f"  {r.name:46} {r.extra['ns_over_sync_core']:7.1f} over the same loop "
                "with get/return and no scope"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aio", description=__doc__)
    add_common_args(parser)
    parser.add_argument(
        "--backend",
        action="append",
        choices=sorted(BACKENDS),
        help="measure only this event loop (repeatable; default: all of them)",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this thread's CPU time (default; robust on a shared machine); wall",
    )
    args = parser.parse_args(argv)
    backends = args.backend or list(BACKENDS)
    results = run(args.quick, args.repeat, backends, args.clock)
    core = "compiled (mypyc)" if getattr(electron, "COMPILED", False) else "pure Python"
    title = f"electron.aio scopes ({core} core; {args.clock} clock; min of N; ops = scopes)"
    print_table(title, results)
    _print_extras(results)
    # The absolute figures (the target among them) depend on how CPython was built.
    print(f"\ninterpreter: {interpreter_line()}")
    if args.json:
        write_json(args.json, "aio", results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
