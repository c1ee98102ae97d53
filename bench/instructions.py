"""Instructions per request: what electron adds to a hello world, counted exactly.

    python -m bench.instructions [--quick] [--json FILE] [--repeat N] [--requests N]
                                 [--route hello|pooled] [--sizes 1k,16k,64k]

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
``--route pooled`` counts the pooled response path instead, on the example server
(``examples/server.py``): ``GET /bytes/N?pooled=1`` (the body built in a pooled buffer and
returned as a ``PooledResponse``) against ``GET /bytes/N`` on the same server run with
``--no-electron`` (a ``bytearray`` and a ``web.Response``), for each of ``--sizes``, and
``GET /bytes/N`` on the electron server (plain ``bytes`` under the middleware) as well. The
difference is the pooled path's fixed cost: the request's lease, the buffer's loan and return,
``reserve``'s view and zeroing, the response object.

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
from dataclasses import dataclass
from pathlib import Path

from . import _callgrind
from ._harness import Result, add_common_args, write_json
from ._load import LISTENING  # the servers' ready line
from .http import EXAMPLE, HELLO_TARGET, ROOT

CONNECTIONS = 32
WARMUP = 300
_NAMES = {
    "electron": "electron",
    "plain": "without electron",
    "electron-context": "electron, current_arena=True",
}
HELLO = b"Hello, World!"
POOLED_SIZES = (1 << 10, 16 << 10, 64 << 10)


@dataclass(frozen=True)
class Side:
    """One server counted: how to start it, what to ask it and the body to expect."""

    variant: str  # a short name, for the progress lines
    name: str  # the result's name
    args: tuple[str, ...]  # ``python -m`` arguments (under valgrind)
    path: str
    body: bytes


def hello_sides(loop: str) -> list[Side]:
    """The hello world of ``bench.http`` set up with electron, and without it."""
    return [
        Side(v, f"hello: {_NAMES[v]}, instructions/request",
             ("bench.http", "--serve", v, "--loop", loop), "/", HELLO)
        for v in ("electron", "plain", "electron-context")
    ]


def pooled_sides(loop: str, size: int) -> list[Side]:
    """``GET /bytes/{size}`` of the example server: pooled, plain without electron, and
    plain under electron's middleware."""
    from examples.server import pattern

    example = (str(EXAMPLE.relative_to(ROOT).with_suffix("")).replace("/", "."),)
    cmd = (*example, "--host", "127.0.0.1", "--port", "0", "--loop", loop)
    body = pattern(size, 0)
    kib = f"{size >> 10} KiB" if size >= 1024 else f"{size} B"
    return [
        Side("pooled", f"bytes {kib}: electron, ?pooled=1", cmd,
             f"/bytes/{size}?pooled=1", body),
        Side("plain", f"bytes {kib}: without electron", (*cmd, "--no-electron"),
             f"/bytes/{size}?pooled=1", body),  # ignored, but parsed as on the pooled side
        Side("unpooled", f"bytes {kib}: electron, plain bytes", cmd, f"/bytes/{size}?seed=0",
             body),
    ]


async def _load(url: str, requests: int, expected: bytes) -> None:
    """Send exactly ``requests`` GETs over ``CONNECTIONS`` keep-alive connections."""
    import aiohttp

    left = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.get(url) as resp:
                body = await resp.read()
                if resp.status != 200 or body != expected:
                    raise RuntimeError(f"bad response: {resp.status} {body[:60]!r}")

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))


def _callgrind_control(flag: str, pid: int) -> None:
    subprocess.run(
        ["callgrind_control", flag, str(pid)], capture_output=True, check=True, timeout=120
    )


def count(side: Side, requests: int) -> float:
    """User-space instructions per request of one fresh server of ``side``."""
    with tempfile.TemporaryDirectory(prefix="electron-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = _callgrind.command(out, *side.args)
        env = _callgrind.environment()  # the two sides' dicts and sets are laid out alike
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = LISTENING.search(line)
            if match is None:
                raise RuntimeError(f"{side.name}: no 'listening on' line (got {line!r})")
            url = match.group(1) + side.path
            asyncio.run(_load(url, WARMUP, side.body))
            _callgrind_control("-z", proc.pid)
            for stale in Path(tmp).iterdir():
                stale.unlink()
            asyncio.run(_load(url, requests, side.body))
            _callgrind_control("-d", proc.pid)
            dumps = [p.read_text() for p in Path(tmp).iterdir()]
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return _callgrind.total(dumps, side.name) / requests


def count_sides(sides: list[Side], reps: int, n: int) -> list[Result]:
    """Count each side ``reps`` times, alternating the order; one result per side (the
    median), in ``sides``' order. The first side is compared with the second (the
    baseline) and with every later one."""
    counts: dict[str, list[float]] = {side.name: [] for side in sides}
    for r in range(reps):
        for side in sides if r % 2 == 0 else sides[::-1]:
            t0 = time.monotonic()
            counts[side.name].append(count(side, n))
            print(
                f"  {side.variant:16} {side.path:24} {counts[side.name][-1]:12,.0f} "
                f"instructions/request ({n} requests, {time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    results = []
    for name, values in counts.items():
        spread = (max(values) - min(values)) / min(values)
        results.append(
            Result(
                "instructions",
                name,
                statistics.median(values),
                extra={
                    "unit": "instructions per request (callgrind Ir, user space)",
                    "counts": [round(v) for v in values],
                    "spread": round(spread, 5),
                    "requests": n,
                },
            )
        )
    plain = results[1]
    for result in (results[0], *results[2:]):
        result.baseline = plain.name
        result.ratio = plain.ns_per_op / result.ns_per_op
        result.extra["added_per_request"] = round(result.ns_per_op - plain.ns_per_op)
    return results


def run(
    quick: bool, repeat: int | None, requests: int | None, loop: str
) -> list[Result]:
    """The hello world: count the three sides; fill in the ratio and the target."""
    reps = repeat or (1 if quick else 2)
    n = requests or (1000 if quick else 3000)
    results = count_sides(hello_sides(loop), reps, n)
    for r in results:
        r.extra["loop"] = loop
    electron = results[0]
    electron.target = f">= {HELLO_TARGET}"  # the default set-up; current_arena=True is opt-in
    electron.passed = electron.ratio is not None and electron.ratio >= HELLO_TARGET
    return results


def run_pooled(
    quick: bool, repeat: int | None, requests: int | None, loop: str, sizes: list[int]
) -> list[Result]:
    """The pooled path of the example server at each size (a diagnostic: no target)."""
    reps = repeat or (1 if quick else 2)
    n = requests or (1000 if quick else 3000)
    results = []
    for size in sizes:
        for r in count_sides(pooled_sides(loop, size), reps, n):
            r.extra["loop"] = loop
            results.append(r)
    return results


def _print_pooled(results: list[Result], loop: str) -> None:
    print(f"\nGET /bytes/N, user-space instructions per request (callgrind; loop {loop})")
    for r in results:
        added = r.extra.get("added_per_request")
        more = "" if added is None else f"  {added:+9,} vs plain (ratio {r.ratio:.3f})"
        print(f"  {r.name:40} {r.ns_per_op:9,.0f}{more}  (spread {r.extra['spread']:.3%})")


def _sizes(text: str) -> list[int]:
    units = {"k": 1 << 10, "m": 1 << 20}
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = units.get(part[-1:], 1)
        sizes.append(int(part[:-1] if scale > 1 else part) * scale)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--requests", type=int, help="requests counted per server")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--route",
        choices=("hello", "pooled"),
        default="hello",
        help="hello: bench.http's hello world (default); pooled: the example server's "
        "GET /bytes/N?pooled=1 against GET /bytes/N without electron",
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=list(POOLED_SIZES),
        help="body sizes of --route pooled, e.g. 1k,16k,64k (the default)",
    )
    args = parser.parse_args(argv)
    missing = [tool for tool in ("valgrind", "callgrind_control") if not shutil.which(tool)]
    if missing:
        print(f"skipped: {' and '.join(missing)} not installed (Debian: apt install valgrind)")
        if args.json:
            write_json(args.json, "instructions", [])
        return 0
    if args.route == "pooled":
        results = run_pooled(args.quick, args.repeat, args.requests, args.loop, args.sizes)
        _print_pooled(results, args.loop)
        if args.json:
            write_json(args.json, "instructions", results)
            print(f"wrote {args.json}")
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
