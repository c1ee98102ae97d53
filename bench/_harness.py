"""Shared plumbing for benchmark cases: min-of-N timing, ratios, machine info, JSON.

A case times a *loop* function ``fn(n)`` that runs its body ``n`` times (so the cost of
calling from the harness is amortised), repeats it, and keeps the fastest run: the minimum
is the run least disturbed by the rest of a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = (
    "Result",
    "add_common_args",
    "describe_interpreter",
    "interpreter_info",
    "interpreter_line",
    "machine_info",
    "print_table",
    "ratio_vs",
    "time_cases",
    "time_loop",
    "write_json",
)


@dataclass
class Result:
    """One measured case; ``ratio`` is baseline time / this time (> 1: faster than it)."""

    group: str
    name: str
    ns_per_op: float
    baseline: str | None = None
    ratio: float | None = None
    target: str | None = None
    passed: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ops_per_s(self) -> float:
        return 1e9 / self.ns_per_op if self.ns_per_op else float("inf")


def time_loop(fn: Callable[[int], object], n: int, repeat: int) -> float:
    """Nanoseconds per iteration of ``fn(n)``, the minimum over ``repeat`` runs."""
    fn(max(1, n // 10))  # warm up caches, pools and the specialising interpreter
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            fn(n)
            best = min(best, time.perf_counter_ns() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best / n


def time_cases(cases: dict[str, Callable[[int], object]], n: int, repeat: int) -> dict[str, float]:
    """Nanoseconds per iteration of each case, the minimum over ``repeat`` runs.

    The cases take turns (round robin), so that a burst of load elsewhere on a shared
    machine hits all of them alike instead of every run of one case.
    """
    for fn in cases.values():
        fn(max(1, n // 10))  # warm up caches, pools and the specialising interpreter
    best = dict.fromkeys(cases, float("inf"))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, fn in cases.items():
                t0 = time.perf_counter_ns()
                fn(n)
                best[name] = min(best[name], time.perf_counter_ns() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: ns / n for name, ns in best.items()}


def ratio_vs(results: Sequence[Result], name: str, baseline: str) -> None:
    """Fill in ``ratio`` of result ``name`` against result ``baseline`` of the same run."""
    by_name = {r.name: r for r in results}
    r, b = by_name[name], by_name[baseline]
    r.baseline = baseline
    r.ratio = b.ns_per_op / r.ns_per_op


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _core() -> str:
    """Which electron core the figures come from: a stale compiled build runs pure Python."""
    try:
        import electron
    except ImportError:  # pragma: no cover - bench always has electron installed
        return "unavailable"
    return "compiled (mypyc)" if electron.COMPILED else "pure Python"


def _libpython() -> str | None:
    """The shared libpython this process runs on, "static" when the interpreter has it built
    in, None where it cannot be told (no /proc)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.rsplit(" ", 1)[-1]
        if "/libpython" in path:
            return path
    return "static"


def interpreter_info() -> dict[str, Any]:
    """How this CPython was built, which moves every absolute figure by 15-40 %.

    A build with profile-guided and link-time optimisation and libpython linked into the
    executable (Debian's and Ubuntu's ``python3``, python.org's Docker images) runs pure Python
    code much faster than a plain ``./configure --enable-shared`` build (pyenv's default).
    Debian's build does not record its optimisation in ``CONFIG_ARGS``, so an empty
    ``configure_optimisations`` does not prove a build unoptimised.
    """
    args = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    flags = [f for f in ("--enable-optimizations", "--with-lto") if f in args]
    return {
        # A venv's python may be a copy: name the interpreter it was made from.
        "executable": str(Path(getattr(sys, "_base_executable", sys.executable)).resolve()),
        "libpython": _libpython(),
        "configure_optimisations": flags,
        "compiler": platform.python_compiler(),
    }


def describe_interpreter(info: dict[str, Any] | None) -> str:
    """``interpreter_info()`` (as stored in a report) in a few words, for reports; "not
    recorded" for a report made before reports recorded it."""
    if info is None:
        return "not recorded"
    lib = info.get("libpython")
    linked = "libpython built in" if lib == "static" else f"libpython {lib or 'unknown'}"
    opt = " ".join(info.get("configure_optimisations", ())) or "no optimisation flags recorded"
    return f"{info.get('executable', 'unknown')} ({linked}; {opt})"


def interpreter_line() -> str:
    """One line saying which interpreter ran a benchmark, for the printed tables."""
    version = f"{platform.python_implementation()} {sys.version.split()[0]}"
    return f"{version} {describe_interpreter(interpreter_info())}"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = ("electron", "aiohttp", "anyio", "uvloop", "trio", "msgspec")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "interpreter": interpreter_info(),
        "platform": platform.platform(),
        "versions": {lib: _version(lib) for lib in libs},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "electron_core": _core(),
    }


def print_table(title: str, results: Sequence[Result]) -> None:
    """A plain-text table of ``results`` (no third-party dependency)."""
    print(f"\n{title}")
    header = f"{'case':44} {'ns/op':>10} {'ops/s':>14} {'ratio':>8}  vs / target"
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{r.ratio:7.2f}x" if r.ratio is not None else ""
        note = r.baseline or ""
        if r.target:
            mark = {True: "PASS", False: "FAIL", None: ""}[r.passed]
            note = f"{note}  [{r.target}: {mark}]".strip()
        print(f"{r.name:44} {r.ns_per_op:10.1f} {r.ops_per_s:14,.0f} {ratio:>8}  {note}")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a short run for CI (seconds)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--repeat", type=int, default=None, help="runs per case (min is kept)")


def write_json(path: str | os.PathLike[str], suite: str, results: Sequence[Result]) -> None:
    payload = {
        "suite": suite,
        "machine": machine_info(),
        "results": [asdict(r) | {"ops_per_s": r.ops_per_s} for r in results],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2))
