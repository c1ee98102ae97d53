"""``python -m bench``: parts run as subprocesses; failures are reported, not hidden."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import render, run_part


def test_run_part_ok_failed_and_timeout(tmp_path: Path) -> None:
    ok = run_part("ok", [sys.executable, "-c", "print('fine')"], tmp_path / "ok.log", 30,
                  echo=False)
    assert ok["status"] == "ok"
    assert ok["exit_code"] == 0
    assert (tmp_path / "ok.log").read_text() == "fine\n"
    bad = run_part("bad", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
                   tmp_path / "bad.log", 30, echo=False)
    assert bad["status"] == "failed"
    assert bad["exit_code"] == 3
    assert "boom" in (tmp_path / "bad.log").read_text()
    slow = run_part("slow", [sys.executable, "-c", "import time; time.sleep(60)"],
                    tmp_path / "slow.log", 0.5, echo=False)
    assert slow["status"] == "timeout"
    assert slow["exit_code"] is None


def _suite_report(parts: list[dict[str, Any]], passed: bool) -> dict[str, Any]:
    machine = {"cpu": "Test CPU", "cores": 2, "platform": "Linux", "python": "3.11",
               "implementation": "CPython", "versions": {"aiohttp": "3.14"}}
    return {"command": "python -m bench --quick", "quick": True, "machine": machine,
            "started": "now", "seconds": 3.0, "passed": passed, "parts": parts}


def test_combined_report_lists_every_part_and_its_failures() -> None:
    micro = {"name": "micro", "status": "ok", "exit_code": 0, "seconds": 1.0, "log": "micro.log",
             "command": "python -m bench.micro --quick", "output": "micro.json",
             "data": {"results": [
                 {"name": "pooled", "ns_per_op": 100.0, "ops_per_s": 1e7, "ratio": 2.0,
                  "baseline": "plain", "target": ">= 1x", "passed": True},
                 {"name": "seed", "ns_per_op": 5000.0, "ops_per_s": 2e5, "ratio": 0.1,
                  "baseline": "plain", "target": ">= 1,000,000 ops/s", "passed": False},
             ]}}
    aio = {"name": "aio", "status": "failed", "exit_code": 1, "seconds": 0.5, "log": "aio.log",
           "command": "python -m bench.aio --quick", "output": "aio.json", "data": None}
    http = {"name": "http", "status": "missing"}
    md = render(_suite_report([micro, aio, http], passed=False))
    assert md.startswith("# Benchmark Suite Report")
    for heading in ("## Summary", "## Machine", "## bench.micro", "## bench.aio",
                    "## bench.http", "## Issues Found"):
        assert f"\n{heading}\n" in md
    assert "| `bench.micro` | ✅ ok | 1 | 1 |" in md
    assert "| `bench.aio` | ❌ failed (exit 1) |" in md
    assert "| `bench.http` | n/a not present |" in md
    assert "**FAILED ❌**" in md
    assert "| seed | 5,000.0 | 200,000 | 0.10x | plain | ❌ >= 1,000,000 ops/s |" in md
    issues = md[md.index("## Issues Found"):]
    assert "`bench.aio` failed" in issues
    assert "seed missed its target" in issues


def test_a_counted_result_is_shown_as_a_count_not_a_time() -> None:
    part = {"name": "instructions", "status": "ok", "exit_code": 0, "seconds": 40.0,
            "log": "instructions.log", "command": "python -m bench.instructions --quick",
            "output": "instructions.json", "data": {"results": [
                {"name": "hello: electron", "ns_per_op": 204595.0, "ops_per_s": 4.9,
                 "ratio": 0.984, "baseline": "hello: empty", "target": ">= 0.97",
                 "passed": True, "extra": {"unit": "instructions per request"}},
            ]}}
    md = render(_suite_report([part], passed=True))
    assert ("| hello: electron | 204,595 (instructions per request) |  | 0.98x | hello: empty "
            "| ✅ >= 0.97 |") in md


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("instructions", "skipped: valgrind and callgrind_control not installed"),
        ("aio_count", "skipped: valgrind not installed"),
    ],
)
def test_instruction_counts_skip_without_valgrind(
    module: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib
    import shutil

    bench_module = importlib.import_module(f"bench.{module}")
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    out = tmp_path / f"{module}.json"
    assert bench_module.main(["--quick", "--json", str(out)]) == 0
    assert message in capsys.readouterr().out
    assert json.loads(out.read_text())["results"] == []


def test_instruction_totals_are_read_from_a_callgrind_dump() -> None:
    from bench import _callgrind

    dump = "events: Ir\nfl=(1) x.c\nfn=(1) main\n1 5\nsummary: 123456\ntotals: 123456\n"
    assert _callgrind.total([dump, "totals: 99\n"], "a dump") == 123456
    with pytest.raises(RuntimeError, match="a dump: callgrind wrote no totals"):
        _callgrind.total(["events: Ir\n"], "a dump")

