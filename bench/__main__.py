"""The benchmark suite: every micro benchmark and the load test, one combined report.

    python -m bench            # full run (a few minutes)
    python -m bench --quick    # seconds: what CI runs so the benchmarks cannot rot

Each part runs as its own process (``python -m bench.<name> --json FILE``), so a missing
module is reported and skipped (as is ``bench.sweep`` where wrk is not installed: its full
run, every route and size against four baselines, takes about 15 minutes; ``--skip sweep``
leaves it out), and a failing one is reported without stopping the others;
the suite exits 1 if any part failed (exit status != 0, or the load test missed a target).
Writes ``report.md`` and ``report.json`` with machine info into ``--output`` (default: a new
folder under ``reports/``), next to each part's own JSON, log and the load test's report.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench._harness import describe_interpreter, machine_info
from bench._lt._report import summary_table

__all__ = ("MICRO", "main", "render", "run_part")

ROOT = Path(__file__).resolve().parents[1]
# bench.<name> modules written on the shared harness
MICRO = ("micro", "aio", "aio_count", "http", "sweep", "instructions", "text", "leaks")
PARTS = (*MICRO, "loadtest")
# part -> (program it needs on PATH, how to get it): without it the part is skipped, said so
NEEDS = {"sweep": ("wrk", "apt-get install wrk")}


def _new_output() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = ROOT / "reports" / f"bench-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = ROOT / "reports" / f"bench-{stamp}-{n}"
    return path


def _present(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


def _unmet_need(name: str) -> str | None:
    """Why part ``name`` cannot run on this machine (a program it needs is missing), or None."""
    if name in NEEDS and shutil.which(NEEDS[name][0]) is None:
        program, how = NEEDS[name]
        return f"{program} is not installed ({how})"
    return None


def run_part(name: str, cmd: list[str], log: Path, timeout: float, echo: bool = True
             ) -> dict[str, Any]:
    """Run one part as a subprocess, echoing and logging its output; bounded by ``timeout``.

    Returns ``{"name", "command", "status": "ok"|"failed"|"timeout", "exit_code", "seconds",
    "log"}``.
    """
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w", encoding="utf-8") as out, subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env=env, text=True, errors="replace",
    ) as proc:
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                out.write(line)
                if echo:
                    print(f"  {name}| {line}", end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        reader.join(timeout=5)
    status = "timeout" if code is None else "ok" if code == 0 else "failed"
    return {"name": name, "command": shlex.join(cmd), "status": status, "exit_code": code,
            "seconds": round(time.monotonic() - t0, 1), "log": log.name}


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _targets(part: dict[str, Any]) -> tuple[int, int]:
    """(met, missed) targets of one part's results."""
    data = part.get("data") or {}
    if part["name"] == "loadtest":
        ts = [t for sc in data.get("scenarios", []) for s in sc["servers"].values()
              for t in s["targets"] if t["gating"] and t["passed"] is not None]
        return sum(t["passed"] for t in ts), sum(not t["passed"] for t in ts)
    rs = [r for r in data.get("results", []) if r.get("passed") is not None]
    return sum(bool(r["passed"]) for r in rs), sum(not r["passed"] for r in rs)


def _mark(ok: bool | None) -> str:
    return {True: "✅", False: "❌", None: "n/a"}[ok]


def _micro_table(part: dict[str, Any]) -> list[str]:
    data = part.get("data") or {}
    rows = ["| Case | ns/op | ops/s | Ratio | vs | Target |", "|---|---|---|---|---|---|"]
    for r in data.get("results", []):
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else ""
        target = f"{_mark(r['passed'])} {r['target']}" if r.get("target") else ""
        value, per_s = f"{r['ns_per_op']:,.1f}", f"{r['ops_per_s']:,.0f}"
        if (r.get("extra") or {}).get("unit"):  # a count, not a time (bench.instructions)
            value, per_s = f"{r['ns_per_op']:,.0f} ({r['extra']['unit']})", ""
        rows.append(f"| {r['name']} | {value} | {per_s} | {ratio} "
                    f"| {r.get('baseline') or ''} | {target} |")
    return rows


def render(report: dict[str, Any]) -> str:
    """The combined report.md for the suite's ``report`` (the dict report.json holds)."""
    m = report["machine"]
    verdict = "PASSED ✅" if report["passed"] else "FAILED ❌"
    out = [
        "# Benchmark Suite Report: electron", "",
        "## Summary", "",
        f"`{report['command']}` ran {len(report['parts'])} parts"
        + (" (quick, CI-sized)" if report["quick"] else "")
        + f" in {report['seconds']:.0f} s. Overall result: **{verdict}**. Every figure is a "
        "ratio against a baseline measured in the same run.", "",
        "| Part | Status | Targets met | Targets missed | Time (s) | Output |",
        "|---|---|---|---|---|---|",
    ]
    for p in report["parts"]:
        met, missed = _targets(p) if p["status"] not in {"missing", "skipped"} else (0, 0)
        status = {"ok": "✅ ok", "failed": f"❌ failed (exit {p.get('exit_code')})",
                  "timeout": "❌ timed out", "missing": "n/a not present",
                  "skipped": f"n/a skipped: {p.get('reason')}"}[p["status"]]
        out.append(f"| `bench.{p['name']}` | {status} | {met} | {missed} "
                   f"| {p.get('seconds', '')} | {p.get('output', '')} |")
    out += ["", "## Machine", "",
            f"- {m['cpu']}, {m['cores']} cores; {m['platform']}",
            f"- Python {m['python']} ({m['implementation']}); "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
            f"- electron core: {m.get('electron_core', 'unknown')}",
            f"- interpreter: {describe_interpreter(m.get('interpreter'))}",
            f"- {report['started']}", ""]
    for p in report["parts"]:
        out += [f"## bench.{p['name']}", ""]
        if p["status"] == "missing":
            out += ["Not present in this checkout (skipped).", ""]
            continue
        if p["status"] == "skipped":
            out += [f"Skipped: {p.get('reason')}.", ""]
            continue
        out += [f"Command: `{p['command']}`; status {p['status']}; log `{p['log']}`.", ""]
        data = p.get("data")
        if data is None:
            out += ["No results were written (see the log).", ""]
        elif p["name"] == "loadtest":
            out += summary_table(data)
            out += [f"Full report: [{p['output']}]({p['output']})", ""]
            out += [f"![{sc}](loadtest/{png})" for sc, png in data["files"]["png"].items()]
            out.append("")
        else:
            out += _micro_table(p)
            out.append("")
    issues = [p for p in report["parts"] if p["status"] in {"failed", "timeout"}]
    misses = [(p["name"], r) for p in report["parts"] if p["name"] != "loadtest"
              for r in (p.get("data") or {}).get("results", []) if r.get("passed") is False]
    out += ["## Issues Found", ""]
    if not issues and not misses:
        out += ["None.", ""]
    for p in issues:
        out.append(f"- ❌ `bench.{p['name']}` {p['status']} (exit {p['exit_code']}): see "
                   f"`{p['log']}`")
    for name, r in misses:
        out.append(f"- ❌ `bench.{name}`: {r['name']} missed its target {r['target']}"
                   + (f" ({r['ratio']:.2f}x)" if r.get("ratio") is not None else ""))
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0],
        epilog="parts: " + ", ".join(f"bench.{p}" for p in PARTS))
    parser.add_argument("--quick", action="store_true",
                        help="a run of seconds (CI): every part with --quick")
    parser.add_argument("--output", type=Path, help="report folder (default: a new timestamped "
                        "folder under reports/, which git ignores)")
    parser.add_argument("--only", help="comma-separated parts to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out")
    parser.add_argument("--strict", action="store_true",
                        help="also fail when a micro benchmark misses its speed target")
    parser.add_argument("--loadtest-args", default="", help="extra options for bench.loadtest"
                        " (e.g. \"--scenario all\"); it always runs with --compare")
    parser.add_argument("--timeout", type=float, help="seconds allowed per part (default 180 "
                        "with --quick, 1800 otherwise)")
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in (args.only or ",".join(PARTS)).split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; parts: {', '.join(PARTS)}")
    skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    timeout = args.timeout or (180.0 if args.quick else 1800.0)
    outdir: Path = args.output or _new_output()
    outdir.mkdir(parents=True, exist_ok=True)
    quick = ["--quick"] if args.quick else []
    t0 = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    parts: list[dict[str, Any]] = []
    for name in (p for p in PARTS if p in wanted and p not in skip):
        if not _present(name):
            print(f"bench.{name}: not present, skipped", flush=True)
            parts.append({"name": name, "status": "missing"})
            continue
        reason = _unmet_need(name)
        if reason is not None:
            print(f"bench.{name}: skipped: {reason}", flush=True)
            parts.append({"name": name, "status": "skipped", "reason": reason})
            continue
        print(f"bench.{name}: running", flush=True)
        if name == "loadtest":
            lt_dir = outdir / "loadtest"
            (lt_dir / "report.json").unlink(missing_ok=True)  # never report a stale run
            cmd = [sys.executable, "-m", "bench.loadtest", "--compare", *quick, "--output",
                   str(lt_dir), "--progress", "plain", *shlex.split(args.loadtest_args)]
            part = run_part(name, cmd, outdir / "loadtest.log", timeout)
            part["data"] = _load_json(lt_dir / "report.json")
            part["output"] = "loadtest/report.md"
        else:
            js = outdir / f"{name}.json"
            js.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", f"bench.{name}", *quick, "--json", str(js)]
            part = run_part(name, cmd, outdir / f"{name}.log", timeout)
            part["data"] = _load_json(js)
            part["output"] = js.name
        parts.append(part)
    failed = [p for p in parts if p["status"] in {"failed", "timeout"}]
    if args.strict:
        failed += [p for p in parts if p["status"] == "ok" and _targets(p)[1]]
    report = {
        "suite": "bench",
        "command": "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "machine": machine_info(),
        "started": started,
        "seconds": round(time.monotonic() - t0, 1),
        "passed": not failed,
        "parts": parts,
    }
    (outdir / "report.json").write_text(json.dumps(report, indent=2, default=str),
                                        encoding="utf-8")
    (outdir / "report.md").write_text(render(report), encoding="utf-8")
    print()
    for p in parts:
        met, missed = _targets(p) if p["status"] not in {"missing", "skipped"} else (0, 0)
        print(f"  bench.{p['name']:9} {p['status']:8} targets met {met}, missed {missed}")
    print(f"\n{'PASSED' if report['passed'] else 'FAILED'}. Report: {outdir / 'report.md'}")
    print(f"        data: {outdir / 'report.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
