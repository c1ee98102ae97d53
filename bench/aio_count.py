"""Where a scope's time goes: instructions per iteration of ``bench.aio``'s loops, counted.

    python -m bench.aio_count [--quick] [--json FILE] [--backend uvloop]

(``--quick`` counts the seed loop and the no-electron loop only.)

``bench.aio`` times the seed loop, but on this shared VM the same loop's time moves by 10-15%
from one hour to the next, which is as much as the gap to the target. This case counts
instead: each loop of ``bench.aio`` runs in a fresh process under valgrind's callgrind, once
with N1 and once with N2 iterations (after the same warm-up), and the difference of the two
totals divided by N2 - N1 is the user-space instructions of one iteration; start-up, imports
and warm-up cancel out. The counts do not depend on what else the machine is doing.

Next to the loops of ``bench.aio`` it counts an empty loop and a ``ContextVar`` set/reset
pair (what every scope must do for ``current_arena``), and prints what the seed loop spends
beyond the same loop with no electron. The loops run under the same runners as in
``bench.aio`` (``--backend``; ``uvloop.run`` by default). One caveat: a ``ContextVar`` set or
reset copies nodes of the context's HAMT, whose size depends on the other variables set in
the context and on their hashes, which derive from object addresses. Under ``uvloop.run``
electron's variable is the only one; under ``anyio.run`` (``--backend uvloop-anyio``)
sniffio's is there too, and a set/reset pair measured about 2,400 instructions in one
process and 3,900 in another where the two hashes collided in their low bits.
Needs ``valgrind``; without it the case is skipped, saying so.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import electron
from electron._context import current_arena_var

from . import _callgrind
from ._harness import Result, add_common_args, write_json
from .aio import BACKENDS, AsyncLoop, _cases, run_on

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 2_000

SEED = "seed loop: async with aop.arena()"
PLAIN = "seed loop: no electron"
SYNC = "seed loop: get/return in a coroutine"
FLOOR = "floor: async with Empty()"
EMPTY = "empty: async with aop.arena()"
CORE = "empty: get_arena/return_arena"
LOOP = "empty loop"
CONTEXT = "ContextVar set/reset"
COUNTED = (SEED, SYNC, PLAIN, FLOOR, EMPTY, CORE, CONTEXT, LOOP)
QUICK = (SEED, PLAIN)  # CI: each count starts two processes under valgrind (about 10 s each)


def _extra_cases(aop: electron.ArenaOfPools) -> dict[str, AsyncLoop]:
    set_arena, reset_arena = current_arena_var.set, current_arena_var.reset

    async def empty_loop(n: int) -> None:
        for _ in range(n):
            pass

    async def context_var(n: int) -> None:
        arena = aop.get_arena()
        for _ in range(n):
            reset_arena(set_arena(arena))
        aop.return_arena(arena)

    return {LOOP: empty_loop, CONTEXT: context_var}


def _child(case: str, n: int, backend: str) -> None:
    """Run ``case`` ``WARMUP`` then ``n`` times in this process (under callgrind)."""
    async def go() -> None:
        with electron.ArenaOfPools() as aop:
            fn = {**_cases(aop), **_extra_cases(aop)}[case]
            gc.disable()  # as bench.aio times them
            await fn(WARMUP)
            await fn(n)

    run_on(backend, go)


def _total(case: str, n: int, backend: str) -> int:
    with tempfile.TemporaryDirectory(prefix="electron-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = _callgrind.command(
            out, "bench.aio_count", "--child", case, str(n), "--backend", backend
        )
        subprocess.run(
            cmd, cwd=ROOT, env=_callgrind.environment(), check=True, capture_output=True,
            timeout=900,
        )
        return _callgrind.total([out.read_text()], case)


def run(quick: bool, backend: str) -> list[Result]:
    """Instructions per iteration of every counted case."""
    n1, n2 = (2_000, 12_000) if quick else (10_000, 60_000)
    cases = QUICK if quick else COUNTED
    results = []
    for case in cases:
        per_iteration = (_total(case, n2, backend) - _total(case, n1, backend)) / (n2 - n1)
        print(f"  {case:44} {per_iteration:9,.0f}", flush=True)
        results.append(
            Result(
                "aio_count",
                f"{backend}: {case}, instructions/iteration",
                per_iteration,
                extra={"unit": "instructions per iteration (callgrind Ir, user space)",
                       "case": case, "iterations": [n1, n2]},
            )
        )
    by_case = dict(zip(cases, results, strict=True))
    seed, plain = by_case[SEED], by_case[PLAIN]
    seed.baseline, seed.ratio = plain.name, plain.ns_per_op / seed.ns_per_op
    return results


def budget(results: list[Result]) -> list[tuple[str, float]]:
    """What the seed loop spends beyond the same loop with no electron, and for scale, what
    an empty scope, the core's loan and return, and a ``ContextVar`` set/reset pair cost on
    their own (less the empty loop). The parts are called from the interpreter here and
    natively inside a scope, so they do not add up to the whole."""
    c = {r.extra["case"]: r.ns_per_op for r in results}
    lines = [
        ("seed loop: async with aop.arena()", c[SEED]),
        ("the same work with no electron", c[PLAIN]),
        ("what electron adds per scope", c[SEED] - c[PLAIN]),
    ]
    if LOOP not in c:  # --quick counts the two loops only
        return lines
    loop = c[LOOP]
    return [
        *lines,
        ("an empty scope", c[EMPTY] - loop),
        ("  get_arena/return_arena alone", c[CORE] - loop),
        ("  ContextVar set/reset alone (current_arena needs it)", c[CONTEXT] - loop),
        ("floor: async with of an interpreted empty manager", c[FLOOR] - loop),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aio_count", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="uvloop")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), args.backend)
        return 0
    if not shutil.which("valgrind"):
        print("skipped: valgrind not installed (Debian: apt install valgrind)")
        if args.json:
            write_json(args.json, "aio_count", [])
        return 0
    core = "compiled (mypyc)" if electron.COMPILED else "pure Python"
    print(f"electron.aio loops, user-space instructions per iteration ({core} core, callgrind)")
    results = run(args.quick, args.backend)
    print("\nwhere the seed loop's instructions go:")
    for label, value in budget(results):
        print(f"  {label:52} {value:9,.0f}")
    if args.json:
        write_json(args.json, "aio_count", results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
