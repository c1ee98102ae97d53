"""What each leak detection level costs on the hot loops, against ``off`` in the same run.

    python -m bench.leaks [--quick] [--json FILE] [--repeat N]

For each level (``off``, ``simple``: about 1 loan in 100 records a short stack, ``paranoid``:
every loan records a full stack and quarantined memory is poisoned) on its own pool:

- arena get/return: ``get_arena`` then ``return_arena``, nothing else;
- buffer get/return: a 1 KiB pooled buffer;
- seed loop: an arena, a small object in it, a 1 KiB buffer written to, both given back;
- quarantine: an arena returned while a view of it is still alive (the region is held back;
  poisoned in ``paranoid``), the view dropped right after.

Every case is reported as a ratio against the same case at ``off`` measured in this run
(``ratio`` < 1: slower than ``off``), and as the nanoseconds each loan adds over ``off``.
The stack depth at which loans are taken matters for ``paranoid`` (it formats the whole
stack): the loops run 10 frames deep, like a handler under a framework.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Literal

import electron

from ._harness import Result, add_common_args, print_table, ratio_vs, time_loop, write_json
from .micro import seed_loop

LeakDetection = Literal["off", "simple", "paranoid"]
LEVELS: tuple[LeakDetection, ...] = ("off", "simple", "paranoid")
DEPTH = 10  # frames between the loop and the benchmark driver, like a handler in a framework


def _deep(depth: int, fn: Callable[[int], None], n: int) -> None:
    """Call ``fn(n)`` ``depth`` frames below here."""
    if depth <= 0:
        fn(n)
    else:
        _deep(depth - 1, fn, n)


def _cases(aop: electron.ArenaOfPools) -> dict[str, Callable[[int], None]]:
    get_arena, return_arena = aop.get_arena, aop.return_arena
    get_buffer, return_buffer = aop.get_buffer, aop.return_buffer

    def arena_loop(n: int) -> None:
        for _ in range(n):
            return_arena(get_arena())

    def buffer_loop(n: int) -> None:
        for _ in range(n):
            return_buffer(get_buffer(1024))

    seed = seed_loop(aop)

    def quarantine_loop(n: int) -> None:
        for _ in range(n):
            arena = get_arena()
            kept = memoryview(arena.alloc(64))  # outlives the loan: the region is held back
            return_arena(arena)
            del kept  # free again: the next get takes it back (zeroed)

    loops = {
        "arena get/return": arena_loop,
        "buffer get/return": buffer_loop,
        "seed loop": seed,
        "quarantine": quarantine_loop,
    }
    return {name: _at_depth(fn) for name, fn in loops.items()}


def _at_depth(fn: Callable[[int], None]) -> Callable[[int], None]:
    def run(n: int) -> None:
        _deep(DEPTH, fn, n)

    return run


def run(quick: bool, repeat: int | None) -> list[Result]:
    """Measure every case at every level; ratios against ``off`` filled in."""
    reps = repeat or (3 if quick else 7)
    n = 2_000 if quick else 20_000
    results: list[Result] = []
    pools = {
        level: electron.ArenaOfPools(
            arena_size=16 << 10, pool_size=8, leak_detection=level, trim_interval=None
        )
        for level in LEVELS
    }
    names = list(_cases(pools["off"]))
    cases = {level: _cases(pool) for level, pool in pools.items()}
    # Levels take turns case by case, so a slow patch of the machine hits them alike.
    for name in names:
        for level in LEVELS:
            loops = n // 10 if level == "paranoid" else n  # ~100x slower: fewer loops
            ns = time_loop(cases[level][name], loops, reps)
            results.append(Result(name, f"{name}: {level}", ns, extra={"level": level}))
    for pool in pools.values():
        stats = pool.statistics()
        assert stats.active_arenas == 0
        assert stats.active_buffers == 0
        assert stats.leaks_detected == 0
        pool.close()
    by_name = {r.name: r for r in results}
    for name in names:
        off = by_name[f"{name}: off"]
        for level in LEVELS[1:]:
            r = by_name[f"{name}: {level}"]
            ratio_vs(results, r.name, off.name)
            r.extra["added_ns_per_loop"] = round(r.ns_per_op - off.ns_per_op, 1)
            r.extra["slowdown"] = round(r.ns_per_op / off.ns_per_op, 3)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leaks", description=__doc__)
    add_common_args(parser)
    args = parser.parse_args(argv)
    results = run(args.quick, args.repeat)
    core = "compiled (mypyc)" if electron.COMPILED else "pure Python"
    print_table(f"leak detection cost ({core}; ratio vs off, min of N runs)", results)
    print("\nadded per loop over off:")
    for r in results:
        if "added_ns_per_loop" in r.extra:
            print(f"  {r.name:36} {r.extra['added_ns_per_loop']:>10.1f} ns")
    if args.json:
        write_json(args.json, "leaks", results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
