"""Figures, targets and the report writer, from synthetic measurements (no servers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench._lt._client import JobResult, RouteResult
from bench._lt._config import Config
from bench._lt._hist import LatencyHistogram
from bench._lt._plot import plot_scenario
from bench._lt._report import SECTIONS, SUMMARY_HEADER, assemble, render_markdown
from bench._lt._results import summarize
from bench._lt._runner import RoundData, RunData, ServerData
from bench._lt._server import Sample

MIB = 1 << 20


def _result(index: int, ok: int, base_us: int, errors: dict[str, int] | None = None,
            samples: dict[str, list[str]] | None = None) -> JobResult:
    errors = errors or {}
    h, h2 = LatencyHistogram(), LatencyHistogram(2)
    for i in range(ok):
        h.record(base_us + i)
        h2.record(base_us + i)
    r = JobResult(index, wall_s=1.0, cpu_s=0.5, ok=ok, errors=dict(errors),
                  samples=samples or {}, bytes_in=ok * 13)
    r.routes = {"/": RouteResult(ok, sum(errors.values()), ok * 13, h.encode())}
    half = ok // 2
    r.timeline = [(0, half, 0, h2.encode()), (3, ok - half, sum(errors.values()), h2.encode())]
    return r


def _run(*, bad_bodies: int = 0, leaked: int = 0, baseline_growth_mib: int = 1,
         compare: bool = True) -> RunData:
    cfg = Config(compare=compare, duration=2.0, rounds=2, procs=2, warmup=0.5)
    servers: dict[str, ServerData] = {}
    for label in cfg.labels:
        electron = label == "electron"
        sd = ServerData(label, electron, url="http://127.0.0.1:9", command=f"server {label}")
        sd.stats_before = [{"active_arenas": 0, "active_buffers": 0}]
        sd.stats_after = [{"active_arenas": leaked if electron else 0, "active_buffers": 0,
                           "pooled_arenas": 4, "bytes_reserved": 1 << 20}]
        sd.settle_s = 0.02
        growth = 1 if electron else baseline_growth_mib
        sd.rss_after_warmup = Sample(0.0, 40 * MIB, 1.0)
        sd.rss_end = Sample(9.0, (40 + growth) * MIB, 3.0)
        sd.samples = [Sample(0.5 + t / 4, 40 * MIB + t * 1000, 1.0 + t / 10) for t in range(30)]
        base_us = 1000 if electron else 1200
        for r in range(cfg.rounds):
            errs = {"bad_body": bad_bodies} if (electron and bad_bodies and r == 0) else None
            samples = ({"bad_body": ["/bytes/65536?seed=3: byte 17 is 0x00, want 0x21"]}
                       if errs else None)
            results = [_result(0, 500, base_us, errs, samples), _result(1, 500, base_us)]
            sd.rounds.append(RoundData(label, r, start_at=1.0 + 3 * r, end_at=2.0 + 3 * r,
                                       results=results, server_cpu_s=0.8,
                                       machine_busy_pct=60.0))
        servers[label] = sd
    return RunData(cfg, servers, started="2026-01-01T00:00:00", finished="2026-01-01T00:00:10",
                   wall_s=10.0)


def _report(run: RunData) -> dict[str, Any]:
    machine = {"cpu": "Test CPU", "cores": 2, "platform": "Linux", "python": "3.11.7",
               "implementation": "CPython", "versions": {"aiohttp": "3.14"}, "time": "now"}
    return assemble(title="test", command="python -m bench.loadtest --compare",
                    machine=machine, started="a", finished="b",
                    scenarios=[summarize(run, "a test scenario")])


def test_figures_from_the_measurements() -> None:
    sc = summarize(_run(), "d")
    e, b = sc["servers"]["electron"], sc["servers"]["baseline"]
    assert e["requests"] == 2 * 2 * 500  # two rounds of two processes
    assert e["duration_s"] == 2.0
    assert e["throughput_rps"] == 1000.0
    assert e["errors"] == 0
    # Latencies 1000..1499 us, recorded four times over.
    assert e["latency_ms"]["p50"] == pytest.approx(1.25, abs=0.002)
    assert e["latency_ms"]["max"] == pytest.approx(1.5, abs=0.002)
    assert b["latency_ms"]["p50"] == pytest.approx(1.45, abs=0.002)
    assert [r["rps"] for r in e["rounds"]] == [1000.0, 1000.0]
    assert e["client"]["cpu_pct"] == [50.0, 50.0]
    assert e["server_cpu_pct"] == 80.0
    assert e["rss_mib"]["after_warmup"] == 40.0
    assert e["rss_mib"]["growth"] == 1.0
    assert e["active_arenas_after"] == 0
    # Timeline: 1 s rounds in 0.25 s points; every request lands in one of them.
    bucket = sc["config"]["bucket_s"]
    assert bucket == 0.25
    assert len(e["timeline"]) == 8
    assert e["timeline"][-1]["t"] == 2.0
    assert sum(p["rps"] for p in e["timeline"]) * bucket == pytest.approx(2000)
    assert sc["comparison"]["throughput_ratio"] == 1.0
    assert sc["comparison"]["p50_ratio"] == pytest.approx(1.25 / 1.45, abs=0.01)
    assert sc["passed"] is True
    json.dumps(sc)  # every figure is JSON-ready


def test_markdown_has_the_reference_format_sections_in_order() -> None:
    md = render_markdown(_report(_run()))
    assert md.startswith("# Integration Test Report: test\n")
    positions = [md.index(f"\n{s}\n") for s in SECTIONS]
    assert positions == sorted(positions)
    lines = md.splitlines()
    i = lines.index(SUMMARY_HEADER)
    assert lines[i + 1].count("|") == SUMMARY_HEADER.count("|")
    assert lines[i + 2].startswith("| mixed | electron | 1,000 |")
    assert lines[i + 3].startswith("| mixed | baseline | 1,000 |")
    assert "electron ÷ baseline" in lines[i + 4]
    assert lines[i + 2].endswith("| ✅ |")
    assert "### Scenario: mixed" in md
    assert "Overall result: **PASSED ✅**" in md
    assert "| error rate | < 1% | ✅ 0.000% (0 of 2,000) |" in md
    assert "![throughput, p99 latency and RSS over time]" not in md  # no PNG given
    issues = md[md.index("## Issues Found"):md.index("## Recommendations")]
    assert "None" in issues


def test_a_wrong_body_fails_the_run_and_is_reported() -> None:
    report = _report(_run(bad_bodies=3))
    assert report["passed"] is False
    e = report["scenarios"][0]["servers"]["electron"]
    assert e["errors_by_kind"] == {"bad_body": 3}
    md = render_markdown(report)
    row = next(line for line in md.splitlines() if line.startswith("| mixed | electron |"))
    assert row.endswith("| ❌ |")
    assert "| 3 |" in row  # wrong bodies column
    assert "Overall result: **FAILED ❌**" in md
    assert "### Issue 1: electron: every body correct missed" in md
    assert "byte 17 is 0x00, want 0x21" in md
    assert "**Severity:** High" in md


def test_leaked_arenas_fail_the_run() -> None:
    report = _report(_run(leaked=2))
    assert report["passed"] is False
    md = render_markdown(report)
    assert "❌ active_arenas = 2" in md
    assert "no leaked arenas missed" in md


def test_baseline_rss_growth_is_shown_but_does_not_gate() -> None:
    report = _report(_run(baseline_growth_mib=500))
    assert report["passed"] is True
    md = render_markdown(report)
    assert "❌ +500.0 MiB (reference, not gating)" in md


def test_without_compare_there_is_no_ratio_row(tmp_path: Path) -> None:
    report = _report(_run(compare=False))
    md = render_markdown(report)
    assert "electron ÷ baseline" not in md
    assert "Add `--compare`" in md
    png = plot_scenario(report["scenarios"][0], tmp_path / "chart.png", "Test CPU")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_is_a_png(tmp_path: Path) -> None:
    report = _report(_run())
    png = plot_scenario(report["scenarios"][0], tmp_path / "chart.png", "Test CPU")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
