"""Server-bound sweep: electron against the same server without it, route by route, size by size.

    python -m bench.sweep [--quick] [--routes hello,bytes] [--sizes 1k,1m] [--variants ...]
                          [--rounds N] [--seconds S] [--connections C] [--json F] [--png F]

Targets ``examples/server.py`` (electron) against ``examples/server.py --no-electron`` (the
baseline) on uvloop, as a user would load-test it: wrk (one thread) on one core, the server
on the other (when the machine has two or more), a fresh set of server processes per route,
every side loaded in turn for ``--seconds``, the order flipped every round. Routes: ``GET /``
(and the hello-world app of ``bench.http`` set up with electron against the app without it),
``GET /json``, ``GET /render?items=100``, ``POST /upload`` of each upload size, and
``GET /bytes/N`` of each size. The baseline also runs under other allocators (``--variants``):
jemalloc and mimalloc (``LD_PRELOAD`` of the system's library, skipped with a note where it is
missing), and glibc with ``MALLOC_MMAP_THRESHOLD_`` of 64 MiB (large bodies then come from
the heap instead of fresh mappings; ``glibc-mmap-trim`` also keeps the freed heap).

Per route: each side's requests per second in every round, electron's ratio to each other
side (median over rounds of the ratio within a round, with a 95% bootstrap interval), the
server's RSS peak (sampled while loaded, and the kernel's high-water mark), its CPU time per
request, and wrk's latency p99 and max. Prints tables, and writes every round's figures as
JSON (``--json``) and a plot of ratio and RSS peak against body size (``--png``).

Needs wrk (``apt-get install wrk``); without it the sweep stops and says so.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ._harness import Result, interpreter_line, machine_info
from ._load import (
    CLIENT_CPU,
    SERVER_CPU,
    Load,
    LoadRun,
    Server,
    alternate,
    cpus,
    median_interval,
    run_wrk,
    wrk_script,
)

__all__ = (
    "BYTES_SIZES",
    "ROUTE_KINDS",
    "UPLOAD_SIZES",
    "VARIANTS",
    "Route",
    "Target",
    "Variant",
    "choose_variants",
    "find_library",
    "main",
    "parse_size",
    "plan_routes",
    "ratio_summary",
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "server.py"
ASGI_EXAMPLE = ROOT / "examples" / "asgi_server.py"
KIB, MIB = 1 << 10, 1 << 20
BYTES_SIZES = (KIB, 16 * KIB, 64 * KIB, 128 * KIB, 256 * KIB, MIB, 4 * MIB, 8 * MIB)
UPLOAD_SIZES = (16 * KIB, MIB, 8 * MIB)
#: The sizes at which ``pooled`` forces the pooled path (the example builds bodies below 128
#: KiB as plain bytes, as a user should: these rows say what the pooled path costs there).
POOLED_SIZES = (KIB, 16 * KIB, 64 * KIB)
#: hello: ``GET /``; hello-mw: bench.http's hello app, set up with electron vs without it;
#: pooled: ``GET /bytes/N?pooled=1``, the pooled path at every size (a diagnostic).
ROUTE_KINDS = ("hello", "hello-mw", "json", "render", "upload", "bytes", "pooled")
#: glibc's mmap threshold in the glibc-mmap variants: above every body the sweep sends.
MMAP_THRESHOLD = 64 * MIB
#: wrk's connections by default, fewer where bodies are large: at most IN_FLIGHT bytes of
#: bodies are under way at once, so that a round of a few seconds still completes many
#: requests (wrk counts only those that completed).
CONNECTIONS, IN_FLIGHT = 16, 32 * MIB
WRK_MISSING = (
    "bench.sweep needs wrk, a real load generator, and it is not on PATH. Install it with "
    "`apt-get install wrk` (Debian, Ubuntu) or build it from https://github.com/wg/wrk. "
    "The sweep does not fall back to Python clients: on a small machine they would be the "
    "bottleneck instead of the server."
)


# -- what is measured ------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """A body size: bytes, or with a k/m suffix (``16k``, ``1MiB``, ``1048576``)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)(?:i?[bB])?\s*", text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (e.g. 1024, 16k, 1m)")
    return int(match.group(1)) << {"": 0, "k": 10, "m": 20}[match.group(2).lower()]


def human_size(n: int) -> str:
    """``n`` bytes as ``16 KiB`` / ``1 MiB`` where it divides, else in bytes."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Route:
    """One line of the sweep: a request wrk repeats and the body size it moves (if sized)."""

    kind: str
    method: str
    path: str
    size: int | None = None

    @property
    def name(self) -> str:
        if self.kind == "hello-mw":
            return "GET / (hello app)"
        if self.kind == "upload":
            return f"POST /upload {human_size(self.size or 0)}"
        return f"{self.method} {self.path}"

    def connections(self) -> int:
        """wrk's connections for this route by default (see ``IN_FLIGHT``)."""
        return max(2, min(CONNECTIONS, IN_FLIGHT // (self.size or 1)))

    def script(self) -> str:
        """The wrk Lua script that sends this request."""
        return wrk_script(self.method, self.size if self.kind == "upload" and self.size else 0)


def plan_routes(kinds: Sequence[str], sizes: Sequence[int] | None = None) -> list[Route]:
    """The routes of ``kinds`` in the sweep's order; ``sizes`` replaces the default body
    sizes of the sized routes (``/bytes/N`` and uploads)."""
    unknown = [k for k in kinds if k not in ROUTE_KINDS]
    if unknown:
        raise ValueError(f"unknown route(s) {', '.join(unknown)}; routes: {', '.join(ROUTE_KINDS)}")
    fixed = {
        "hello": Route("hello", "GET", "/"),
        "hello-mw": Route("hello-mw", "GET", "/"),
        "json": Route("json", "GET", "/json"),
        "render": Route("render", "GET", "/render?items=100"),
    }
    routes: list[Route] = []
    for kind in ROUTE_KINDS:
        if kind not in kinds:
            continue
        if kind in fixed:
            routes.append(fixed[kind])
        elif kind == "upload":
            routes += [Route("upload", "POST", "/upload", n) for n in sizes or UPLOAD_SIZES]
        elif kind == "pooled":
            routes += [Route("pooled", "GET", f"/bytes/{n}?pooled=1", n)
                       for n in sizes or POOLED_SIZES]
        else:
            routes += [Route("bytes", "GET", f"/bytes/{n}", n) for n in sizes or BYTES_SIZES]
    return routes


@dataclass(frozen=True)
class Variant:
    """A baseline variant: the plain server under another allocator or allocator setting.

    ``soname`` is a shared library to preload (found with ``ldconfig -p``; Debian package
    ``package``); ``library`` its path once found, which the sweep looks for in the server's
    memory map to be sure it was loaded.
    """

    name: str
    description: str
    env: dict[str, str] = field(default_factory=dict)
    soname: str | None = None
    package: str | None = None
    library: str | None = None


VARIANTS = {
    v.name: v
    for v in (
        Variant("jemalloc", "--no-electron under jemalloc (LD_PRELOAD)",
                soname="libjemalloc.so.2", package="libjemalloc2"),
        Variant("mimalloc", "--no-electron under mimalloc (LD_PRELOAD)",
                soname="libmimalloc.so.2", package="libmimalloc2.0"),
        Variant("glibc-mmap",
                f"--no-electron, glibc with MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD} (64 MiB)",
                {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}),
        Variant("glibc-mmap-trim",
                f"--no-electron, glibc with MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD} and "
                f"MALLOC_TRIM_THRESHOLD_={2 * MMAP_THRESHOLD} (the trim threshold glibc's own "
                "dynamic mmap threshold would pair with it)",
                {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
                 "MALLOC_TRIM_THRESHOLD_": str(2 * MMAP_THRESHOLD)}),
    )
}
DEFAULT_VARIANTS = ("jemalloc", "mimalloc", "glibc-mmap")


def _ldconfig() -> str:
    """``ldconfig -p``: the dynamic linker's cache ("" where there is no ldconfig)."""
    for exe in (shutil.which("ldconfig"), "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if exe and os.path.exists(exe):
            try:
                return subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=30,
                                      check=False).stdout
            except OSError:
                continue
    return ""


def find_library(soname: str, cache: str) -> str | None:
    """The path of ``soname`` in ``cache`` (``ldconfig -p`` output) that exists, or None."""
    for line in cache.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.split(" (", 1)[0] == soname and os.path.exists(path.strip()):
            return path.strip()
    return None


def choose_variants(names: Sequence[str], cache: str | None = None
                    ) -> tuple[list[Variant], dict[str, str]]:
    """The variants of ``names`` this machine can run, and why each of the others cannot.

    ``cache`` is ``ldconfig -p``'s output (read from the system when None).
    """
    chosen: list[Variant] = []
    skipped: dict[str, str] = {}
    for name in names:
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; variants: {', '.join(VARIANTS)}")
        variant = VARIANTS[name]
        if variant.soname is None:
            chosen.append(variant)
            continue
        if cache is None:
            cache = _ldconfig()
        path = find_library(variant.soname, cache)
        if path is None:
            skipped[name] = (f"{variant.soname} is not in the dynamic linker's cache "
                             f"(ldconfig -p); install Debian's {variant.package}")
            continue
        env = {**variant.env, "LD_PRELOAD": path}
        chosen.append(replace(variant, env=env, library=path))
    return chosen, skipped


@dataclass(frozen=True)
class Target:
    """The servers a sweep compares: electron's side, the baseline, and (aiohttp only) the
    hello-world apps with and without electron."""

    name: str
    electron: list[str]
    baseline: list[str]
    hello: tuple[list[str], list[str]] | None = None


def aiohttp_target(loop: str) -> Target:
    """``examples/server.py`` with and without electron, on ``loop``."""
    cmd = [sys.executable, str(EXAMPLE), "--host", "127.0.0.1", "--port", "0", "--loop", loop]
    hello = [sys.executable, "-m", "bench.http", "--loop", loop, "--serve"]
    return Target("aiohttp", cmd, [*cmd, "--no-electron"],
                  ([*hello, "electron"], [*hello, "plain"]))


def asgi_target(loop: str) -> Target:
    """``examples/asgi_server.py`` (Starlette on uvicorn) with and without electron, on
    ``loop``."""
    cmd = [sys.executable, str(ASGI_EXAMPLE), "--host", "127.0.0.1", "--port", "0", "--loop", loop]
    return Target("asgi", cmd, [*cmd, "--no-electron"])


def command_target(electron: str, baseline: str) -> Target:
    """Servers given as shell-style commands (``{python}`` stands for this interpreter);
    each must print ``listening on http://HOST:PORT`` and listen on a free port."""
    def split(cmd: str) -> list[str]:
        return [part.replace("{python}", sys.executable) for part in shlex.split(cmd)]

    return Target("command", split(electron), split(baseline))


#: What the JSON's figures are, for whoever reads it without this module.
LEGEND = {
    "ratios": "electron's requests/s over each side's, round by round (the two measured "
              "seconds apart), their median and a 95% percentile-bootstrap interval of it",
    "cpu_ratios": "each side's server CPU time per request over electron's, the same way "
                  "(> 1: electron spends less CPU per request)",
    "rss_peak": "bytes, the largest RSS sampled every 50 ms while wrk loaded the server",
    "rss_high_water": "bytes, the kernel's VmHWM after the route (warm-up included)",
    "latency_p99_us, latency_max_us": "wrk's latency, microseconds",
    "cpu_us_per_request": "server CPU time (user + system) during the round / requests wrk "
                          "completed",
    "server_cpu_percent": "the share of one core the server got during the round",
    "loadavg_before, loadavg_after": "os.getloadavg() before and after the route",
}


# -- the figures -----------------------------------------------------------------------------


def ratio_summary(mine: Sequence[float], theirs: Sequence[float]) -> dict[str, Any]:
    """Round-by-round ratios ``mine[i] / theirs[i]``, their median and its 95% bootstrap
    interval (each round's two figures were measured seconds apart, on the same machine)."""
    if len(mine) != len(theirs) or not mine:
        raise ValueError("ratios need the same number (>= 1) of rounds on both sides")
    ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
    low, high = median_interval(ratios)
    return {"rounds": [round(x, 4) for x in ratios], "median": round(statistics.median(ratios), 4),
            "ci95": [round(low, 4), round(high, 4)]}


@dataclass(frozen=True)
class _Side:
    """One server of a route's comparison."""

    label: str
    command: list[str]
    description: str
    env: dict[str, str] = field(default_factory=dict)
    library: str | None = None


def _side_figures(loads: Sequence[Load], idle: int, hwm: int | None, side: _Side
                  ) -> dict[str, Any]:
    """One side of one route: every round's figures and their summary."""
    med = statistics.median
    rounds = [
        {
            "rps": round(x.rps, 1), "requests": x.requests, "errors": x.errors,
            "seconds": round(x.seconds, 3), "cpu_seconds": round(x.cpu_seconds, 4),
            "cpu_us_per_request": round(x.cpu_ns_per_request / 1000, 3),
            "server_cpu_percent": round(x.server_cpu, 1), "rss_peak": x.rss_peak,
            "latency_p99_us": x.latency_p99_us, "latency_max_us": x.latency_max_us,
            "bytes_read": x.bytes_read,
        }
        for x in loads
    ]
    per_response = [x.bytes_read / x.requests for x in loads if x.bytes_read and x.requests]
    return {
        "description": side.description,
        "command": shlex.join(side.command),
        "env": side.env,
        "rounds": rounds,
        "rps_median": round(med(x.rps for x in loads), 1),
        "cpu_us_per_request_median": round(med(x.cpu_ns_per_request for x in loads) / 1000, 3),
        "server_cpu_percent_median": round(med(x.server_cpu for x in loads), 1),
        "latency_p99_us_median": med(x.latency_p99_us or 0.0 for x in loads),
        "latency_max_us": max(x.latency_max_us or 0.0 for x in loads),
        "errors": sum(x.errors for x in loads),
        "bytes_per_response": round(med(per_response)) if per_response else None,
        "rss_idle": idle,
        "rss_peak": max(x.rss_peak for x in loads),
        "rss_high_water": hwm,
    }


def _sides(route: Route, target: Target, variants: Sequence[Variant]) -> list[_Side]:
    """The servers compared on ``route``: electron's first, then the baseline and variants."""
    if route.kind == "hello-mw":
        assert target.hello is not None
        return [_Side("electron", target.hello[0], "hello app set up with electron"),
                _Side("baseline", target.hello[1], "hello app without electron")]
    return [_Side("electron", target.electron, "electron"),
            _Side("baseline", target.baseline, "--no-electron (glibc malloc)"),
            *(_Side(v.name, target.baseline, v.description, v.env, v.library)
              for v in variants)]


def sweep_route(route: Route, target: Target, variants: Sequence[Variant], rounds: int,
                seconds: float, connections: int,
                generator: Callable[..., LoadRun] = run_wrk) -> dict[str, Any]:
    """Measure every side of ``route`` in alternating rounds on fresh servers.

    ``generator`` runs the load (``run_wrk``'s signature, given ``script=``): a wrapper
    may record more of each run (``bench.loadtest`` records wrk's own CPU time)."""
    load_before = os.getloadavg()
    sides = _sides(route, target, variants)
    print(f"{route.name}: {', '.join(s.label for s in sides)}; {rounds} rounds of {seconds:g} s, "
          f"{connections} connections; load average {load_before[0]:.2f}", flush=True)
    servers: dict[str, Server] = {}
    notes: list[str] = []
    try:
        for side in sides:
            server = servers[side.label] = Server(side.label, side.command, side.env)
            if side.library and side.library not in server.maps():
                notes.append(f"{side.label}: {side.library} is not mapped in the server: "
                             "not preloaded")
        idle = {label: s.rss() for label, s in servers.items()}
        load = functools.partial(generator, script=route.script())
        runs = alternate(servers, route.path, rounds, seconds, connections, load)
        hwm = {label: s.rss_high_water() for label, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()
    out: dict[str, Any] = {
        "route": route.name, "kind": route.kind, "method": route.method, "path": route.path,
        "size": route.size, "connections": connections,
        "order": "sides as listed in even rounds (0, 2, ...), reversed in odd rounds",
        "loadavg_before": [round(x, 2) for x in load_before],
        "sides": {
            s.label: _side_figures(runs[s.label], idle[s.label], hwm[s.label], s)
            for s in sides
        },
    }
    mine = [x.rps for x in runs["electron"]]
    out["ratios"] = {label: ratio_summary(mine, [x.rps for x in runs[label]])
                     for label in runs if label != "electron"}
    mine_cpu = [x.cpu_ns_per_request for x in runs["electron"]]
    out["cpu_ratios"] = {label: ratio_summary([x.cpu_ns_per_request for x in runs[label]],
                                              mine_cpu)
                         for label in runs if label != "electron"}
    for label, side in out["sides"].items():
        if side["errors"]:
            notes.append(f"{label}: {side['errors']} errors (non-2xx or socket)")
        short = (side["bytes_per_response"] or 0) < (route.size or 0)
        if route.kind in ("bytes", "pooled") and short:
            notes.append(f"{label}: responses shorter than {route.size} bytes")
    out["notes"] = notes
    for note in notes:
        print(f"  WARNING {note}", flush=True)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def suite_results(routes: Sequence[dict[str, Any]]) -> list[Result]:
    """The sweep as ``bench._harness`` results (for ``python -m bench``'s report): one per
    route and comparison; ns/op is electron's wall time per request (1e9 / req/s)."""
    results = []
    for r in routes:
        rps = r["sides"]["electron"]["rps_median"]
        for label, ratio in r["ratios"].items():
            results.append(Result(
                group="sweep", name=f"{r['route']}: electron", ns_per_op=1e9 / rps,
                baseline=f"{label}: {r['sides'][label]['description']}",
                ratio=ratio["median"], extra={"ci95": ratio["ci95"]},
            ))
    return results


# -- what a person reads ---------------------------------------------------------------------


def _mib(n: int | None) -> str:
    return "" if n is None else f"{n / MIB:.0f}"


def print_tables(doc: dict[str, Any]) -> None:
    """The sweep's figures as two rich tables: throughput ratios, then resources."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    labels = ["baseline", *(v for v in doc["config"]["variants"])]
    t = Table(title="electron's throughput ÷ each side's (median over rounds of the ratio within"
                    " a round, [95% bootstrap interval]); green/red: the interval excludes 1",
              title_justify="left")
    t.add_column("route")
    t.add_column("electron req/s", justify="right")
    t.add_column("baseline req/s", justify="right")
    for label in labels:
        t.add_column(f"vs {label}", justify="right")
    t.add_column("CPU/req: baseline ÷ electron", justify="right")
    for r in doc["routes"]:
        cells = [r["route"], f"{r['sides']['electron']['rps_median']:,.0f}",
                 f"{r['sides']['baseline']['rps_median']:,.0f}"]
        for label in labels:
            ratio = r["ratios"].get(label)
            if ratio is None:
                cells.append("-")
                continue
            low, high = ratio["ci95"]
            color = "green" if low > 1 else "red" if high < 1 else ""
            text = f"{ratio['median']:.2f}x [{low:.2f}-{high:.2f}]"
            cells.append(f"[{color}]{text}[/]" if color else text)
        cpu = r["cpu_ratios"]["baseline"]
        cells.append(f"{cpu['median']:.2f}x [{cpu['ci95'][0]:.2f}-{cpu['ci95'][1]:.2f}]")
        t.add_row(*cells)
    console.print(t)
    sides = ["electron", *labels]
    t = Table(title="RSS peak (MiB, sampled while loaded); electron (e) and baseline (b): "
                    "server CPU time per request, wrk's latency p99 and max, the share of its "
                    "core the server got (medians over rounds)",
              title_justify="left")
    t.add_column("route")
    for label in sides:
        t.add_column(f"RSS {label}", justify="right")
    t.add_column("CPU us/req e / b", justify="right")
    t.add_column("p99 ms e / b", justify="right")
    t.add_column("max ms e / b", justify="right")
    t.add_column("server CPU % e / b", justify="right")
    for r in doc["routes"]:
        s = r["sides"]
        e, b = s["electron"], s["baseline"]
        t.add_row(
            r["route"],
            *(_mib(s[label]["rss_peak"]) if label in s else "-" for label in sides),
            f"{e['cpu_us_per_request_median']:.1f} / {b['cpu_us_per_request_median']:.1f}",
            f"{e['latency_p99_us_median'] / 1000:.1f} / {b['latency_p99_us_median'] / 1000:.1f}",
            f"{e['latency_max_us'] / 1000:.1f} / {b['latency_max_us'] / 1000:.1f}",
            f"{e['server_cpu_percent_median']:.0f} / {b['server_cpu_percent_median']:.0f}",
        )
    console.print(t)
    loads = [x for r in doc["routes"] for x in (r["loadavg_before"][0], r["loadavg_after"][0])]
    if loads:
        console.print(f"1-minute load average around the routes: {min(loads):.2f} to "
                      f"{max(loads):.2f} on {doc['machine']['cores']} cores")
    for name, why in doc["config"]["skipped_variants"].items():
        console.print(f"skipped variant {name}: {why}")


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Throughput ratio and RSS peak against body size (log x) for ``/bytes/N`` and uploads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ratio, ax_rss) = plt.subplots(2, 1, figsize=(10, 9), sharex=True,
                                           constrained_layout=True)
    styles = {"bytes": ("-", "o", "GET /bytes/N"), "upload": ("--", "s", "POST /upload"),
              "pooled": (":", "^", "GET /bytes/N?pooled=1")}
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors: dict[str, str] = {}

    def color_of(label: str) -> str:
        return colors.setdefault(label, palette[len(colors) % len(palette)])

    color_of("electron")
    sizes: set[int] = set()
    for kind, (line, marker, what) in styles.items():
        routes = sorted((r for r in doc["routes"] if r["kind"] == kind), key=lambda r: r["size"])
        if not routes:
            continue
        sizes.update(r["size"] for r in routes)
        labels = list(routes[0]["ratios"])
        for k, label in enumerate(labels):
            color = color_of(label)
            xs = [r["size"] * 1.04 ** (k - len(labels) / 2) for r in routes]  # side by side
            ys = [r["ratios"][label]["median"] for r in routes]
            err = [[y - r["ratios"][label]["ci95"][0] for y, r in zip(ys, routes, strict=True)],
                   [r["ratios"][label]["ci95"][1] - y for y, r in zip(ys, routes, strict=True)]]
            ax_ratio.errorbar(xs, ys, yerr=err, ls=line, marker=marker, color=color, capsize=3,
                              label=f"{what}: electron ÷ {label}")
        for label in ["electron", *labels]:
            color = color_of(label)
            ax_rss.plot([r["size"] for r in routes],
                        [r["sides"][label]["rss_peak"] / MIB for r in routes],
                        ls=line, marker=marker, color=color, label=f"{what}: {label}")
    ax_ratio.axhline(1.0, color="grey", lw=1)
    ax_ratio.set_ylabel("throughput ratio (median, 95% interval)")
    ax_ratio.set_xscale("log", base=2)
    ax_ratio.legend(fontsize=7, ncol=2)
    ax_ratio.grid(True, alpha=0.3)
    ax_rss.set_ylabel("server RSS peak while loaded (MiB)")
    ax_rss.set_xlabel("body size")
    ax_rss.set_xticks(sorted(sizes), [human_size(n) for n in sorted(sizes)])
    ax_rss.minorticks_off()
    ax_rss.legend(fontsize=7, ncol=2)
    ax_rss.grid(True, alpha=0.3)
    m, c = doc["machine"], doc["config"]
    loads = [x for r in doc["routes"] for x in (r["loadavg_before"][0], r["loadavg_after"][0])]
    fig.suptitle(f"bench.sweep: {c['target']} on {c['loop']}, {c['rounds']} rounds x "
                 f"{c['seconds']:g} s, connections {c['connections']}\n{m['cpu']}, "
                 f"{m['cores']} cores (1-minute load average {min(loads):.1f} to "
                 f"{max(loads):.1f}), Python {m['python']} ({m.get('electron_core')})",
                 fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- running it ------------------------------------------------------------------------------


def _wrk_version() -> str:
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).splitlines()[0].strip() if proc.stdout or proc.stderr \
        else "unknown"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI-sized: GET / and /bytes/N at 64 KiB "
                   "and 1 MiB, 2 rounds of 1 s, no variants (unless given)")
    p.add_argument("--routes", help=f"comma-separated, of {', '.join(ROUTE_KINDS)} (default all)")
    p.add_argument("--sizes", help="comma-separated body sizes for /bytes/N and uploads, e.g. "
                   "1k,64k,1m (default: bytes 1k..8m, uploads 16k,1m,8m)")
    p.add_argument("--variants", help="comma-separated baseline variants, of "
                   f"{', '.join(VARIANTS)}, or none (default {','.join(DEFAULT_VARIANTS)})")
    p.add_argument("--rounds", type=int, help="rounds per route (default 4; --quick 2)")
    p.add_argument("--seconds", type=float, help="seconds per side and round (default 3; "
                   "--quick 1); under 1 s wrk is stopped early")
    p.add_argument("--connections", type=int, help=f"wrk connections (default {CONNECTIONS}, "
                   f"fewer for bodies over {IN_FLIGHT // CONNECTIONS >> 20} MiB: at most "
                   f"{IN_FLIGHT >> 20} MiB in flight)")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--server", choices=("aiohttp", "asgi"), default="aiohttp",
                   help="which example to target (default aiohttp: examples/server.py; asgi: "
                   "examples/asgi_server.py on uvicorn)")
    p.add_argument("--server-cmd", help="electron's server as a command instead ({python}: this "
                   "interpreter); it must print 'listening on http://HOST:PORT'")
    p.add_argument("--baseline-cmd", help="the baseline's server as a command (with --server-cmd)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every round's figures here")
    p.add_argument("--png", type=Path, metavar="FILE", help="plot ratio and RSS against size")
    p.add_argument("--from-json", type=Path, metavar="FILE", help="measure nothing: print the "
                   "tables (and with --png, plot) of a sweep's JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        print_tables(saved)
        if args.png:
            print(f"PNG: {plot(saved, args.png)}")
        return 0
    if bool(args.server_cmd) != bool(args.baseline_cmd):
        parser.error("--server-cmd and --baseline-cmd go together")
    kinds = (args.routes.split(",") if args.routes else
             ["hello", "bytes"] if args.quick else list(ROUTE_KINDS))
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")] if args.sizes else (
            [64 * KIB, MIB] if args.quick else None)
        routes = plan_routes([k.strip() for k in kinds if k.strip()], sizes)
        names = args.variants or ("none" if args.quick else ",".join(DEFAULT_VARIANTS))
        variants, skipped = choose_variants(
            [] if names == "none" else [n.strip() for n in names.split(",") if n.strip()])
    except ValueError as exc:
        parser.error(str(exc))
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    target = (command_target(args.server_cmd, args.baseline_cmd) if args.server_cmd
              else asgi_target(args.loop) if args.server == "asgi" else aiohttp_target(args.loop))
    if target.hello is None and any(r.kind == "hello-mw" for r in routes):
        print("skipped the hello app's GET /: it needs bench.http's hello apps "
              "(--server aiohttp)")
        routes = [r for r in routes if r.kind != "hello-mw"]
    rounds = args.rounds or (2 if args.quick else 4)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    for name, why in skipped.items():
        print(f"skipped variant {name}: {why}", flush=True)
    usable = cpus()
    pinning = ({"server_cpu": usable[SERVER_CPU], "wrk_cpu": usable[CLIENT_CPU]}
               if len(usable) >= 2 else {"note": "fewer than 2 usable cores: nothing pinned"})
    print(f"bench.sweep: {len(routes)} routes; sides electron, baseline"
          + "".join(f", {v.name}" for v in variants)
          + f"; {rounds} rounds x {seconds:g} s; pinning {pinning}; {interpreter_line()}",
          flush=True)
    t0 = time.monotonic()
    doc: dict[str, Any] = {
        "suite": "sweep",
        "command": "python -m bench.sweep " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "interpreter": interpreter_line(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "target": target.name, "loop": args.loop, "rounds": rounds, "seconds": seconds,
            "connections": args.connections or f"{CONNECTIONS}, at most {IN_FLIGHT >> 20} MiB "
                           "of bodies in flight",
            "load": _wrk_version(), "pinning": pinning,
            "commands": {"electron": shlex.join(target.electron),
                         "baseline": shlex.join(target.baseline)},
            "variants": {v.name: asdict(v) for v in variants},
            "skipped_variants": skipped,
        },
        "legend": LEGEND,
        "routes": [],
    }
    for route in routes:
        doc["routes"].append(sweep_route(route, target, variants, rounds, seconds,
                                         args.connections or route.connections()))
    doc["seconds"] = round(time.monotonic() - t0, 1)
    doc["results"] = [asdict(r) | {"ops_per_s": r.ops_per_s} for r in suite_results(doc["routes"])]
    print()
    print_tables(doc)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        print(f"JSON: {args.json}")
    if args.png:
        print(f"PNG: {plot(doc, args.png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
