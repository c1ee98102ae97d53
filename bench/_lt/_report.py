"""report.md and report.json: the reference test plan's report format, filled with figures.

``render_markdown`` follows the "Integration Test Report Format" of the Go design's test
plan: Summary, Test Coverage, Results (a summary table electron vs baseline, then per-scenario
results with ✅/❌ against the targets), Issues Found, Recommendations, Next Steps.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from .._harness import describe_interpreter
from ._server import ASGI_SCRIPT
from ._verdict import NO_VERDICT, tail_lines, verdict_lines

__all__ = (
    "SECTIONS",
    "SUMMARY_HEADER",
    "assemble",
    "render_markdown",
    "summary_table",
    "write_json",
    "write_markdown",
)

_ROOT = ASGI_SCRIPT.parents[1]

SECTIONS = (
    "## Summary",
    "## Verdict",
    "## Test Coverage",
    "### Component Interactions Tested",
    "### Scenarios Tested",
    "## Results",
    "### Summary Table",
    "## Issues Found",
    "## Recommendations",
    "## Next Steps",
)
SUMMARY_HEADER = (
    "| Scenario | Server | Throughput (req/s) | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) "
    "| Errors | Wrong bodies | Arenas after | RSS peak (MiB) | RSS growth (MiB) | Targets |"
)
ALL_SCENARIOS = ("mixed", "stress", "soak", "burst", "slow-readers")


def _mark(passed: bool | None) -> str:
    return {True: "✅", False: "❌", None: "n/a"}[passed]


def _n(v: float | int | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _servers(sc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(sc["servers"].values())


def _targets_ok(s: dict[str, Any]) -> bool:
    return all(t["passed"] is not False for t in s["targets"] if t["gating"])


def _script(scs: list[dict[str, Any]]) -> str:
    """The server script the scenarios started, as ``examples/...`` when it is an example."""
    if not scs:
        return "none started"
    if scs[0]["config"].get("url"):
        return f"`{scs[0]['config']['url']}`"
    script = Path(scs[0]["config"]["server_script"])
    with contextlib.suppress(ValueError):
        script = script.relative_to(_ROOT)
    return f"`{script.as_posix()}`"


def _summary(report: dict[str, Any]) -> list[str]:
    scs = report["scenarios"]
    verdict = "PASSED ✅" if report["passed"] else "FAILED ❌"
    out = ["## Summary", ""]
    names = ", ".join(f"`{sc['scenario']}`" for sc in scs)
    compare = any(sc["comparison"] for sc in scs)
    out.append(
        f"The server ({_script(scs)}) was put under load by "
        f"`python -m bench.loadtest` with the scenario{'s' if len(scs) > 1 else ''} {names}"
        + (", electron against the `--no-electron` baseline in alternating rounds"
           if compare else "")
        + f". Every response body was verified byte for byte. Overall result: **{verdict}**."
    )
    out.append("")
    for sc in scs:
        e = sc["servers"].get("electron")
        if not e:
            continue
        line = (f"- `{sc['scenario']}`: electron served {_n(e['requests'])} requests at "
                f"{_n(e['throughput_rps'])} req/s, p99 {_ms(e['latency_ms']['p99'])} ms, "
                f"{_n(e['errors'])} errors ({e['error_rate_pct']:.3f}%)")
        cmp_ = sc["comparison"]
        if cmp_ and cmp_["throughput_ratio"]:
            b = sc["servers"]["baseline"]
            bound = any(s["client"]["saturated"] for s in _servers(sc))
            line += (f"; baseline {_n(b['throughput_rps'])} req/s, p99 "
                     f"{_ms(b['latency_ms']['p99'])} ms (Python clients' throughput ratio "
                     f"{_x(cmp_['throughput_ratio'])}: "
                     + ("client-bound, " if bound else "") + "not the verdict)")
        failed = [t["name"] for s in _servers(sc) for t in s["targets"]
                  if t["gating"] and t["passed"] is False]
        line += f". {'Targets met ✅' if not failed else 'Missed: ' + ', '.join(failed) + ' ❌'}"
        out.append(line)
    out.append("")
    sb = report.get("server_bound")
    if sb is not None:
        out += [f"**{line}**" if i == 0 else f"- {line.strip()}"
                for i, line in enumerate(verdict_lines(sb))]
        out.append("")
    return out


def _ms_us(v: float | None) -> str:
    return "-" if v is None else _ms(v / 1e3)


def _both(e: dict[str, Any], b: dict[str, Any], key: str, fmt: Any = _n) -> str:
    """``key`` of electron's and the baseline's figures, as ``e / b``."""
    return f"{fmt(e.get(key))} / {fmt(b.get(key))}"


def _mib_of(v: float | None) -> str:
    return _n(None if v is None else v / (1 << 20))


def _verdict(report: dict[str, Any]) -> list[str]:
    """The "Verdict" section: the server-bound measurement, its verdict per route and
    overall, whether the load generator was the bottleneck, and the latency tail."""
    out = ["## Verdict", ""]
    sb = report.get("server_bound")
    if sb is None:
        out += ["No verdict: run with `--compare` to measure electron against the "
                "`--no-electron` baseline.", ""]
        return out
    if not sb["ran"]:
        out += [f"**The server-bound measurement was skipped**: {sb['skipped']}. Throughput "
                "and latency figures for a verdict come from it (wrk on one core, the server "
                "on the other); the Python clients below verify bodies and share the cores with "
                "the server, so their throughput ratio is not used as a verdict.", ""]
    else:
        c = sb["config"]
        out += [f"Throughput and latency from a server-bound measurement ({c['method']}; "
                f"{c['rounds']} rounds of {c['seconds']:g} s per side; "
                f"{c['load'].split(' Copyright')[0]}; pinning "
                f"{c['pinning']}; the servers on {c['loop']}; {sb['seconds']:g} s in all). "
                "Ratios are electron ÷ baseline, the median over rounds of the ratio within a "
                "round, with a 95% bootstrap interval: *faster* or *slower* only when the "
                "interval excludes 1.0, *inconclusive* otherwise. A route whose load generator "
                "(wrk) used 90% or more of its core while the server did not gives no verdict. "
                "The verdict is in the Summary above; per route:", "",
                "| Route | electron req/s | baseline req/s | ratio [95% interval] | verdict "
                "| CPU/req baseline ÷ electron | wrk CPU % e / b | server CPU % e / b "
                "| RSS peak MiB e / b |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r, v in zip(sb["routes"], sb["verdicts"], strict=True):
            if r.get("error"):
                out.append(f"| {r['route']} | - | - | - | not measured: {r['error']} "
                           "| | | | |")
                continue
            e, b = r["sides"]["electron"], r["sides"]["baseline"]
            cpu = v["cpu_ratio"]
            word = v["verdict"] if v["verdict"] != NO_VERDICT else f"no verdict: {v['reason']}"
            out.append(
                f"| {r['route']} | {_n(e['rps_median'])} | {_n(b['rps_median'])} "
                f"| {_x(v['ratio'])} [{v['ci95'][0]:.2f}-{v['ci95'][1]:.2f}] | {word} "
                + (f"| {_x(cpu['median'])} [{cpu['ci95'][0]:.2f}-{cpu['ci95'][1]:.2f}] "
                   if cpu else "| - ")
                + f"| {_both(e, b, 'client_cpu_percent_median')} "
                f"| {_both(e, b, 'server_cpu_percent_median')} "
                f"| {_both(e, b, 'rss_peak', _mib_of)} |")
        out.append("")
        caveats = [f"- {v['route']}: {c_}" for v in sb["verdicts"] for c_ in v["caveats"]]
        notes = [f"- {r['route']}: {n}" for r in sb["routes"] for n in r.get("notes", [])]
        if caveats or notes:
            out += ["Caveats:", "", *caveats, *notes, ""]
        out += ["### Latency tail", "",
                "wrk's latency per round (p99, p99.9, max; closed loop, so a slower server also "
                "has more requests waiting). Two servers *differ* on a figure only when every "
                "round of one is above every round of the other.", "",
                "| Route | p99 ms e / b (median) | p99.9 ms e / b (median) "
                "| max ms e / b (largest) |", "|---|---|---|---|"]
        for r in sb["routes"]:
            if r.get("error"):
                continue
            e, b = r["sides"]["electron"], r["sides"]["baseline"]
            out.append(f"| {r['route']} "
                       f"| {_both(e, b, 'latency_p99_us_median', _ms_us)} "
                       f"| {_both(e, b, 'latency_p999_us_median', _ms_us)} "
                       f"| {_both(e, b, 'latency_max_us', _ms_us)} |")
        out.append("")
        for t in sb["tails"]:
            out += [f"- {line.strip()}" if i == 0 else f"  - {line.strip()}"
                    for i, line in enumerate(tail_lines(t))]
        out.append("")
    tails = [sc["client_tail"] for sc in report["scenarios"] if sc.get("client_tail")]
    if tails:
        out += ["Latency tail as the Python clients measured it (they verify every body; where "
                "they are saturated their own queueing and pauses are part of these figures):",
                ""]
        for t in tails:
            out += [f"- {line.strip()}" if i == 0 else f"  - {line.strip()}"
                    for i, line in enumerate(tail_lines(t))]
        out.append("")
    return out


def _coverage(report: dict[str, Any]) -> list[str]:
    scs = report["scenarios"]
    kinds = {r["kind"] for sc in scs for r in sc["config"]["mix_routes"]}
    slow = any(sc["config"]["slow_readers"] for sc in scs)
    compare = any(sc["comparison"] for sc in scs)
    ran = {sc["scenario"]: sc for sc in scs}
    asgi = any(Path(sc["config"]["server_script"]).resolve() == ASGI_SCRIPT for sc in scs)
    glue = "ASGI middleware (Starlette on uvicorn)" if asgi else "aiohttp middleware"

    def box(done: bool, text: str) -> str:
        return f"- [{'x' if done else ' '}] {text}"

    out = ["## Test Coverage", "", "### Component Interactions Tested"]
    out += [
        box(True, f"{glue} + ArenaOfPools: one arena per request, on every route"),
        box(bool(kinds & {"bytes", "json", "render"}),
            "Pooled response bodies sent without copying (`/bytes`, `/json`, `/render`)"),
        box("upload" in kinds, "Request bodies read into pooled memory (`POST /upload`)"),
        box(slow, "Slow readers holding pooled memory in the transport (zero-copy hazard)"),
        box(True, "`/stats` before and after the load (arena accounting, leak check)"),
        box(compare, "electron against plain allocation (`--no-electron` baseline)"),
        "",
        "### Scenarios Tested",
    ]
    for name in ALL_SCENARIOS:
        sc = ran.get(name)
        if sc:
            c = sc["config"]
            e = sc["servers"].get("electron", next(iter(sc["servers"].values())))
            out.append(box(True, f"`{name}`: {sc['description']} — {c['concurrency']} "
                       f"clients, {c['duration']:g} s per server in {c['rounds']} rounds, "
                       f"{_n(e['attempts'])} requests"))
        else:
            out.append(box(False, f"`{name}` (not run: `python -m bench.loadtest "
                           f"--scenario {name}`)"))
    total = sum(s["attempts"] for sc in scs for s in _servers(sc))
    out += [
        box(True, f"Body verification: every one of {_n(total)} responses checked "
            "(pattern for `/bytes`, SHA-256 for `/upload`, content for the others)"),
        box(True, "Memory leak detection: server RSS sampled every 0.25 s, `active_arenas` "
            "after the load"),
        box(True, "Error handling: failures counted by kind (HTTP status, timeout, "
            "disconnect, wrong body)"),
        "",
    ]
    return out


def summary_table(report: dict[str, Any]) -> list[str]:
    """The "Summary Table" subsection (heading, table, note) as markdown lines."""
    out = ["### Summary Table", "", SUMMARY_HEADER,
           "|" + "|".join(["---"] * (SUMMARY_HEADER.count("|") - 1)) + "|"]
    for sc in report["scenarios"]:
        for s in _servers(sc):
            lat = s["latency_ms"]
            arenas = s["active_arenas_after"] if s["electron"] else None
            g = s["rss_mib"]["growth"]
            peak = s["rss_mib"]["peak"]
            out.append(
                f"| {sc['scenario']} | {s['label']} | {_n(s['throughput_rps'])} "
                f"| {_ms(lat['p50'])} | {_ms(lat['p99'])} | {_ms(lat['p99_9'])} "
                f"| {_ms(lat['max'])} | {_n(s['errors'])} ({s['error_rate_pct']:.2f}%) "
                f"| {_n(s['bad_bodies'])} | {'-' if arenas is None else arenas} "
                f"| {_n(peak, 1)} | {'-' if g is None else f'{g:+.1f}'} "
                f"| {_mark(_targets_ok(s))} |"
            )
        c = sc["comparison"]
        if c:
            e, b = sc["servers"]["electron"], sc["servers"]["baseline"]
            p999 = _x(e["latency_ms"]["p99_9"] / b["latency_ms"]["p99_9"]
                      if b["latency_ms"]["p99_9"] else None)
            out.append(f"| {sc['scenario']} | **electron ÷ baseline** "
                       f"| **{_x(c['throughput_ratio'])}** | {_x(c['p50_ratio'])} "
                       f"| {_x(c['p99_ratio'])} | {p999} | | | | | {_x(c['rss_peak_ratio'])} "
                       "| | |")
    out.append("")
    if any(sc["comparison"] for sc in report["scenarios"]):
        out.append("Ratios are electron ÷ baseline: above 1 is better for throughput, below 1 "
                   "is better for latency. ")
    out += ["Latency is measured by the client from sending the request to the last body "
            "byte (closed loop: each client waits for its response).", ""]
    return out


def _scenario(sc: dict[str, Any], png: str | None) -> list[str]:
    c = sc["config"]
    servers = _servers(sc)
    out = [f"### Scenario: {sc['scenario']}", "", f"{sc['description']}.", ""]
    out.append(f"Settings: {c['concurrency']} concurrent clients"
               + (f" + {c['slow_readers']} slow readers ({c['slow_size']:,}-byte bodies, "
                  f"{c['slow_rcvbuf']:,}-byte receive buffer, {c['slow_chunk']:,} bytes per "
                  f"read every {c['slow_pause'] * 1e3:g} ms)" if c["slow_readers"] else "")
               + (f", bursts to {c['concurrency'] * c['burst_factor']} clients in the middle "
                  "third of each round" if c["burst_factor"] > 1 else "")
               + f"; {c['duration']:g} s per server in {c['rounds']} alternating rounds"
               + (f" (at most {c['requests']:,} requests)" if c["requests"] else "")
               + f"; warm-up {c['warmup']:g} s; mix `{c['mix']}`; uploads of "
               f"{c['upload_size']:,} bytes; {c['procs']} client process(es); "
               f"server workers: {c['workers']}.")
    out.append("")
    if sc["aborted"]:
        out += [f"**Aborted:** {sc['aborted']}", ""]
    # Performance, in the reference format's code-block style.
    out += ["#### Performance", "", "```"]
    for s in servers:
        lat = s["latency_ms"]
        err_t = next(t for t in s["targets"] if t["name"] == "error rate")
        out.append(f"{s['label']:9} {_n(s['throughput_rps']):>9} req/s  p50 {_ms(lat['p50'])} ms"
                   f"  p90 {_ms(lat['p90'])} ms  p99 {_ms(lat['p99'])} ms  p99.9 "
                   f"{_ms(lat['p99_9'])} ms  max {_ms(lat['max'])} ms  {s['mib_per_s']:.1f} "
                   f"MiB/s")
        out.append(f"{'':9} error rate {s['error_rate_pct']:.3f}% (target: "
                   f"{err_t['bound']}) {_mark(err_t['passed'])}")
    out += ["```", ""]
    if sc["comparison"]:
        cmp_ = sc["comparison"]
        rows = [f"| {i + 1} | {_n(e['rps'])} | {_n(b['rps'])} | {_x(r)} |"
                for i, (e, b, r) in enumerate(zip(sc["servers"]["electron"]["rounds"],
                                                  sc["servers"]["baseline"]["rounds"],
                                                  cmp_["round_ratios"], strict=False))]
        out += ["Per round (alternating, so both servers see the same machine noise):", "",
                "| Round | electron req/s | baseline req/s | ratio |", "|---|---|---|---|",
                *rows, ""]
    if any(s["phases"] for s in servers):
        out += ["Burst windows against calm periods:", "",
                "| Server | calm req/s | calm p99 (ms) | burst req/s | burst p99 (ms) |",
                "|---|---|---|---|---|"]
        for s in servers:
            ph = s["phases"]
            if ph:
                out.append(f"| {s['label']} | {_n(ph['calm']['rps'])} | "
                           f"{_ms(ph['calm']['p99_ms'])} | {_n(ph['burst']['rps'])} | "
                           f"{_ms(ph['burst']['p99_ms'])} |")
        out.append("")
    # Per-route.
    for s in servers:
        out += [f"Per route, {s['label']}:", "",
                "| Route | OK | Errors | MiB | p50 (ms) | p99 (ms) | max (ms) |",
                "|---|---|---|---|---|---|---|"]
        for r in s["routes"]:
            lat = r["latency_ms"]
            out.append(f"| `{r['route']}` | {_n(r['ok'])} | {_n(r['errors'])} | "
                       f"{r['mib']:,.1f} | {_ms(lat['p50'])} | {_ms(lat['p99'])} | "
                       f"{_ms(lat['max'])} |")
        out.append("")
    # Errors.
    for s in servers:
        if s["errors"] or s["warmup"]["errors"]:
            kinds = ", ".join(f"{k}: {v:,}" for k, v in s["errors_by_kind"].items()) or "none"
            out += [f"Errors, {s['label']}: {kinds}"
                    + (f" (warm-up: {s['warmup']['errors']})" if s["warmup"]["errors"] else ""),
                    "", "```"]
            for msgs in s["error_samples"].values():
                out += msgs[:3]
            out += ["```", ""]
    # Memory.
    out += ["#### Memory", "", "```"]
    for s in servers:
        rss = s["rss_mib"]
        rss_t = next(t for t in s["targets"] if t["name"] == "RSS growth bounded")
        ar_t = next(t for t in s["targets"] if t["name"] == "no leaked arenas")
        out.append(f"{s['label']:9} RSS after warm-up {_n(rss['after_warmup'], 1)} MiB, peak "
                   f"{_n(rss['peak'], 1)} MiB, end {_n(rss['end'], 1)} MiB; growth "
                   f"{rss_t['value']} (target: {rss_t['bound']}) {_mark(rss_t['passed'])}"
                   + ("" if rss_t["gating"] or rss_t["passed"] is None else " (reference)"))
        if s["electron"]:
            sa = s["stats_after_total"] or {}
            workers = s["stats_workers"]
            out.append(f"{'':9} {ar_t['value']} after the load (target: {ar_t['bound']}) "
                       f"{_mark(ar_t['passed'])}")
            keys = ("active_buffers", "pooled_arenas", "arenas_created", "arenas_reused",
                    "bytes_reserved", "high_water_bytes", "quarantine_events", "wait_timeouts",
                    "leaks_detected")
            figures = ", ".join(f"{k} {sa[k]:,}" for k in keys if k in sa)
            if figures:
                out.append(f"{'':9} /stats after"
                           + (f" (sum of {workers} workers)" if workers > 1 else "")
                           + f": {figures}")
    out += ["```", ""]
    # Targets.
    labels = [s["label"] for s in servers]
    out += ["#### Targets", "", "| Target | Bound | " + " | ".join(labels) + " |",
            "|---|---|" + "---|" * len(labels)]
    names = [t["name"] for t in servers[0]["targets"]]
    for name in names:
        cells = []
        bound = ""
        for s in servers:
            t = next((t for t in s["targets"] if t["name"] == name), None)
            if t is None:
                cells.append("-")
                continue
            bound = t["bound"]
            note = "" if t["gating"] or t["passed"] is None else " (reference, not gating)"
            mark = "" if t["passed"] is None else f"{_mark(t['passed'])} "
            cells.append(f"{mark}{t['value']}{note}")
        out.append(f"| {name} | {bound} | " + " | ".join(cells) + " |")
    out.append("")
    # Client and server load.
    out += ["#### Load generator", ""]
    for s in servers:
        cl = s["client"]
        out.append(f"- {s['label']}: {cl['procs']} client process(es) at "
                   + ", ".join(f"{x:.0f}%" for x in cl["cpu_pct"])
                   + " of a core; server "
                   + ("-" if s["server_cpu_pct"] is None else f"{s['server_cpu_pct']:.0f}%")
                   + " of a core"
                   + (" — **client saturated**, the figures are a lower bound"
                      if cl["saturated"] else ""))
        m = s["machine"]
        if m["busy_pct"] is not None:
            other = "-" if m["other_cores"] is None else f"{m['other_cores']:.2f}"
            out.append(f"  - machine {m['busy_pct']:.0f}% busy over {m['cores']} cores: server "
                       f"{m['server_cores']:.2f}, clients {m['client_cores']:.2f}, other "
                       f"processes {other} cores"
                       + (" — **CPU-bound machine**: client, server and other work shared the "
                          "cores, so read the ratios, not the absolute rates"
                          if m["cpu_bound"] else ""))
    out.append("")
    out += ["#### Integration Points", ""]
    for s in servers:
        ok = s["bad_bodies"] == 0 and s["attempts"] > 0
        out.append(f"- {_mark(ok)} {s['label']}: every body verified ({_n(s['attempts'])} "
                   f"responses, {s['bytes_in'] / (1 << 20):,.0f} MiB read, "
                   f"{s['bad_bodies']} wrong)")
        if s["electron"]:
            arenas = s["active_arenas_after"]
            out.append(f"- {_mark(arenas == 0)} {s['label']}: every arena back in the pool "
                       f"after the load" + (f" ({s['settle_s']:.2f} s after the last request)"
                                            if s["settle_s"] else ""))
    if png:
        out += ["", f"![throughput, p99 latency and RSS over time]({png})"]
    out.append("")
    return out


def _issues(report: dict[str, Any]) -> list[str]:
    out = ["## Issues Found", ""]
    issues = [i for sc in report["scenarios"] for i in sc["issues"]]
    if not issues:
        out += ["None: every target was met, every body was correct, and no client process "
                "was saturated.", ""]
        return out
    for n, i in enumerate(issues, 1):
        out += [f"### Issue {n}: {i['title']}", f"**Severity:** {i['severity']}  ",
                f"**Impact:** {i['impact']}  ", f"**Fix:** {i['fix']}"]
        if i["details"]:
            out += ["", "```", *i["details"][:12], "```"]
        out.append("")
    return out


def _recommendations(report: dict[str, Any]) -> list[str]:
    recs: list[str] = []
    scs = report["scenarios"]
    sb = report.get("server_bound")
    if sb is not None and not sb["ran"]:
        recs.append(f"Run the server-bound measurement for a throughput verdict: {sb['skipped']}.")
    elif sb is not None:
        slower = [v["route"] for v in sb["verdicts"] if v["verdict"] == "slower"]
        if slower:
            recs.append("electron is slower than the baseline on " + ", ".join(slower)
                        + ": profile the middleware's per-request path there.")
        if any(v["verdict"] == "inconclusive" for v in sb["verdicts"]):
            recs.append("Some routes are inconclusive: more rounds (or a quieter machine) "
                        "narrow the intervals; `python -m bench.sweep` measures more sizes.")
        if any(v["bottleneck"] for v in sb["verdicts"]):
            recs.append("wrk was the bottleneck on some route: give it a core of its own or "
                        "more connections.")
    for sc in scs:
        noisy = [f"{s['rps_cv_pct']:.0f}% ({s['label']})" for s in _servers(sc)
                 if s["rps_cv_pct"] and s["rps_cv_pct"] > 10]
        if noisy:
            recs.append(f"`{sc['scenario']}`: throughput varied {', '.join(noisy)} between "
                        "rounds; the machine is noisy, so use more --rounds or a longer "
                        "--duration before trusting differences of that size.")
    if any(s["client"]["saturated"] for sc in scs for s in _servers(sc)):
        recs.append("A Python client process was saturated: its throughput and latency are "
                    "bounded by the client; the verdict comes from the server-bound "
                    "measurement (wrk).")
    ran = {sc["scenario"] for sc in scs}
    missing = [n for n in ALL_SCENARIOS if n not in ran]
    if missing:
        recs.append("Run the other scenarios too: "
                    + ", ".join(f"`--scenario {n}`" for n in missing) + ".")
    if not any(sc["comparison"] for sc in scs):
        recs.append("Add `--compare` to measure against the `--no-electron` baseline.")
    out = ["## Recommendations", ""]
    out += [f"{n}. {r}" for n, r in enumerate(recs or ["None."], 1)]
    out.append("")
    return out


def _next_steps(report: dict[str, Any]) -> list[str]:
    out = ["## Next Steps", ""]
    failed = not report["passed"]
    ran = {sc["scenario"] for sc in report["scenarios"]}
    if failed:
        out += ["- [ ] Fix the issues found", "- [ ] Re-run this test after the fixes"]
    for n in ALL_SCENARIOS:
        if n not in ran:
            out.append(f"- [ ] Run `python -m bench.loadtest --compare --scenario {n}`")
    if not failed and ran >= set(ALL_SCENARIOS):
        out.append("- [x] Every scenario run and passing")
    out.append("")
    return out


def _machine(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return ["## Environment", "",
            f"- Machine: {m['cpu']}, {m['cores']} cores; {m['platform']}",
            f"- Python {m['python']} ({m['implementation']}); {versions}",
            f"- Interpreter: {describe_interpreter(m.get('interpreter'))}",
            f"- Started {report['started']}, finished {report['finished']}",
            f"- Command: `{report['command']}`", ""]


def assemble(*, title: str, command: str, machine: dict[str, Any], started: str,
             finished: str, scenarios: list[dict[str, Any]],
             server_bound: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report.json document: run metadata, each scenario's ``summarize`` output and
    (with ``--compare``) the server-bound measurement with its verdict.

    ``passed`` is true only when every scenario met every gating target (the verdict, a
    measurement, does not gate).
    """
    return {
        "tool": "bench.loadtest",
        "format": 1,
        "title": title,
        "command": command,
        "machine": machine,
        "started": started,
        "finished": finished,
        "passed": bool(scenarios) and all(sc["passed"] for sc in scenarios),
        "scenarios": scenarios,
        "server_bound": server_bound,
        "verdict": verdict_lines(server_bound) if server_bound is not None else None,
        "files": {"markdown": "report.md", "json": "report.json", "png": {}},
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report.md text for ``report`` (the dict that report.json holds)."""
    pngs: dict[str, str] = report.get("files", {}).get("png", {})
    lines = [f"# Integration Test Report: {report['title']}", ""]
    lines += _summary(report)
    lines += _verdict(report)
    lines += _coverage(report)
    lines += ["## Results", ""]
    lines += summary_table(report)
    for sc in report["scenarios"]:
        lines += _scenario(sc, pngs.get(sc["scenario"]))
    lines += _issues(report)
    lines += _recommendations(report)
    lines += _next_steps(report)
    lines += _machine(report)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(report: dict[str, Any], path: Path) -> Path:
    path.write_text(render_markdown(report), encoding="utf-8")
    return path


def write_json(report: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return path
