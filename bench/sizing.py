"""Adaptive arena sizing: memory and speed with ``arena_size="auto"`` against fixed sizes.

    python -m bench.sizing [--quick] [--json FILE] [--repeat N] [--concurrency C]

A mixed workload of requests, each an arena loan with a few allocations: most requests are
small (1 to 6 KiB in 1 to 8 allocations), a minority large (64 to 768 KiB, allocations of at
most 256 KiB). ``concurrency`` requests are in flight at once (a ring: each new request
gives back the oldest one's memory), as on a busy server. Memory is measured with each pool
variant in a fresh process (its RSS is its own); speed with the variants taking turns, run
after run, in one process (the same seconds of the machine for each):

- ``fixed 1 MiB``: an arena size every request fits in (what one must configure without
  auto sizing, so that large requests work): the baseline;
- ``auto``: ``arena_size="auto"`` (p95 of recent use, within 4 KiB .. 1 MiB; a request
  above the learnt size grows its arena by chunks);
- ``fixed 64 KiB + buffers``: the default size; allocations that do not fit fall back to a
  pooled :class:`~electron.Buffer` (what an application must code without auto sizing).

Two mixes: 3% large (the p95 is a small request) and 10% large (the p95 is a large one,
where learning the p95 cannot save memory). Every variant's figures are ratios against the
baseline of the same mix measured in the same run: speed (baseline time / variant time,
> 1 faster) and memory (baseline bytes / variant bytes, > 1 smaller): the pool's peak
reserved bytes and the process's peak RSS growth during the workload.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from ._harness import Result, add_common_args, print_table, write_json

ROOT = Path(__file__).resolve().parents[1]
KiB = 1 << 10
MiB = 1 << 20
VARIANTS = ("fixed 1 MiB", "auto", "fixed 64 KiB + buffers")
MIXES = {"3% large": 0.03, "10% large": 0.10}
BASELINE = "fixed 1 MiB"


def workload(n: int, large_share: float, seed: int = 5) -> list[tuple[int, ...]]:
    """``n`` requests, each the sizes of its allocations (multiples of 16: no padding)."""
    rng = random.Random(seed)
    out: list[tuple[int, ...]] = []
    for _ in range(n):
        if rng.random() < large_share:
            total = rng.randrange(64 * KiB, 768 * KiB, 16)
            parts: list[int] = []
            while total > 0:
                part = min(total, 256 * KiB)
                parts.append(part)
                total -= part
        else:
            k = rng.randrange(1, 9)
            total = rng.randrange(1 * KiB, 6 * KiB, 16)
            parts = [max(16, (total // k) & ~15)] * k
        out.append(tuple(parts))
    return out


def _make_pool(variant: str) -> Any:
    import electron

    if variant == "auto":
        return electron.ArenaOfPools(
            arena_size="auto", min_arena_size=4 * KiB, max_arena_size=1 * MiB, pool_size=128
        )
    size = MiB if variant == "fixed 1 MiB" else 64 * KiB
    return electron.ArenaOfPools(arena_size=size, pool_size=128)


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


class _Run:
    """One variant's pool and the requests it has in flight."""

    def __init__(self, variant: str, concurrency: int) -> None:
        self.aop = _make_pool(variant)
        self.ring: list[tuple[Any, list[Any]] | None] = [None] * concurrency
        self.fallbacks = 0
        self.peak_rss = _rss()

    def once(self, requests: list[tuple[int, ...]]) -> int:
        """Serve ``requests``; return the nanoseconds it took."""
        aop, ring, concurrency = self.aop, self.ring, len(self.ring)
        peak_rss = self.peak_rss
        fallbacks = 0
        t0 = time.perf_counter_ns()
        for i, sizes in enumerate(requests):
            slot = i % concurrency
            old = ring[slot]
            if old is not None:
                arena, bufs = old
                aop.return_arena(arena)
                for buf in bufs:
                    buf.close()
            arena = aop.get_arena()
            bufs = []
            for size in sizes:
                view = arena.try_alloc(size)
                if view is None:  # does not fit: a pooled buffer instead
                    buf = aop.get_buffer(size)
                    view = buf.reserve(size)
                    buf.commit(size)
                    bufs.append(buf)
                    fallbacks += 1
                view[::4096] = b"\x01" * len(range(0, size, 4096))  # a write on every page
                del view
            ring[slot] = (arena, bufs)
            if i & 1023 == 0:
                peak_rss = max(peak_rss, _rss())
        elapsed = time.perf_counter_ns() - t0
        self.peak_rss = max(peak_rss, _rss())
        self.fallbacks = fallbacks
        return elapsed

    def close(self) -> None:
        for entry in self.ring:
            if entry is not None:
                self.aop.return_arena(entry[0])
                for buf in entry[1]:
                    buf.close()
        self.aop.close()


def run_memory(variant: str, n: int, large_share: float, concurrency: int) -> dict[str, Any]:
    """The workload, twice, on a fresh pool of ``variant``: its memory (this process's)."""
    import electron

    requests = workload(n, large_share)
    rss0 = _rss()
    run = _Run(variant, concurrency)
    for _ in range(2):
        run.once(requests)
    stats = run.aop.statistics()
    run.close()
    return {
        "high_water_bytes": stats.high_water_bytes,
        "reserved_bytes": stats.bytes_reserved,
        "rss_growth": run.peak_rss - rss0,
        "arena_size": stats.arena_size,
        "fallbacks_per_run": run.fallbacks,
        "compiled": electron.COMPILED,
    }


def run_speed(n: int, large_share: float, concurrency: int, repeat: int) -> dict[str, float]:
    """Every variant in this process, run after run in turn: best ns per request of each."""
    requests = workload(n, large_share)
    runs = {v: _Run(v, concurrency) for v in VARIANTS}
    best = dict.fromkeys(VARIANTS, float("inf"))
    for run in runs.values():  # warm up: pools filled, the auto size learnt
        run.once(requests)
    for _ in range(repeat):
        for v, run in runs.items():
            best[v] = min(best[v], run.once(requests) / n)
    for run in runs.values():
        run.close()
    return best


def _in_subprocess(what: str, *args: object) -> Any:
    cmd = [sys.executable, "-m", "bench.sizing", "--run", json.dumps([what, *args])]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mib(n: float) -> str:
    return f"{n / MiB:8.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--requests", type=int, help="requests per run")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        what, *rest = json.loads(args.run)
        print(json.dumps(run_memory(*rest) if what == "memory" else run_speed(*rest)))
        return 0
    n = args.requests or (4_000 if args.quick else 40_000)
    repeat = args.repeat or (2 if args.quick else 5)
    print(
        f"{n} requests per run, {args.concurrency} in flight; speed: best of {repeat} runs, "
        "the variants in turn in one process; memory: each variant in a fresh process"
    )
    results: list[Result] = []
    rows = []
    for mix, share in MIXES.items():
        got = {v: _in_subprocess("memory", v, n, share, args.concurrency) for v in VARIANTS}
        speed = _in_subprocess("speed", n, share, args.concurrency, repeat)
        for v in VARIANTS:
            got[v]["ns_per_request"] = speed[v]
        base = got[BASELINE]
        for variant in VARIANTS:
            fig = got[variant]
            r = Result("sizing", f"{mix}: {variant}", fig["ns_per_request"], extra=dict(fig))
            if variant != BASELINE:
                r.baseline = f"{mix}: {BASELINE}"
                r.ratio = base["ns_per_request"] / fig["ns_per_request"]
                r.extra["high_water_ratio"] = round(
                    base["high_water_bytes"] / fig["high_water_bytes"], 2
                )
                r.extra["rss_ratio"] = round(
                    base["rss_growth"] / max(fig["rss_growth"], 1 * MiB), 2
                )
            results.append(r)
            rows.append((mix, variant, fig, r))
    print_table("bench.sizing (ns/op: per request; ratio: baseline time / variant time)", results)
    print(
        f"\n{'case':36} {'arena size':>10} {'peak reserved MiB':>18} {'peak RSS growth MiB':>20}"
        f" {'memory ratio (reserved, RSS)':>29} {'buffer fallbacks':>17}"
    )
    for mix, variant, fig, r in rows:
        ratios = ""
        if "high_water_ratio" in r.extra:
            ratios = f"{r.extra['high_water_ratio']:.2f}x, {r.extra['rss_ratio']:.2f}x"
        print(
            f"{mix + ': ' + variant:36} {fig['arena_size']:>10} {_mib(fig['high_water_bytes']):>18}"
            f" {_mib(fig['rss_growth']):>20} {ratios:>29} {fig['fallbacks_per_run']:>17}"
        )
    compiled = {fig["compiled"] for _, _, fig, _ in rows}
    print(
        "\nmemory ratio: the baseline's bytes / the variant's (> 1: the variant needs less); "
        f"RSS growth below 1 MiB counts as 1 MiB. Core compiled: {compiled}"
    )
    if args.json:
        write_json(args.json, "sizing", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
