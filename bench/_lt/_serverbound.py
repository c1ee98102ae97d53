"""The server-bound part of ``--compare``: the mix's routes measured by ``bench.sweep``.

The Python clients verify every body, but on a small machine they (not the server) set the
pace. Throughput and latency for the verdict therefore come from ``bench.sweep``'s method:
wrk (one thread) on one core, the server on the other, a fresh pair of servers per route,
alternating rounds, the median ratio with a bootstrap interval, the RSS peak. ``WrkRecorder``
wraps ``bench._load.run_wrk`` to record, per run, what the sweep does not: wrk's own CPU time
(to tell when the load generator was the bottleneck) and its p50/p99.9 latencies.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .._load import CLIENT_CPU, SERVER_CPU, LoadRun, cpus, run_wrk, wrk_script
from ._config import Config
from ._mix import Route as MixRoute
from ._mix import parse_mix
from ._server import ASGI_SCRIPT, DEFAULT_SCRIPT

__all__ = (
    "QUICK",
    "STANDARD",
    "WRK_INSTALL",
    "WrkRecorder",
    "attach_runs",
    "plan",
    "run_server_bound",
    "skipped",
)

#: (rounds, seconds per side and round) of the server-bound part.
QUICK = (3, 1.0)
STANDARD = (5, 2.0)
WRK_INSTALL = "`apt-get install wrk` (Debian, Ubuntu) or build https://github.com/wg/wrk"


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have been waited for:
    a wrk run's own CPU time is the difference around it (``run_wrk`` waits for wrk)."""
    t = psutil.Process().cpu_times()
    return float(t.children_user + t.children_system)


def _extra_hook(path: Path) -> str:
    """Lua wrapping the script's ``done`` hook: also write wrk's p50, p99.9 and the number of
    latencies it recorded, as JSON, to ``path``."""
    return f"""
local bench_done = done
done = function(summary, latency, requests)
  local f = io.open({json.dumps(str(path))}, "w")
  if f then
    f:write(string.format('{{"p50_us": %.0f, "p999_us": %.0f}}',
                          latency:percentile(50), latency:percentile(99.9)))
    f:close()
  end
  if bench_done then bench_done(summary, latency, requests) end
end
"""


@dataclass
class WrkRecorder:
    """A load generator for ``bench.sweep.sweep_route``: ``run_wrk``, and for each run wrk's
    CPU time and wall time, and its p50 and p99.9 latency, in ``runs`` (in call order)."""

    runs: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, url: str, seconds: float, connections: int,
                 script: str | None = None) -> LoadRun:
        with tempfile.TemporaryDirectory(prefix="bench-lt-wrk-") as tmp:
            extra = Path(tmp) / "extra.json"
            cpu0, t0 = _children_cpu(), time.monotonic()
            run = run_wrk(url, seconds, connections,
                          (script if script is not None else wrk_script()) + _extra_hook(extra))
            wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
            try:
                figures = json.loads(extra.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                figures = {}
        self.runs.append({
            "url": url, "cpu_s": cpu, "wall_s": wall,
            "cpu_percent": 100 * cpu / wall if wall > 0 else None,
            "latency_p50_us": figures.get("p50_us"), "latency_p999_us": figures.get("p999_us"),
        })
        return run


def attach_runs(route: dict[str, Any], runs: Sequence[dict[str, Any]]) -> None:
    """Add the recorder's figures of one route's runs to the route's sides, round by round.

    ``bench._load.alternate`` loads the sides in their listed order first (warm-ups, then
    round 1), so the n-th URL seen is the n-th side; each side's last runs are its rounds.
    """
    urls = list(dict.fromkeys(r["url"] for r in runs))
    for side, url in zip(route["sides"].values(), urls, strict=False):
        mine = [r for r in runs if r["url"] == url][-len(side["rounds"]):]
        if len(mine) != len(side["rounds"]):
            continue
        for rnd, run in zip(side["rounds"], mine, strict=True):
            rnd["client_cpu_percent"] = (None if run["cpu_percent"] is None
                                         else round(run["cpu_percent"], 1))
            rnd["latency_p50_us"] = run["latency_p50_us"]
            rnd["latency_p999_us"] = run["latency_p999_us"]
        cpu = [r["cpu_percent"] for r in mine if r["cpu_percent"] is not None]
        side["client_cpu_percent_median"] = round(statistics.median(cpu), 1) if cpu else None
        p999 = [r["latency_p999_us"] for r in mine if r["latency_p999_us"] is not None]
        side["latency_p999_us_median"] = statistics.median(p999) if p999 else None


def plan(mix: Sequence[MixRoute]) -> list[Any]:
    """``bench.sweep`` routes for the routes of the load test's mix, in the mix's order."""
    from bench.sweep import Route

    out: list[Route] = []
    for r in mix:
        if r.kind == "upload":
            out.append(Route("upload", "POST", "/upload", r.size))
        elif r.kind == "bytes":
            out.append(Route("bytes", "GET", r.name, r.size))
        else:
            out.append(Route(r.kind, "GET", r.name))
    return out


def skipped(reason: str) -> dict[str, Any]:
    """The server-bound part's record when it did not run, and why."""
    return {"ran": False, "skipped": reason, "routes": []}


def run_server_bound(cfg: Config, *, enabled: bool = True, rounds: int | None = None,
                     seconds: float | None = None) -> dict[str, Any]:
    """Sweep the routes of ``cfg``'s mix, electron against ``--no-electron``, server-bound.

    Returns a skipped record (with the reason) when it cannot or should not run: without
    wrk, against ``--url`` servers (it must start and pin its own), or when not ``enabled``.
    A route that fails (a server that does not start, wrk failing) is recorded with its
    error; the others still run.
    """
    if not enabled:
        return skipped("--no-sweep was given")
    if cfg.url:
        return skipped("--url: the server-bound part starts its own servers, to pin each to "
                       "a core of its own")
    if shutil.which("wrk") is None:
        return skipped(f"wrk is not installed: {WRK_INSTALL}")
    from bench.sweep import _wrk_version, aiohttp_target, asgi_target, command_target, sweep_route

    default_rounds, default_seconds = QUICK if cfg.quick else STANDARD
    rounds = rounds or default_rounds
    seconds = seconds or default_seconds
    script = Path(cfg.server_script).resolve()
    if script == DEFAULT_SCRIPT:
        target = aiohttp_target("uvloop")
    elif script == ASGI_SCRIPT:
        target = asgi_target("uvloop")
    else:
        cmd = f"{{python}} {cfg.server_script} --host 127.0.0.1 --port 0"
        target = command_target(cmd, cmd + " --no-electron")
    usable = cpus()
    pinning: dict[str, Any] = ({"server_cpu": usable[SERVER_CPU], "wrk_cpu": usable[CLIENT_CPU]}
                               if len(usable) >= 2 else
                               {"note": "fewer than 2 usable cores: nothing pinned"})
    t0 = time.monotonic()
    routes: list[dict[str, Any]] = []
    for route in plan(parse_mix(cfg.mix, cfg.upload_size)):
        recorder = WrkRecorder()
        try:
            doc = sweep_route(route, target, [], rounds, seconds, route.connections(),
                              generator=recorder)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"  {route.name}: not measured: {exc}", flush=True)
            routes.append({"route": route.name, "kind": route.kind, "error": str(exc)})
            continue
        attach_runs(doc, recorder.runs)
        routes.append(doc)
    return {
        "ran": True,
        "skipped": None,
        "config": {
            "method": "bench.sweep: wrk (1 thread) and the server pinned to different cores, "
                      "a fresh pair of servers per route, electron and --no-electron loaded in "
                      "alternating rounds (order flipped every round)",
            "rounds": rounds, "seconds": seconds, "loop": "uvloop" if target.name != "command"
            else "the server's default", "load": _wrk_version(), "pinning": pinning,
            "workers": 1, "commands": {"electron": " ".join(target.electron),
                                       "baseline": " ".join(target.baseline)},
            "python": sys.version.split()[0],
        },
        "routes": routes,
        "seconds": round(time.monotonic() - t0, 1),
    }
