"""Instructions per request: what electron adds to a hello world, counted exactly.

    python -m bench.instructions [--quick] [--json FILE] [--repeat N] [--requests N]

``bench.http`` times the hello world end to end, but on a shared 2-core VM the CPU time one
server spends per request moves by 5-10% from one 3 s round to the next, and an A/A run
(two identical servers) can differ by 2%; a 1-3% cost is at the edge of what it can tell.
This case counts instead: each hello-world server of ``bench.http`` (set up with electron's
``setup``, the same with ``current_arena=True``, and the app without electron) runs under
valgrind's callgrind, which counts every
instruction the process executes in user space. After a warm-up the counters are zeroed,
``--requests`` requests are sent over 32 concurrent keep-alive connections by an aiohttp
client outside valgrind (the server, slowed about 50x, is the bottleneck and batches
requests as it does under wrk), and the counters are read. Whatever else the machine is
doing, fresh processes of the same side agree within about 0.5% (a garbage collection of
the older generations may or may not fall in the counted window); each side is counted
``--repeat`` times, alternating, and the spread is reported. The count per request also
depends on how many requests are counted (the warm-up's effects fade): 500 or 1,000 requests
(``--quick``) read higher ratios than full runs (3,000), so compare figures of the same size
only.

Reported: instructions per request of each side, their ratio (baseline / electron: the
hello-world throughput ratio if both ran at the same instructions per cycle) and the
difference. Kernel work (the socket calls, the same for both sides) is not counted, so
against the whole CPU time of a request electron's share is smaller still.
Needs ``valgrind`` (with ``callgrind_control``); without it the case is skipped, saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import _callgrind
from ._harness import Result, add_common_args, write_json
from ._load import LISTENING  # the servers' ready line
from .http import HELLO_TARGET, ROOT

CONNECTIONS = 32
WARMUP = 300
_NAMES = {
    "electron": "electron",
    "plain": "without electron",
    "electron-context": "electron, current_arena=True",
}


async def _load(url: str, requests: int) -> None:
    """Send exactly ``requests`` GETs over ``CONNECTIONS`` keep-alive connections."""
    import aiohttp

    left = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.get(url) as resp:
                body = await resp.read()
                if resp.status != 200 or body != b"Hello, World!":
                    raise RuntimeError(f"bad response: {resp.status} {body[:60]!r}")

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))


def _callgrind_control(flag: str, pid: int) -> None:
    subprocess.run(
        ["callgrind_control", flag, str(pid)], capture_output=True, check=True, timeout=120
    )


def count(variant: str, requests: int, loop: str) -> float:
    """User-space instructions per request of one fresh ``variant`` hello-world server."""
    with tempfile.TemporaryDirectory(prefix="electron-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = _callgrind.command(out, "bench.http", "--serve", variant, "--loop", loop)
        env = _callgrind.environment()  # the two sides' dicts and sets are laid out alike
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = LISTENING.search(line)
            if match is None:
                raise RuntimeError(f"{variant}: no 'listening on' line (got {line!r})")
            url = match.group(1)
            asyncio.run(_load(url, WARMUP))
            _callgrind_control("-z", proc.pid)
            for stale in Path(tmp).iterdir():
                stale.unlink()
            asyncio.run(_load(url, requests))
            _callgrind_control("-d", proc.pid)
            dumps = [p.read_text() for p in Path(tmp).iterdir()]
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return _callgrind.total(dumps, variant) / requests


def run(quick: bool, repeat: int | None, requests: int | None, loop: str) -> list[Result]:
    """Count both sides ``repeat`` times, alternating; fill in the ratio and the target."""
    reps = repeat or (1 if quick else 2)
    n = requests or (1000 if quick else 3000)
    counts: dict[str, list[float]] = {"electron": [], "plain": [], "electron-context": []}
    order = ("electron", "plain", "electron-context")
    for r in range(reps):
        for variant in order if r % 2 == 0 else order[::-1]:
            t0 = time.monotonic()
            counts[variant].append(count(variant, n, loop))
            print(
                f"  {variant:16} {counts[variant][-1]:12,.0f} instructions/request "
                f"({n} requests, {time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    results = []
    for variant, values in counts.items():
        spread = (max(values) - min(values)) / min(values)
        results.append(
            Result(
                "instructions",
                f"hello: {_NAMES[variant]}, instructions/request",
                statistics.median(values),
                extra={
                    "unit": "instructions per request (callgrind Ir, user space)",
                    "counts": [round(v) for v in values],
                    "spread": round(spread, 5),
                    "requests": n,
                    "loop": loop,
                },
            )
        )
    electron, plain, context = results
    for side in (electron, context):
        side.baseline = plain.name
        side.ratio = plain.ns_per_op / side.ns_per_op
        side.extra["added_per_request"] = round(side.ns_per_op - plain.ns_per_op)
    electron.target = f">= {HELLO_TARGET}"  # the default set-up; current_arena=True is opt-in
    electron.passed = electron.ratio is not None and electron.ratio >= HELLO_TARGET
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--requests", type=int, help="requests counted per server")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("valgrind", "callgrind_control") if not shutil.which(tool)]
    if missing:
        print(f"skipped: {' and '.join(missing)} not installed (Debian: apt install valgrind)")
        if args.json:
            write_json(args.json, "instructions", [])
        return 0
    results = run(args.quick, args.repeat, args.requests, args.loop)
    electron = results[0]
    print(f"\nhello world, user-space instructions per request (callgrind; loop {args.loop})")
    for r in results:
        print(f"  {r.name:66} {r.ns_per_op:9,.0f}  (spread {r.extra['spread']:.3%})")
    assert electron.ratio is not None
    verdict = "PASS" if electron.passed else "FAIL"
    print(
        f"ratio without/with electron: {electron.ratio:.4f}  [target {electron.target}: "
        f"{verdict}]; electron adds {electron.extra['added_per_request']:,} instructions "
        "to a request"
    )
    context = results[2]
    print(
        f"with current_arena=True: ratio {context.ratio:.4f}, "
        f"{context.extra['added_per_request']:,} instructions added to a request"
    )
    if args.json:
        write_json(args.json, "instructions", results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
