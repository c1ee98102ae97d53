"""HTTP throughput: electron's aiohttp middleware against the same app without it.

    python -m bench.http [--quick] [--json FILE] [--repeat N] [--loop uvloop|asyncio]

Cases (issue 5), each against a baseline served in the same run, round after round; by
default both sides of a round are loaded at the same time on one core (``--schedule
alternate``: one after the other, the order flipped every round):

- hello world: ``GET /`` from an app set up with electron vs the same app without it
  (target: ratio >= 0.97);
- ``GET /bytes/1048576`` from ``examples/server.py`` vs ``examples/server.py --no-electron``,
  with the server's RSS sampled during the load (goal: electron faster, RSS flatter);
- the middleware alone, called in-process on a mocked request (min of N loops): the exact
  CPU time electron adds to a request, which the end-to-end figures can only estimate.

Load comes from ``wrk`` (one thread per server, on the other core) when it is installed,
else from several aiohttp client processes. Servers run on one core (pinned when the machine
has two or more). The figure of each side is the server's CPU time per request (median over
rounds): on a shared machine a server gets anywhere from a third to all of its core from one
second to the next, which moves requests per second by 2x but leaves the CPU spent per
request, the cost the middleware adds to, unchanged. With ``paired`` rounds the hello-world
ratio is the median over rounds of the two sides' CPU per request in the same round (each
round's pair shared the same seconds of the same core); the ratio of the medians is kept in
the JSON. Requests per second (best and median round) and the ratio of each round to the
other side's are reported next to it. Which side's load starts first alternates by round.
The hello world's rounds run in ``--blocks`` blocks, each with a fresh pair of server
processes (two processes of the same code can differ by a few percent for their whole
life); ``--aa`` adds the A/A control, the app without electron on both sides measured the
same way. ``python -m bench.instructions`` counts the same comparison in instructions.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ._harness import Result, add_common_args, print_table, ratio_vs, time_loop, write_json
from ._load import (
    Load,
    LoadRun,
    Server,
    alternate,
    cpus,
    measure,
    median_interval,
    print_round,
    run_wrk,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "server.py"
HELLO_TARGET = 0.97
#: The hello world's variants: set up with electron (``electron-context``: with
#: ``current_arena=True``) or without it (``plain``, what a user without electron runs).
_HELLO_NAMES = {
    "electron": "electron",
    "electron-context": "electron, current_arena=True",
    "plain": "without electron",
}


# -- the servers -----------------------------------------------------------------------------


def _hello_app(variant: str) -> Any:
    """``GET /`` Hello, World! set up with electron or (``plain``) without it."""
    from aiohttp import web

    import electron
    from electron.aio.aiohttp import setup

    async def hello(request: web.Request) -> web.StreamResponse:
        return web.Response(text="Hello, World!")

    app = web.Application()
    if variant in ("electron", "electron-context"):
        # electron-context: current_arena() works in handlers (the context variable is set)
        setup(app, electron.ArenaOfPools(), current_arena=variant == "electron-context")
    app.router.add_get("/", hello)
    return app


async def _serve_hello(variant: str) -> None:
    from aiohttp import web

    runner = web.AppRunner(_hello_app(variant), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"{variant} hello server listening on http://{host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _run_loop(coro: Coroutine[Any, Any, None], loop: str) -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


# -- the load --------------------------------------------------------------------------------


def _client_process(url: str, seconds: float, connections: int, out: Any) -> None:
    """One aiohttp load process: ``connections`` closed loops for ``seconds``."""
    import aiohttp

    async def run() -> tuple[int, int]:
        done = errors = 0
        deadline = time.monotonic() + seconds
        conn = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def loop() -> None:
                nonlocal done, errors
                while time.monotonic() < deadline:
                    try:
                        async with session.get(url) as resp:
                            await resp.read()
                            if resp.status == 200:
                                done += 1
                            else:
                                errors += 1
                    except aiohttp.ClientError:
                        errors += 1

            await asyncio.gather(*(loop() for _ in range(connections)))
        return done, errors

    out.put(asyncio.run(run()))


def _aiohttp_load(url: str, seconds: float, connections: int) -> LoadRun:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = max(2, len(cpus()))
    workers = [
        ctx.Process(
            target=_client_process, args=(url, seconds, max(1, connections // procs), queue)
        )
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=seconds + 60) for _ in workers]
    for w in workers:
        w.join(30)
    done = sum(r[0] for r in results)
    return LoadRun(done / seconds, done, sum(r[1] for r in results))


def _load(url: str, seconds: float, connections: int) -> LoadRun:
    """One run of wrk when it is installed, else of several aiohttp client processes."""
    if shutil.which("wrk"):
        return run_wrk(url, seconds, connections)
    return _aiohttp_load(url, seconds, connections)


def _alternate(
    servers: dict[str, Server], path: str, rounds: int, seconds: float, connections: int
) -> dict[str, list[Load]]:
    """``rounds`` runs per server, one after the other, the order flipped every round."""
    return alternate(servers, path, rounds, seconds, connections, _load)


def paired(
    servers: dict[str, Server], path: str, rounds: int, seconds: float, connections: int
) -> dict[str, list[Load]]:
    """``rounds`` rounds in which every server is loaded at the same time, on one core.

    Both sides of a comparison then share the same seconds of the same core: whatever else
    the machine does disturbs both alike, and the CPU time each spends per request compares
    directly (the scheduler gives each about half the core; the cheaper one serves more).
    """
    names = list(servers)
    runs: dict[str, list[Load]] = {name: [] for name in names}
    if seconds > 1:  # warm up pools, caches and connections
        rounds += 1
    for r in range(rounds):
        got: dict[str, Load] = {}

        def one(name: str, got: dict[str, Load] = got) -> None:
            got[name] = measure(servers[name], path, seconds, connections, _load)

        # Which side's load starts first alternates, so that neither is always the second.
        order = names if r % 2 == 0 else names[::-1]
        threads = [threading.Thread(target=one, args=(name,)) for name in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if seconds > 1 and r == 0:
            continue
        for name in names:
            load = got[name]
            runs[name].append(load)
            print_round(len(runs[name]), rounds - (seconds > 1), name, load)
    return runs


def _result(group: str, name: str, loads: Sequence[Load], server: Server) -> Result:
    """ns/op: the server's CPU time per request (median round)."""
    best = max(loads, key=lambda load: load.rps)
    return Result(
        group=group,
        name=name,
        ns_per_op=statistics.median(load.cpu_ns_per_request for load in loads),
        extra={
            "best_rps": round(best.rps),
            "median_rps": round(statistics.median(load.rps for load in loads)),
            "rounds": [round(load.rps) for load in loads],
            "errors": sum(load.errors for load in loads),
            "server_cpu_percent": round(statistics.median(load.server_cpu for load in loads)),
            "cpu_us_per_request": [round(load.cpu_ns_per_request / 1000, 2) for load in loads],
            "rss_peak_mib": round(max(load.rss_peak for load in loads) / 2**20, 1),
            "rss_end_mib": round(server.rss() / 2**20, 1),
        },
    )


# -- the cases -------------------------------------------------------------------------------


Schedule = Callable[[dict[str, Server], str, int, float, int], dict[str, list[Load]]]


def bench_hello(
    rounds: int,
    seconds: float,
    loop: str,
    schedule: Schedule,
    blocks: int = 1,
    variants: tuple[str, str] = ("electron", "plain"),
) -> list[Result]:
    """Hello world, ``rounds`` rounds in each of ``blocks`` pairs of fresh server processes.

    Two processes running the same code can differ by a few percent for their whole life
    (hash seed, address layout): an A/A run here measured 2.3%. A fresh pair per block
    spreads that difference over the run instead of letting one pair decide it; which side
    starts first alternates by block. ``variants=("plain", "plain")`` is the A/A control.
    """
    name, base = (f"hello: {_HELLO_NAMES[v]}" for v in variants)
    if name == base:
        name, base = f"{name} (A)", f"{base} (B)"
    print(f"hello world: {name} vs {base}, {blocks} block(s) of fresh servers", flush=True)
    runs: dict[str, list[Load]] = {name: [], base: []}
    results: list[Result] = []
    for block in range(blocks):
        servers: dict[str, Server] = {}
        try:
            order = [(name, variants[0]), (base, variants[1])]
            for label, variant in order if block % 2 == 0 else order[::-1]:
                cmd = [sys.executable, "-m", "bench.http", "--serve", variant, "--loop", loop]
                servers[label] = Server(variant, cmd)
            got = schedule(servers, "/", rounds, seconds, 64)
            for label in runs:
                runs[label] += got[label]
            if block == blocks - 1:
                results = [_result("http", label, runs[label], servers[label]) for label in runs]
        finally:
            for s in servers.values():
                s.stop()
    ratio_vs(results, name, base)
    _pair_ratios(results, runs, name, base)
    r = results[0]
    r.extra["blocks"] = blocks
    if schedule is paired:  # both sides shared each round's seconds: compare within rounds
        r.extra["cpu_ratio_of_medians"] = round(r.ratio or 0.0, 3)
        r.ratio = r.extra["cpu_ratio_median"]
    if variants[0] != variants[1]:  # the A/A control has no target
        r.target = f">= {HELLO_TARGET}"
        r.passed = r.ratio is not None and r.ratio >= HELLO_TARGET
    return results


def bench_bytes(rounds: int, seconds: float, loop: str, schedule: Schedule) -> list[Result]:
    print("GET /bytes/1048576: examples/server.py vs --no-electron", flush=True)
    servers: dict[str, Server] = {}
    base = [sys.executable, str(EXAMPLE), "--host", "127.0.0.1", "--port", "0", "--loop", loop]
    try:
        servers["bytes 1 MiB: electron"] = Server("electron", base)
        servers["bytes 1 MiB: --no-electron"] = Server("plain", [*base, "--no-electron"])
        idle = {name: s.rss() for name, s in servers.items()}
        runs = schedule(servers, "/bytes/1048576?seed=7", rounds, seconds, 8)
        results = [_result("http", name, runs[name], servers[name]) for name in servers]
    finally:
        for s in servers.values():
            s.stop()
    for res in results:
        res.extra["rss_idle_mib"] = round(idle[res.name] / 2**20, 1)
        res.extra["rss_growth_mib"] = round(
            res.extra["rss_peak_mib"] - res.extra["rss_idle_mib"], 1
        )
    ratio_vs(results, "bytes 1 MiB: electron", "bytes 1 MiB: --no-electron")
    _pair_ratios(results, runs, "bytes 1 MiB: electron", "bytes 1 MiB: --no-electron")
    results[0].target = "> 1.00 (goal)"
    results[0].passed = results[0].ratio is not None and results[0].ratio > 1.0
    return results


def _pair_ratios(
    results: list[Result], runs: dict[str, list[Load]], name: str, baseline: str
) -> None:
    """Throughput of each round of ``name`` over its neighbouring round of ``baseline``, and
    the baseline's CPU time per request over ``name``'s, round by round."""
    pairs = list(zip(runs[name], runs[baseline], strict=True))
    rps = [a.rps / b.rps for a, b in pairs]
    cpu = [b.cpu_ns_per_request / a.cpu_ns_per_request for a, b in pairs]
    by_name = {r.name: r for r in results}
    by_name[name].extra["cpu_round_ratios"] = [round(x, 3) for x in cpu]
    by_name[name].extra["cpu_ratio_median"] = round(statistics.median(cpu), 3)
    low, high = median_interval(cpu)
    by_name[name].extra["cpu_ratio_median_ci95"] = [round(low, 3), round(high, 3)]
    by_name[name].extra["rps_round_ratios"] = [round(x, 3) for x in rps]
    by_name[name].extra["rps_ratio_median"] = round(statistics.median(rps), 3)
    best = by_name[name].extra["best_rps"] / by_name[baseline].extra["best_rps"]
    by_name[name].extra["rps_ratio_best"] = round(best, 3)


def bench_call(repeat: int, n: int) -> list[Result]:
    """electron's middleware vs an empty one, called directly (no network, no event loop)."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    import electron
    from electron.aio.aiohttp import middleware

    class Writer:  # what the middleware reads of aiohttp's StreamWriter
        output_size = 0
        transport = None

    response = web.Response(text="Hello, World!")

    async def handler(request: web.Request) -> web.StreamResponse:
        return response

    @web.middleware
    async def empty(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request)  # type: ignore[no-any-return]

    def loop_of(mw: Any, request: web.Request) -> Callable[[int], None]:
        call = functools.partial(mw, handler=handler)  # as aiohttp chains middlewares

        def run(count: int) -> None:
            for _ in range(count):
                coro = call(request)
                try:
                    coro.send(None)
                except StopIteration:
                    continue
                raise RuntimeError("the middleware waited: the budget was exhausted")

        return run

    async def measure_all() -> list[Result]:
        request = make_mocked_request("GET", "/", writer=Writer())
        aop = electron.ArenaOfPools()
        cases = {
            "middleware call: electron": loop_of(middleware(aop=aop), request),
            "middleware call: empty": loop_of(empty, request),
        }
        results = [Result("http", name, time_loop(fn, n, repeat)) for name, fn in cases.items()]
        assert aop.statistics().active_arenas == 0
        return results

    results = asyncio.run(measure_all())
    ratio_vs(results, "middleware call: electron", "middleware call: empty")
    results[0].extra["added_ns"] = round(results[0].ns_per_op - results[1].ns_per_op)
    return results


def _print_rss(results: Sequence[Result]) -> None:
    print(
        f"\n{'case':30} {'best req/s':>10} {'median':>8} {'req/s ratio (median, best)':>27} "
        f"{'rss idle':>8} {'rss peak':>8} {'cpu':>5}"
    )
    for r in results:
        x = r.extra
        ratios = ""
        if "rps_ratio_median" in x:
            ratios = f"{x['rps_ratio_median']:.3f}, {x['rps_ratio_best']:.3f}"
        print(
            f"{r.name:30} {x['best_rps']:10,} {x['median_rps']:8,} {ratios:>27} "
            f"{x.get('rss_idle_mib', ''):>8} {x['rss_peak_mib']:>8} {x['server_cpu_percent']:>4}%"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--seconds", type=float, help="seconds per round")
    parser.add_argument(
        "--schedule",
        choices=("paired", "alternate"),
        default="paired",
        help="paired: both sides loaded at once on one core (default); alternate: one after "
        "the other, the order flipped every round",
    )
    parser.add_argument(
        "--blocks",
        type=int,
        help="hello world: pairs of fresh server processes, each loaded for the given rounds "
        "(default: 1 with --quick, else 4)",
    )
    parser.add_argument(
        "--aa",
        action="store_true",
        help="also run the A/A control: hello world without electron on both sides, "
        "measured the same way (how far apart this machine puts two identical servers)",
    )
    parser.add_argument(
        "--serve", choices=("electron", "electron-context", "plain"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        _run_loop(_serve_hello(args.serve), args.loop)
        return 0
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            args.loop = "asyncio"
    rounds = args.repeat or (2 if args.quick else 8)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    blocks = args.blocks or (1 if args.quick else 4)
    tool = "wrk" if shutil.which("wrk") else "aiohttp client processes (wrk not installed)"
    print(
        f"load: {tool}; {rounds} {args.schedule} rounds of {seconds:g} s per side "
        f"(hello world: in each of {blocks} blocks of fresh servers); loop: {args.loop}"
    )
    schedule: Schedule = paired if args.schedule == "paired" else _alternate
    results = bench_hello(rounds, seconds, args.loop, schedule, blocks)
    hello_plain = results[1]
    if args.aa:
        results += bench_hello(rounds, seconds, args.loop, schedule, blocks, ("plain", "plain"))
    results += bench_bytes(rounds, seconds, args.loop, schedule)
    for r in results:
        r.extra["load"] = tool
    calls = bench_call(repeat=5 if args.quick else 15, n=20_000 if args.quick else 100_000)
    added = calls[0].extra["added_ns"]
    calls[0].extra["implied_hello_ratio"] = round(
        hello_plain.ns_per_op / (hello_plain.ns_per_op + added), 3
    )
    print_table("bench.http (ns/op: server CPU per request; ratio: baseline / electron)", results)
    for r in results:
        hello = r.extra
        if r.name.startswith("hello") and "cpu_ratio_median_ci95" in hello:
            low, high = hello["cpu_ratio_median_ci95"]
            print(
                f"{r.name}, CPU per request round by round: median ratio "
                f"{hello['cpu_ratio_median']:.3f} (95% bootstrap interval {low:.3f}-{high:.3f}"
                f", {len(hello['cpu_round_ratios'])} rounds in {hello['blocks']} blocks; "
                f"rounds range {min(hello['cpu_round_ratios']):.3f}-"
                f"{max(hello['cpu_round_ratios']):.3f})"
            )
    _print_rss(results)
    print_table("the middleware alone (ns per call, in-process)", calls)
    print(
        f"electron's middleware adds {added} ns of CPU to a request; against the "
        f"{hello_plain.ns_per_op / 1000:.1f} us a hello world without electron costs here "
        f"that is a ratio of {calls[0].extra['implied_hello_ratio']:.3f}"
    )
    results += calls
    if args.json:
        write_json(args.json, "http", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
