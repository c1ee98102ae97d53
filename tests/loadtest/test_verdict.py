"""The verdict's rules, from synthetic measurements (no servers, no wrk, no clock)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bench._lt._mix import parse_mix
from bench._lt._report import assemble, render_markdown
from bench._lt._serverbound import attach_runs, plan, run_server_bound, skipped
from bench._lt._verdict import (
    FASTER,
    INCONCLUSIVE,
    NO_VERDICT,
    SLOWER,
    analyze_server_bound,
    classify,
    client_tail,
    compare_tail,
    generator_bound,
    overall_verdict,
    route_verdict,
    tail_causes,
    tail_lines,
    verdict_lines,
)
from bench.sweep import ratio_summary

MIB = 1 << 20


def _side(rps: Sequence[float], *, wrk: float = 40.0, server: float = 99.0,
          p99: Sequence[float] = (1000.0, 1100.0, 1050.0),
          p999: Sequence[float] = (2000.0, 2100.0, 2050.0),
          mx: Sequence[float] = (5000.0, 6000.0, 5500.0), cpu_us: float = 100.0,
          rss_idle: int = 40 * MIB, rss_peak: int = 44 * MIB, errors: int = 0
          ) -> dict[str, Any]:
    rounds = [{"rps": x, "latency_p99_us": a, "latency_p999_us": b, "latency_max_us": c,
               "client_cpu_percent": wrk, "server_cpu_percent": server}
              for x, a, b, c in zip(rps, p99, p999, mx, strict=False)]
    return {
        "rounds": rounds, "rps_median": sorted(rps)[len(rps) // 2],
        "client_cpu_percent_median": wrk, "server_cpu_percent_median": server,
        "cpu_us_per_request_median": cpu_us, "latency_p99_us_median": sorted(p99)[1],
        "latency_p999_us_median": sorted(p999)[1], "latency_max_us": max(mx),
        "rss_idle": rss_idle, "rss_peak": rss_peak, "errors": errors,
    }


def _route(name: str, e: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    mine = [r["rps"] for r in e["rounds"]]
    theirs = [r["rps"] for r in b["rounds"]]
    return {"route": name, "sides": {"electron": e, "baseline": b},
            "ratios": {"baseline": ratio_summary(mine, theirs)},
            "cpu_ratios": {"baseline": ratio_summary([1.0] * len(mine), [1.0] * len(mine))},
            "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [1.5, 1.0, 1.0], "notes": []}


# -- faster, slower, inconclusive ------------------------------------------------------------


@pytest.mark.parametrize(("low", "high", "word"), [
    (1.05, 1.30, FASTER), (0.70, 0.95, SLOWER), (0.89, 1.48, INCONCLUSIVE),
    (1.0, 1.2, INCONCLUSIVE), (0.8, 1.0, INCONCLUSIVE),
])
def test_a_ratio_is_faster_or_slower_only_when_its_interval_excludes_one(
        low: float, high: float, word: str) -> None:
    assert classify(low, high) == word


def test_the_rounds_of_the_old_report_give_an_inconclusive_verdict() -> None:
    # The report this replaces said "1.20x faster" from rounds of 1.28x, 1.48x and 0.89x.
    e = _side([1280.0, 1480.0, 890.0])
    b = _side([1000.0, 1000.0, 1000.0])
    v = route_verdict(_route("GET /", e, b))
    assert v["ci95"][0] < 1.0 < v["ci95"][1]
    assert v["verdict"] == INCONCLUSIVE
    assert "inconclusive" in verdict_lines({"ran": True, "config": _config(),
                                            "overall": overall_verdict([v]),
                                            "verdicts": [v]})[1]


def test_consistent_rounds_give_a_verdict() -> None:
    slower = route_verdict(_route("GET /", _side([600.0, 620.0, 590.0]),
                                  _side([1000.0, 1010.0, 990.0])))
    faster = route_verdict(_route("GET /bytes/1048576", _side([1250.0, 1300.0, 1280.0]),
                                  _side([1000.0, 1010.0, 990.0])))
    assert slower["verdict"] == SLOWER
    assert slower["ci95"][1] < 1
    assert faster["verdict"] == FASTER
    assert faster["ci95"][0] > 1


# -- the load generator as the bottleneck ----------------------------------------------------


@pytest.mark.parametrize(("client", "server", "flagged"), [
    (97.0, 60.0, True),     # wrk saturated, the server waiting for requests
    (97.0, None, True),     # the server's share unknown: cannot rule the generator out
    (97.0, 99.0, False),    # both busy: the server is saturated too
    (40.0, 99.0, False),    # server-bound, as intended
    (None, 50.0, False),    # the generator's CPU unknown: no flag invented
])
def test_generator_bound(client: float | None, server: float | None, flagged: bool) -> None:
    assert generator_bound(client, server) is flagged


def test_a_generator_bound_route_gives_no_verdict_and_is_left_out_of_the_overall() -> None:
    bound = route_verdict(_route("GET /", _side([3000.0, 3100.0, 3050.0], wrk=98.0, server=70.0),
                                 _side([2000.0, 2010.0, 1990.0], wrk=95.0, server=50.0)))
    assert bound["verdict"] == NO_VERDICT
    assert "load generator was the bottleneck" in bound["reason"]
    assert {b["side"] for b in bound["bottleneck"]} == {"electron", "baseline"}
    ok = route_verdict(_route("GET /json", _side([900.0, 950.0, 920.0]),
                              _side([1000.0, 1010.0, 990.0])))
    overall = overall_verdict([bound, ok])
    assert overall["routes"] == ["GET /json"]
    assert overall["left_out"] == ["GET /"]
    assert overall["verdict"] == SLOWER
    lines = verdict_lines({"ran": True, "config": _config(), "overall": overall,
                           "verdicts": [bound, ok]})
    assert "Left out (no verdict): GET /" in lines[0]
    assert any("GET /: " in x and "no verdict: the load generator" in x for x in lines[1:])


def test_errors_or_a_failed_route_give_no_verdict() -> None:
    v = route_verdict(_route("GET /", _side([900.0, 950.0, 920.0], errors=3),
                             _side([1000.0, 1010.0, 990.0])))
    assert v["verdict"] == NO_VERDICT
    assert "errors" in v["reason"]
    failed = route_verdict({"route": "GET /json", "error": "no 'listening on' line"})
    assert failed["verdict"] == NO_VERDICT
    assert failed["ratio"] is None
    assert overall_verdict([v, failed])["verdict"] == NO_VERDICT


def test_a_server_that_did_not_get_its_core_is_a_caveat_not_a_veto() -> None:
    v = route_verdict(_route("GET /", _side([600.0, 620.0, 590.0], wrk=10.0, server=25.0),
                             _side([1000.0, 1010.0, 990.0], wrk=12.0, server=24.0)))
    assert v["verdict"] == SLOWER
    (caveat,) = v["caveats"]
    assert "electron 25% (wrk 10%), baseline 24% (wrk 12%)" in caveat
    head = verdict_lines({"ran": True, "config": _config(), "overall": overall_verdict([v]),
                          "verdicts": [v]})[0]
    assert "On 1 of 1 route(s) the servers did not get a whole core" in head
    assert "CPU per request agrees with the throughput verdict on 0 of 1" in head


# -- overall ---------------------------------------------------------------------------------


def test_overall_is_inconclusive_when_routes_disagree_and_says_it_is_mixed() -> None:
    slow = route_verdict(_route("GET /", _side([800.0, 810.0, 790.0]),
                                _side([1000.0, 1000.0, 1000.0])))
    fast = route_verdict(_route("GET /bytes/1048576", _side([1250.0, 1240.0, 1260.0]),
                                _side([1000.0, 1000.0, 1000.0])))
    overall = overall_verdict([slow, fast])
    assert overall["ratio"] == pytest.approx((0.8 * 1.25) ** 0.5, rel=1e-3)
    assert overall["ci95"][0] <= overall["ratio"] <= overall["ci95"][1]
    assert overall["verdict"] == INCONCLUSIVE
    head = verdict_lines({"ran": True, "config": _config(), "overall": overall,
                          "verdicts": [slow, fast]})[0]
    assert "inconclusive" in head
    assert "Mixed: faster on GET /bytes/1048576; slower on GET /" in head


def test_overall_is_the_same_every_time_for_the_same_rounds() -> None:
    vs = [route_verdict(_route(f"r{i}", _side([900.0 + i, 1100.0, 950.0]),
                               _side([1000.0, 1000.0, 1000.0]))) for i in range(3)]
    assert overall_verdict(vs) == overall_verdict(vs)


def test_without_the_server_bound_part_there_is_no_verdict_and_it_says_why() -> None:
    (line,) = verdict_lines(skipped("wrk is not installed: `apt-get install wrk` ..."))
    assert line.startswith("Verdict: none.")
    assert "apt-get install wrk" in line


# -- the latency tail ------------------------------------------------------------------------


def _differs(e: Sequence[float], b: Sequence[float]) -> str | None:
    out = compare_tail("max", e, b)
    assert out is not None
    return out["differs"]  # type: ignore[no-any-return]


def test_tails_differ_only_beyond_the_round_to_round_spread() -> None:
    assert _differs([30e3, 31e3, 104e3], [29e3, 31e3, 33e3]) is None
    assert _differs([90e3, 95e3, 104e3], [29e3, 31e3, 33e3]) == "higher"
    assert _differs([1e3, 1.1e3], [2e3, 2.5e3]) == "lower"
    one = compare_tail("max", [104e3], [31e3])
    assert one is not None
    assert one["differs"] is None
    assert compare_tail("p99.9", [None, None], [1e3, 2e3]) is None


def test_tail_causes_name_what_the_run_saw() -> None:
    worse = {"label": "electron", "client_cpu_pct": 40.0, "server_cpu_pct": 99.0,
             "cpu_us_per_request": 180.0, "rss_growth_mib": 40.0}
    better = {"label": "baseline", "client_cpu_pct": 40.0, "server_cpu_pct": 99.0,
              "cpu_us_per_request": 110.0, "rss_growth_mib": 2.0}
    causes = tail_causes(worse, better, gc="gc not recorded")
    assert any("more CPU per request (180 vs 110 µs)" in c for c in causes)
    assert any("RSS grew more while loaded (+40 vs +2 MiB)" in c for c in causes)
    assert causes[-1] == "gc not recorded"


def test_tail_causes_client_saturation_and_client_gc() -> None:
    worse = {"label": "electron", "client_cpu_pct": 99.0, "client_saturated": True,
             "server_cpu_pct": 60.0, "client_gc_max_ms": 40.0}
    better = {"label": "baseline", "client_cpu_pct": 97.0, "client_saturated": True,
              "server_cpu_pct": 62.0, "client_gc_max_ms": 3.0}
    causes = tail_causes(worse, better)
    assert any("load generator of the electron run was near saturation" in c for c in causes)
    assert any("garbage collection paused a client process for 40.0 ms" in c for c in causes)


def test_tail_causes_are_not_invented() -> None:
    same = {"label": "electron", "client_cpu_pct": 40.0, "server_cpu_pct": 99.0,
            "cpu_us_per_request": 100.0, "rss_growth_mib": 2.0}
    causes = tail_causes(same, {**same, "label": "baseline"}, gc="gc not recorded")
    assert len(causes) == 1
    assert causes[0].startswith("not determined")
    assert "gc not recorded" in causes[0]


def test_the_server_bound_analysis_discusses_a_tail_that_differs() -> None:
    e = _side([900.0, 950.0, 920.0], mx=(90e3, 95e3, 104e3), cpu_us=150.0)
    b = _side([1000.0, 1010.0, 990.0], mx=(29e3, 31e3, 33e3), cpu_us=100.0)
    sb = analyze_server_bound({"ran": True, "skipped": None, "config": _config(),
                               "routes": [_route("GET /", e, b)], "seconds": 1.0}, cores=2)
    (tail,) = sb["tails"]
    (finding,) = tail["findings"]
    assert finding["worse"] == "electron"
    assert finding["metrics"] == ["max"]
    text = "\n".join(tail_lines(tail))
    assert "max electron 90.0-104.0 ms (median 95.0)" in text
    assert "baseline 29.0-33.0 ms (median 31.0)" in text
    assert "beyond the round-to-round spread" in text
    assert "more CPU per request" in text
    assert "gc" in text


def test_the_python_clients_tail_is_discussed_too() -> None:
    def server(label: str, mx: Sequence[float], saturated: bool) -> dict[str, Any]:
        return {"label": label, "rounds": [{"p99_ms": 10.0, "p99_9_ms": 20.0, "max_ms": m}
                                           for m in mx],
                "client": {"max_cpu_pct": 99.0 if saturated else 50.0,
                           "saturated": saturated, "gc_max_pause_ms": 2.0},
                "server_cpu_pct": 60.0, "duration_s": 6.0, "requests": 6000,
                "rss_mib": {"peak": 50.0, "after_warmup": 45.0}}
    sc = {"scenario": "mixed", "servers": {"electron": server("electron", [95, 104, 98], True),
                                           "baseline": server("baseline", [29, 31, 30], True)}}
    tail = client_tail(sc)
    assert tail is not None
    (finding,) = tail["findings"]
    assert finding["worse"] == "electron"
    assert any("near saturation" in c for c in finding["causes"])


# -- the server-bound part's plumbing --------------------------------------------------------


def test_the_routes_of_the_mix_become_sweep_routes() -> None:
    routes = plan(parse_mix("/=40,/json=20,/bytes/65536=20,/render=10,/upload=10", 16384))
    assert [r.name for r in routes] == ["GET /", "GET /json", "GET /bytes/65536",
                                        "GET /render", "POST /upload 16 KiB"]
    assert routes[4].size == 16384
    assert routes[2].size == 65536


def test_the_generator_figures_go_to_the_side_and_round_they_were_measured_in() -> None:
    route: dict[str, Any] = {"sides": {"electron": {"rounds": [{}, {}]},
                                       "baseline": {"rounds": [{}, {}]}}}
    e, b = "http://127.0.0.1:1/", "http://127.0.0.1:2/"

    def run(url: str, cpu: float) -> dict[str, Any]:
        return {"url": url, "cpu_percent": cpu, "latency_p50_us": 1.0,
                "latency_p999_us": cpu * 10}

    # warm-ups in the listed order, then rounds: e b, then b e (the order flipped)
    attach_runs(route, [run(e, 1), run(b, 2), run(e, 10), run(b, 20), run(b, 30), run(e, 40)])
    es, bs = route["sides"]["electron"], route["sides"]["baseline"]
    assert [r["client_cpu_percent"] for r in es["rounds"]] == [10, 40]
    assert [r["client_cpu_percent"] for r in bs["rounds"]] == [20, 30]
    assert es["client_cpu_percent_median"] == 25
    assert bs["latency_p999_us_median"] == 250


def test_the_report_has_the_verdict_section_when_skipped_and_when_measured() -> None:
    machine = {"cpu": "x", "cores": 2, "platform": "linux", "python": "3.11",
               "implementation": "CPython", "versions": {}}
    plain = assemble(title="t", command="c", machine=machine, started="s", finished="f",
                     scenarios=[], server_bound=skipped("wrk is not installed: apt-get"))
    md = render_markdown(plain)
    assert "## Verdict" in md
    assert "server-bound measurement was skipped" in md
    sb = analyze_server_bound({"ran": True, "skipped": None, "config": _config(),
                               "routes": [_route("GET /", _side([600.0, 620.0, 590.0]),
                                                 _side([1000.0, 1010.0, 990.0]))],
                               "seconds": 1.0}, cores=2)
    md = render_markdown(assemble(title="t", command="c", machine=machine, started="s",
                                  finished="f", scenarios=[], server_bound=sb))
    summary = md[md.index("## Summary"):md.index("## Verdict")]
    assert "electron is slower than the baseline" in summary
    verdict = md[md.index("## Verdict"):md.index("## Test Coverage")]
    assert "| GET / | 600 | 1,000 | 0.60x [" in verdict
    assert "### Latency tail" in verdict


def _config() -> dict[str, Any]:
    return {"method": "m", "rounds": 3, "seconds": 1.0, "loop": "uvloop", "load": "wrk",
            "pinning": {}, "workers": 1}


def test_without_wrk_or_against_url_servers_the_part_is_skipped_with_the_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench._lt._config import resolve

    monkeypatch.setattr("bench._lt._serverbound.shutil.which", lambda name: None)
    cfg = resolve("mixed", {"quick": True, "compare": True})
    doc = run_server_bound(cfg)
    assert doc["ran"] is False
    assert "wrk is not installed" in doc["skipped"]
    assert "apt-get install wrk" in doc["skipped"]
    assert run_server_bound(cfg, enabled=False)["skipped"] == "--no-sweep was given"
    remote = resolve("mixed", {"compare": True, "url": "http://127.0.0.1:1",
                               "baseline_url": "http://127.0.0.1:2"})
    assert "--url" in run_server_bound(remote)["skipped"]


@pytest.mark.parametrize(("server", "script"), [("aiohttp", "server.py"),
                                                ("asgi", "asgi_server.py")])
def test_the_server_bound_part_sweeps_the_example_the_load_test_started(
        monkeypatch: pytest.MonkeyPatch, server: str, script: str) -> None:
    """``--server asgi`` makes the wrk part compare examples/asgi_server.py with its own
    ``--no-electron`` baseline, on uvloop like the aiohttp example."""
    from bench._lt._config import resolve
    from bench._lt._server import EXAMPLES

    targets: list[Any] = []

    def fake_sweep_route(route: Any, target: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        targets.append(target)
        return {"route": route.name, "kind": route.kind, "sides": {}}

    monkeypatch.setattr("bench._lt._serverbound.shutil.which", lambda name: "/usr/bin/wrk")
    monkeypatch.setattr("bench.sweep.sweep_route", fake_sweep_route)
    monkeypatch.setattr("bench.sweep._wrk_version", lambda: "wrk 4")
    cfg = resolve("mixed", {"quick": True, "compare": True,
                            "server_script": EXAMPLES[server]})
    doc = run_server_bound(cfg)
    assert doc["ran"] is True
    assert len(targets) == len(doc["routes"]) == 5  # one per route of the mix
    target = targets[0]
    assert target.name == server
    assert target.electron[1].endswith(f"examples/{script}")
    assert target.electron[-2:] == ["--loop", "uvloop"]
    assert target.baseline == [*target.electron, "--no-electron"]
    assert doc["config"]["loop"] == "uvloop"
    assert doc["config"]["commands"]["electron"].endswith(f"{script} --host 127.0.0.1 --port 0 "
                                                          "--loop uvloop")
