"""Load-test the example server and write a report a person wants to read.

    python -m bench.loadtest                      # electron server, the default mix, ~15 s
    python -m bench.loadtest --compare            # electron vs --no-electron, alternating rounds
    python -m bench.loadtest --scenario stress    # or soak, burst, slow-readers, all
    python -m bench.loadtest --server asgi        # examples/asgi_server.py (Starlette, uvicorn)
    python -m bench.loadtest --url http://127.0.0.1:8080   # a server you started yourself

Starts ``examples/server.py`` (aiohttp; ``--server asgi``: ``examples/asgi_server.py``, the
same routes on Starlette and uvicorn) or loads ``--url``, drives it with several aiohttp client
processes, verifies every response body, and writes ``report.md``, ``report.json`` and one
PNG per scenario into ``--output`` (default: a new folder under ``reports/``). Exits 1 when a
target fails (error rate, wrong bodies, leaked arenas, RSS growth), 2 when it cannot run.

With ``--compare`` the throughput and latency verdict comes from a server-bound measurement
of the mix's routes (``bench.sweep``'s method: wrk on one core, the server on the other,
alternating rounds, the median ratio with a bootstrap interval); the Python clients, which
share the cores with the server, verify the bodies. Without wrk that part is skipped and the
report says why.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench._harness import machine_info
from bench._lt._config import SCENARIOS, Config, resolve
from bench._lt._mix import DEFAULT_MIX, ROUTE_HELP, parse_mix
from bench._lt._progress import make_progress
from bench._lt._report import (
    SUMMARY_HEADER,
    assemble,
    render_markdown,
    write_json,
    write_markdown,
)
from bench._lt._results import summarize
from bench._lt._runner import execute
from bench._lt._server import EXAMPLES, ServerError
from bench._lt._serverbound import QUICK, STANDARD, run_server_bound
from bench._lt._verdict import analyze_server_bound, verdict_lines

__all__ = ("REPORTS", "build_parser", "main", "run")

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench.loadtest`` (every option explained in --help)."""
    p = argparse.ArgumentParser(
        prog="python -m bench.loadtest",
        description=__doc__.split("\n\n")[0] + " Starts examples/server.py itself (or uses "
        "--url), verifies every response body, and writes report.md, report.json and a PNG.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n" + "\n".join(
            f"  {s.name:13} {s.description} ({s.settings['duration']:g} s per server)"
            for s in SCENARIOS.values())
        + "\n  all           every scenario above, one after the other"
        + "\n\nexit status: 0 every target met, 1 a target failed, 2 could not run",
    )
    g = p.add_argument_group("target")
    g.add_argument("--compare", action="store_true", default=None,
                   help="also run examples/server.py --no-electron as the baseline; the two "
                   "take turns in rounds so both see the same machine noise")
    g.add_argument("--url", help="load this running server instead of starting one "
                   "(e.g. http://127.0.0.1:8080)")
    g.add_argument("--baseline-url", help="with --url and --compare: the baseline server")
    g.add_argument("--server-pid", type=int, help="with --url: PID whose RSS to watch")
    g.add_argument("--baseline-pid", type=int, help="with --baseline-url: PID whose RSS to "
                   "watch")
    g.add_argument("--workers", type=int, help="server worker processes (passed to the "
                   "server's --workers; RSS counts them all; default 1)")
    g.add_argument("--server", choices=tuple(EXAMPLES), help="the example to start: aiohttp "
                   "(examples/server.py, the default) or asgi (examples/asgi_server.py, "
                   "Starlette on uvicorn); the baseline is the same example with --no-electron")
    g.add_argument("--server-script", type=Path, help="the server to start instead of an "
                   "example; it must print 'listening on http://HOST:PORT'")

    g = p.add_argument_group("load")
    g.add_argument("--scenario", default="mixed", help="preset: " + ", ".join(SCENARIOS)
                   + ", or 'all'; several may be given comma-separated (default: mixed)")
    g.add_argument("--concurrency", type=int, help="concurrent client connections, each "
                   "sending its next request when its last one is answered")
    g.add_argument("--duration", type=float, help="seconds of load per server, split into "
                   "--rounds (default: the scenario's, 10 s for mixed)")
    g.add_argument("--requests", type=int, help="stop after this many requests per server "
                   "(the duration still bounds the time; 300 s unless --duration is given)")
    g.add_argument("--rounds", type=int, help="rounds per server (alternating with the "
                   "baseline under --compare)")
    g.add_argument("--warmup", type=float, help="seconds of unmeasured load per server first")
    g.add_argument("--mix", help=f"route weights PATH=W,... (default {DEFAULT_MIX!r}); "
                   f"routes: {ROUTE_HELP}")
    g.add_argument("--upload-size", type=int, help="bytes per POST /upload (default 16384)")
    g.add_argument("--timeout", type=float, help="seconds before one request counts as a "
                   "timeout error (default 30)")
    g.add_argument("--procs", type=int, help="client processes (default: automatic, one per "
                   "core up to 4, at least 2 on a multi-core machine)")
    g.add_argument("--slow-readers", type=int, help="clients that download big /bytes bodies "
                   "through a small receive buffer, slowly (slow-readers scenario: 8)")
    g.add_argument("--slow-size", type=int, help="body size for slow readers (default 1 MiB)")
    g.add_argument("--slow-rcvbuf", type=int, help="slow readers' SO_RCVBUF (default 4096)")
    g.add_argument("--slow-chunk", type=int, help="bytes a slow reader reads at a time "
                   "(default 8192)")
    g.add_argument("--slow-pause", type=float, help="seconds a slow reader sleeps between "
                   "reads (default 0.002)")
    g.add_argument("--burst-factor", type=int, help="during the middle third of each round "
                   "run this many times --concurrency clients (burst scenario: 10)")
    g.add_argument("--seed", type=int, help="random seed of the request mix (default 1)")
    g.add_argument("--no-client-uvloop", dest="client_uvloop", action="store_false",
                   default=None, help="run the client processes on asyncio's own loop")

    g = p.add_argument_group("targets")
    g.add_argument("--max-error-rate", type=float, help="percent of failed requests "
                   "allowed (default 1)")
    g.add_argument("--max-rss-growth-mib", type=float, help="allowed growth of the electron "
                   "server's RSS, MiB (default: the scenario's, 64 for mixed)")
    g.add_argument("--rss-window", choices=("run", "second-half"), help="RSS growth measured "
                   "from after the warm-up ('run') or from half-way ('second-half', soak)")

    g = p.add_argument_group("output")
    g.add_argument("--output", type=Path, help="report folder (default: a new timestamped "
                   "folder under reports/, which git ignores)")
    g.add_argument("--json", type=Path, metavar="FILE", help="also copy report.json here")
    g.add_argument("--interval", type=float, help="seconds per point of the time charts "
                   "(default: automatic)")
    g.add_argument("--progress", choices=("auto", "rich", "plain", "quiet"), default="auto",
                   help="live display: rich on a terminal, plain lines otherwise (auto)")
    g.add_argument("--quick", action="store_true", default=None,
                   help="a short run for CI: 2 s per server in 2 rounds (and the "
                   f"server-bound part in {QUICK[0]} rounds of {QUICK[1]:g} s per route)")

    g = p.add_argument_group("server-bound verdict (with --compare; needs wrk)")
    g.add_argument("--no-sweep", dest="sweep", action="store_false",
                   help="skip the server-bound measurement (wrk): no throughput verdict")
    g.add_argument("--sweep-rounds", type=int, help="its rounds per route (default "
                   f"{STANDARD[0]}; --quick {QUICK[0]})")
    g.add_argument("--sweep-seconds", type=float, help="its seconds per side and round "
                   f"(default {STANDARD[1]:g}; --quick {QUICK[1]:g})")
    return p


_CONFIG_KEYS = (
    "compare", "url", "baseline_url", "server_pid", "baseline_pid", "workers", "server_script",
    "concurrency", "duration", "requests", "rounds", "warmup", "mix", "upload_size", "timeout",
    "procs", "slow_readers", "slow_size", "slow_rcvbuf", "slow_chunk", "slow_pause",
    "burst_factor", "seed", "client_uvloop", "max_error_rate", "max_rss_growth_mib",
    "rss_window", "interval", "quick",
)


def _scenarios(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names == ["all"]:
        return list(SCENARIOS)
    return names


def _new_output() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = REPORTS / f"loadtest-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = REPORTS / f"loadtest-{stamp}-{n}"
    return path


def _title(configs: list[Config]) -> str:
    asgi = any(Path(c.server_script).resolve() == EXAMPLES["asgi"] for c in configs)
    t = f"electron {'ASGI ' if asgi else ''}example server under load"
    return t + (" — electron vs --no-electron baseline" if any(c.compare for c in configs)
                else "")


def _server_bound(configs: list[Config], sweep: dict[str, Any], cores: int | None,
                  progress: str) -> dict[str, Any] | None:
    """The server-bound measurement of the first ``--compare`` config's mix, analysed."""
    cfg = next((c for c in configs if c.compare), None)
    if cfg is None:
        return None
    out = io.StringIO() if progress == "quiet" else sys.stdout
    with contextlib.redirect_stdout(out):
        print("server-bound measurement (wrk; the verdict's throughput and latency):",
              flush=True)
        doc = run_server_bound(cfg, enabled=sweep.get("enabled", True),
                               rounds=sweep.get("rounds"), seconds=sweep.get("seconds"))
        if not doc["ran"]:
            print(f"  skipped: {doc['skipped']}", flush=True)
    return analyze_server_bound(doc, cores)


def run(configs: list[Config], outdir: Path, progress: str = "auto",
        command: str = "", sweep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every config (one per scenario), then (with ``--compare``) the server-bound
    measurement, write the report files, return report.json's dict.

    ``sweep`` holds the server-bound part's options: ``enabled``, ``rounds``, ``seconds``.
    Raises ``ServerError`` when a server cannot be started.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    ui = make_progress(progress)
    machine = machine_info()
    scenarios: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        for cfg in configs:
            ui.log(f"scenario {cfg.scenario}: {SCENARIOS[cfg.scenario].description}")
            data = execute(cfg, outdir, ui)
            scenarios.append(summarize(data, SCENARIOS[cfg.scenario].description))
    finally:
        ui.close()
    server_bound = _server_bound(configs, sweep or {}, machine.get("cores"), progress)
    report = assemble(title=_title(configs), command=command, machine=machine,
                      started=started, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      scenarios=scenarios, server_bound=server_bound)
    from bench._lt._plot import plot_scenario  # here: matplotlib is slow to import

    mach = f"{machine['cpu']}, {machine['cores']} cores, Python {machine['python']}"
    for sc in scenarios:
        name = f"loadtest-{sc['scenario']}.png"
        plot_scenario(sc, outdir / name, mach)
        report["files"]["png"][sc["scenario"]] = name
    write_json(report, outdir / "report.json")
    write_markdown(report, outdir / "report.md")
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in _CONFIG_KEYS}
    try:
        if args.server is not None:
            if args.server_script or args.url:
                raise ValueError("--server starts an example: not with --server-script or --url")
            overrides["server_script"] = EXAMPLES[args.server]
        names = _scenarios(args.scenario)
        configs = [resolve(name, overrides) for name in names]
        for cfg in configs:
            parse_mix(cfg.mix, cfg.upload_size)
        if (args.sweep_rounds is not None and args.sweep_rounds < 1) or (
                args.sweep_seconds is not None and args.sweep_seconds <= 0):
            raise ValueError("--sweep-rounds must be >= 1 and --sweep-seconds > 0")
    except ValueError as exc:
        print(f"bench.loadtest: {exc}", file=sys.stderr)
        return 2
    outdir = args.output or _new_output()
    command = "python -m bench.loadtest " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        report = run(configs, outdir, args.progress, command.strip(),
                     {"enabled": args.sweep, "rounds": args.sweep_rounds,
                      "seconds": args.sweep_seconds})
    except (ServerError, RuntimeError) as exc:  # no server, or a client process failed
        print(f"bench.loadtest: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outdir / "report.json", args.json)
    md = render_markdown(report)
    table = md[md.index(SUMMARY_HEADER):].split("\n\n", 1)[0]
    print()
    print(table)
    print()
    if report["server_bound"] is not None:
        print("\n".join(verdict_lines(report["server_bound"])))
        print()
    for sc in report["scenarios"]:
        for i in sc["issues"]:
            print(f"issue ({i['severity']}, {sc['scenario']}): {i['title']}")
    verdict = "PASSED" if report["passed"] else "FAILED"
    print(f"\n{verdict}. Report: {outdir / 'report.md'}")
    print(f"        data: {outdir / 'report.json'}")
    for png in report["files"]["png"].values():
        print(f"       chart: {outdir / png}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
