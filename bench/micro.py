"""Micro benchmarks of the synchronous core, each against a plain-Python baseline.

    python -m bench.micro [--quick] [--json FILE] [--repeat N]

Cases (issue 3):
- the reference plan's loop: get an arena, ``new`` a small object, get a 1 KiB buffer,
  write, return both; baseline: the same work with plain allocation;
- pooled 64 KiB and 1 MiB buffers, get/put vs a fresh ``bytearray`` each time;
- the full cycle get/fill/put vs allocate/fill;
- small allocations from an arena vs ``bytearray(n)``.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from collections.abc import Callable

import electron

from ._harness import Result, add_common_args, print_table, ratio_vs, time_cases, write_json

SEED_TARGET = 1_000_000  # ops/s promised by the Go design; ours must reach it too


class Context:
    """A request context as a handler would define it."""

    __slots__ = ("flags", "request_id")

    def __init__(self) -> None:
        self.request_id = 0
        self.flags = 0


class CContext(ctypes.Structure):
    """The same context as a ctypes struct, placed in arena memory by ``Arena.new``."""

    _fields_ = (("request_id", ctypes.c_int64), ("flags", ctypes.c_int32))


def seed_loop(aop: electron.ArenaOfPools) -> Callable[[int], None]:
    """The reference plan's loop on ``aop``: arena, ``new`` a context, 1 KiB buffer, write."""
    get_arena, return_arena = aop.get_arena, aop.return_arena
    get_buffer, return_buffer = aop.get_buffer, aop.return_buffer

    def electron_seed(n: int) -> None:
        for i in range(n):
            arena = get_arena()
            ctx = arena.new(Context)
            ctx.request_id = i
            buf = get_buffer(1024)
            buf.write(b"response data")
            return_buffer(buf)
            return_arena(arena)

    return electron_seed


def _seed_cases(aop: electron.ArenaOfPools) -> dict[str, Callable[[int], None]]:
    get_arena, return_arena = aop.get_arena, aop.return_arena
    get_buffer, return_buffer = aop.get_buffer, aop.return_buffer
    electron_seed = seed_loop(aop)

    def electron_seed_ctypes(n: int) -> None:
        for i in range(n):
            arena = get_arena()
            ctx = arena.new(CContext)
            ctx.request_id = i
            buf = get_buffer(1024)
            buf.write(b"response data")
            return_buffer(buf)
            del ctx  # a live ctypes object pins arena memory: the arena would be quarantined
            return_arena(arena)

    def plain_seed(n: int) -> None:
        for i in range(n):
            ctx = Context()
            ctx.request_id = i
            buf = bytearray(1024)
            memoryview(buf)[:13] = b"response data"

    return {
        "seed loop: electron": electron_seed,
        "seed loop: electron, ctypes ctx": electron_seed_ctypes,
        "seed loop: plain Python": plain_seed,
    }


def _buffer_cases(aop: electron.ArenaOfPools, size: int) -> dict[str, Callable[[int], None]]:
    get_buffer, return_buffer = aop.get_buffer, aop.return_buffer
    src = bytes(range(256)) * (size // 256)
    label = f"{size >> 10} KiB" if size < 1 << 20 else f"{size >> 20} MiB"

    def pooled(n: int) -> None:
        for _ in range(n):
            return_buffer(get_buffer(size))

    def fresh(n: int) -> None:
        for _ in range(n):
            bytearray(size)

    def pooled_fill(n: int) -> None:
        for _ in range(n):
            buf = get_buffer(size)
            buf.write(src)
            return_buffer(buf)

    def fresh_fill(n: int) -> None:
        for _ in range(n):
            ba = bytearray(size)
            memoryview(ba)[:] = src

    def fresh_copy(n: int) -> None:
        for _ in range(n):
            bytearray(src)

    return {
        f"{label} buffer: pooled get/put": pooled,
        f"{label} buffer: bytearray()": fresh,
        f"{label} cycle: pooled get/fill/put": pooled_fill,
        f"{label} cycle: bytearray() + fill": fresh_fill,
        f"{label} cycle: bytearray(src) copy": fresh_copy,
    }


def _small_alloc_cases() -> dict[str, Callable[[int], None]]:
    arena = electron.Arena(1 << 20)
    per_reset = (1 << 20) // 64

    def arena_alloc(n: int) -> None:
        alloc, reset = arena.alloc, arena.reset
        done = 0
        while done < n:
            k = min(per_reset, n - done)
            for _ in range(k):
                alloc(64)
            reset()
            done += k

    def plain_alloc(n: int) -> None:
        keep: list[bytearray] = []
        done = 0
        while done < n:
            k = min(per_reset, n - done)
            keep.extend(bytearray(64) for _ in range(k))
            keep.clear()
            done += k

    return {"64 B alloc: arena (+reset)": arena_alloc, "64 B alloc: bytearray(64)": plain_alloc}


def run(quick: bool, repeat: int | None) -> list[Result]:
    """Measure every case; return the results with their ratios filled in."""
    reps = repeat or (5 if quick else 7)
    scale = 1 if quick else 10
    results: list[Result] = []

    def measure(group: str, cases: dict[str, Callable[[int], None]], n: int) -> None:
        times = time_cases(dict(cases), n, reps)
        results.extend(Result(group, name, ns) for name, ns in times.items())

    with electron.ArenaOfPools() as aop:
        measure("seed", _seed_cases(aop), 20_000 * scale)
        measure("buffers", _buffer_cases(aop, 64 << 10), 2_000 * scale)
        measure("buffers", _buffer_cases(aop, 1 << 20), 200 * scale)
        assert aop.statistics().active_arenas == 0
    measure("arena", _small_alloc_cases(), 50_000 * scale)

    for name in ("seed loop: electron", "seed loop: electron, ctypes ctx"):
        ratio_vs(results, name, "seed loop: plain Python")
    for label in ("64 KiB", "1 MiB"):
        ratio_vs(results, f"{label} buffer: pooled get/put", f"{label} buffer: bytearray()")
        ratio_vs(
            results, f"{label} cycle: pooled get/fill/put", f"{label} cycle: bytearray() + fill"
        )
        ratio_vs(
            results, f"{label} cycle: bytearray(src) copy", f"{label} cycle: bytearray() + fill"
        )
    ratio_vs(results, "64 B alloc: arena (+reset)", "64 B alloc: bytearray(64)")

    by_name = {r.name: r for r in results}
    seed = by_name["seed loop: electron"]
    seed.target = f">= {SEED_TARGET:,} ops/s"
    seed.passed = seed.ops_per_s >= SEED_TARGET
    big = by_name["1 MiB buffer: pooled get/put"]
    big.target = ">= 10x"
    big.passed = (big.ratio or 0) >= 10
    for label in ("64 KiB", "1 MiB"):
        cycle = by_name[f"{label} cycle: pooled get/fill/put"]
        cycle.target = "not slower (>= 1x)"
        cycle.passed = (cycle.ratio or 0) >= 1.0
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    results = run(args.quick, args.repeat)
    core = "compiled (mypyc)" if electron.COMPILED else "pure Python"
    print_table(f"electron core micro benchmarks ({core}; min of N runs)", results)
    if args.json:
        write_json(args.json, "micro", results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
