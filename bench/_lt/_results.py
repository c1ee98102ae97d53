"""From raw measurements to figures and verdicts: what report.json holds.

``summarize`` turns one scenario's :class:`RunData` into a JSON-ready dict: per server the
throughput, latency percentiles (merged HDR histograms), errors by kind, per-route and
per-round figures, timelines, RSS, ``/stats``, client CPU, and the targets with pass/fail;
plus the electron-vs-baseline ratios and the issues found.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from typing import Any

from ._client import JobResult
from ._hist import LatencyHistogram
from ._runner import RunData, ServerData
from ._verdict import client_tail

__all__ = ("CLIENT_SATURATED_PCT", "summarize")

MIB = 1 << 20
CLIENT_SATURATED_PCT = 90.0  # a client process this busy may be what limits the rate
SLOW = "(slow reader)"


def _merge_routes(results: list[JobResult]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        for name, rr in r.routes.items():
            acc = out.setdefault(name, {"ok": 0, "errors": 0, "bytes_in": 0,
                                        "hist": LatencyHistogram()})
            acc["ok"] += rr.ok
            acc["errors"] += rr.errors
            acc["bytes_in"] += rr.bytes_in
            acc["hist"].merge(rr.hist)
    return out


class _Phase:
    __slots__ = ("hist", "ok", "seconds")

    def __init__(self) -> None:
        self.ok = 0
        self.seconds = 0.0
        self.hist = LatencyHistogram(2)


def _timeline(sd: ServerData, bucket: float, duration: float,
              windows: tuple[tuple[float, float], ...] = ()
              ) -> tuple[list[dict[str, float]], dict[str, dict[str, float]]]:
    """Points of (end time, req/s, p99, errors) over load time, and per-phase figures
    (``burst`` and ``calm``) when the scenario has burst windows."""
    points: list[dict[str, float]] = []
    phases = {name: _Phase() for name in ("calm", "burst")}
    offset = 0.0
    for rd in sd.rounds:
        wall = max((r.wall_s for r in rd.results), default=rd.end_at - rd.start_at)
        # A time-bounded round has duration/bucket points; requests that finished after the
        # deadline fold into the last one, whose width then runs to the end of the round.
        n = max(1, math.ceil(min(wall, duration) / bucket - 1e-9))
        ok = [0] * n
        err = [0] * n
        hists = [LatencyHistogram(2) for _ in range(n)]
        for r in rd.results:
            for i, c, e, h in r.timeline:
                j = min(i, n - 1)
                ok[j] += c
                err[j] += e
                hists[j].merge(h)
        for j in range(n):
            width = bucket if j < n - 1 else max(wall - (n - 1) * bucket, 1e-3)
            points.append({
                "t": round(offset + j * bucket + width, 3),
                "rps": round(ok[j] / width, 1),
                "p99_ms": round(hists[j].percentile(99) / 1e3, 3),
                "errors": err[j],
            })
            if windows:
                mid = j * bucket + min(width, bucket) / 2
                ph = phases["burst" if any(a <= mid < b for a, b in windows) else "calm"]
                ph.ok += ok[j]
                ph.seconds += width
                ph.hist.merge(hists[j])
        offset += wall
    out: dict[str, dict[str, float]] = {}
    if windows:
        for name, ph in phases.items():
            out[name] = {"seconds": round(ph.seconds, 2),
                         "rps": round(ph.ok / ph.seconds, 1) if ph.seconds else 0.0,
                         "p50_ms": round(ph.hist.percentile(50) / 1e3, 3),
                         "p99_ms": round(ph.hist.percentile(99) / 1e3, 3)}
    return points, out


def _rss(sd: ServerData, total_load: float) -> tuple[list[dict[str, float]], dict[str, Any]]:
    series: list[dict[str, float]] = []
    if sd.rss_after_warmup:
        series.append({"t": 0.0, "rss_mib": round(sd.rss_after_warmup.rss / MIB, 2)})
    offset = 0.0
    peak = 0
    for rd in sd.rounds:
        wall = rd.end_at - rd.start_at
        for s in sd.samples:
            if rd.start_at <= s.t <= rd.end_at:
                series.append({"t": round(offset + s.t - rd.start_at, 3),
                               "rss_mib": round(s.rss / MIB, 2)})
                peak = max(peak, s.rss)
        offset += wall
    start = sd.rss_after_warmup.rss if sd.rss_after_warmup else None
    end = sd.rss_end.rss if sd.rss_end else None
    if end is not None:
        series.append({"t": round(offset, 3), "rss_mib": round(end / MIB, 2)})
        peak = max(peak, end)
    mid = next((p["rss_mib"] for p in series if p["t"] >= total_load / 2), None)
    fig: dict[str, Any] = {
        "after_warmup": round(start / MIB, 2) if start is not None else None,
        "end": round(end / MIB, 2) if end is not None else None,
        "peak": round(peak / MIB, 2) if peak else None,
        "half_way": mid,
        "growth": round((end - start) / MIB, 2) if start is not None and end is not None
        else None,
        "growth_second_half": round(end / MIB - mid, 2) if end is not None and mid is not None
        else None,
    }
    return series, fig


def _cv(values: list[float]) -> float | None:
    """Coefficient of variation in percent (how much the rounds disagree)."""
    if len(values) < 2 or not all(values):
        return None
    return round(statistics.pstdev(values) / statistics.mean(values) * 100, 1)


def _log_problems(log: str) -> list[str]:
    """Tracebacks and error lines in a server's log (first few, shortened)."""
    problems: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            tail = next((x for x in lines[i + 1 : i + 60] if re.match(r"^\w[\w.]*(Error|Exception)",
                                                                    x)), "")
            problems.append(f"Traceback ... {tail}".strip())
        elif re.search(r"\b(ERROR|CRITICAL)\b", line):
            problems.append(line.strip()[:200])
    return problems[:10]


def _stats_total(docs: list[dict[str, Any]]) -> dict[str, int] | None:
    """Integer ``/stats`` fields summed over the server's workers (``pid`` left out)."""
    if not docs:
        return None
    total: dict[str, int] = {}
    for d in docs:
        for k, v in d.items():
            if isinstance(v, int) and not isinstance(v, bool) and k != "pid":
                total[k] = total.get(k, 0) + v
    return total


def _stats_fig(docs: list[dict[str, Any]], key: str) -> int | None:
    vals = [d[key] for d in docs if isinstance(d.get(key), int)]
    return max(vals) if vals else None


def _server_summary(data: RunData, sd: ServerData) -> dict[str, Any]:
    cfg = data.config
    results = [r for rd in sd.rounds for r in rd.results]
    routes = _merge_routes(results)
    overall, with_slow = LatencyHistogram(), LatencyHistogram()
    for name, acc in routes.items():
        with_slow.merge(acc["hist"])
        if SLOW not in name:
            overall.merge(acc["hist"])
    ok = sum(r.ok for r in results)
    kinds: dict[str, int] = {}
    samples: dict[str, list[str]] = {}
    for r in results:
        for k, v in r.errors.items():
            kinds[k] = kinds.get(k, 0) + v
        for k, msgs in r.samples.items():
            kept = samples.setdefault(k, [])
            kept.extend(msgs[: max(0, 5 - len(kept))])
    errors = sum(kinds.values())
    warm_kinds: dict[str, int] = {}
    for r in sd.warmup:
        for k, v in r.errors.items():
            warm_kinds[k] = warm_kinds.get(k, 0) + v
        for k, msgs in r.samples.items():
            samples.setdefault(k, []).extend(f"(warm-up) {m}" for m in msgs[:2])
    walls = [max((r.wall_s for r in rd.results), default=0.0) for rd in sd.rounds]
    duration = sum(walls)
    bytes_in = sum(r.bytes_in for r in results)
    rounds = []
    for rd, wall in zip(sd.rounds, walls, strict=True):
        rh = LatencyHistogram()
        for name, acc in _merge_routes(rd.results).items():
            if SLOW not in name:
                rh.merge(acc["hist"])
        rok = sum(r.ok for r in rd.results)
        rounds.append({
            "round": rd.index + 1,
            "wall_s": round(wall, 3),
            "ok": rok,
            "errors": sum(sum(r.errors.values()) for r in rd.results),
            "rps": round(rok / wall, 1) if wall else 0.0,
            "p99_ms": round(rh.percentile(99) / 1e3, 3),
            "p99_9_ms": round(rh.percentile(99.9) / 1e3, 3),
            "max_ms": round(rh.max_us / 1e3, 3),
            "server_cpu_pct": round(rd.server_cpu_s / wall * 100, 1)
            if rd.server_cpu_s is not None and wall else None,
        })
    cpu_total = [rd.server_cpu_s for rd in sd.rounds]
    server_cpu = (round(sum(c for c in cpu_total if c is not None) / duration * 100, 1)
                  if duration and cpu_total and all(c is not None for c in cpu_total) else None)
    per_proc: dict[int, list[float]] = {}
    for r in results:
        c = per_proc.setdefault(r.index, [0.0, 0.0])
        c[0] += r.cpu_s
        c[1] += r.wall_s
    client_cpu = [round(c / w * 100, 1) if w else 0.0 for c, w in
                  (per_proc[i] for i in sorted(per_proc))]
    busy = [rd.machine_busy_pct for rd in sd.rounds if rd.machine_busy_pct is not None]
    machine_busy = round(statistics.mean(busy), 1) if busy else None
    cores = os.cpu_count() or 1
    client_cores = sum(r.cpu_s for r in results) / duration if duration else 0.0
    server_cores = (server_cpu or 0.0) / 100
    other_cores = (max(0.0, machine_busy / 100 * cores - client_cores - server_cores)
                   if machine_busy is not None and server_cpu is not None else None)
    timeline, phases = _timeline(sd, cfg.bucket, cfg.round_duration, cfg.burst_windows)
    rss_series, rss = _rss(sd, duration)
    attempts = ok + errors
    return {
        "label": sd.label,
        "electron": sd.electron,
        "url": sd.url,
        "command": sd.command,
        "requests": ok,
        "errors": errors,
        "attempts": attempts,
        "error_rate_pct": round(errors / attempts * 100, 4) if attempts else 0.0,
        "errors_by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "error_samples": samples,
        "warmup": {"requests": sum(r.ok for r in sd.warmup), "errors": warm_kinds},
        "bad_bodies": kinds.get("bad_body", 0) + warm_kinds.get("bad_body", 0),
        "duration_s": round(duration, 3),
        "throughput_rps": round(ok / duration, 1) if duration else 0.0,
        "bytes_in": bytes_in,
        "bytes_out": sum(r.bytes_out for r in results),
        "mib_per_s": round(bytes_in / MIB / duration, 2) if duration else 0.0,
        "latency_ms": overall.summary_ms(),
        "latency_ms_incl_slow_readers": with_slow.summary_ms(),
        "routes": [
            {"route": name, "ok": acc["ok"], "errors": acc["errors"],
             "mib": round(acc["bytes_in"] / MIB, 2),
             "latency_ms": acc["hist"].summary_ms()}
            for name, acc in sorted(routes.items())
        ],
        "rounds": rounds,
        "rps_cv_pct": _cv([float(r["rps"] or 0.0) for r in rounds]),
        "timeline": timeline,
        "phases": phases,
        "rss_timeline": rss_series,
        "rss_mib": rss,
        "server_cpu_pct": server_cpu,
        "client": {
            "procs": cfg.procs,
            "cpu_pct": client_cpu,
            "max_cpu_pct": max(client_cpu, default=0.0),
            "saturated": max(client_cpu, default=0.0) >= CLIENT_SATURATED_PCT,
            "cores_used": round(client_cores, 2),
            "gc_collections": sum(r.gc_collections for r in results),
            "gc_ms": round(sum(r.gc_s for r in results) * 1e3, 2),
            "gc_max_pause_ms": round(max((r.gc_max_pause_s for r in results), default=0.0)
                                     * 1e3, 2),
        },
        "machine": {
            "cores": cores,
            "busy_pct": machine_busy,
            "server_cores": round(server_cores, 2),
            "client_cores": round(client_cores, 2),
            "other_cores": round(other_cores, 2) if other_cores is not None else None,
            "cpu_bound": machine_busy is not None and machine_busy >= 95.0,
        },
        "stats_before": sd.stats_before[0] if sd.stats_before else None,
        "stats_after": sd.stats_after[0] if sd.stats_after else None,
        "stats_after_all": sd.stats_after,
        "stats_after_total": _stats_total(sd.stats_after),
        "stats_workers": len(sd.stats_after),
        "active_arenas_after": _stats_fig(sd.stats_after, "active_arenas"),
        "active_buffers_before": _stats_fig(sd.stats_before, "active_buffers"),
        "active_buffers_after": _stats_fig(sd.stats_after, "active_buffers"),
        "settle_s": round(sd.settle_s, 3) if sd.settle_s is not None else None,
        "log_problems": _log_problems(sd.log),
        "exit_code": sd.exit_code,
    }


def _target(name: str, bound: str, value: str, passed: bool | None, gating: bool
            ) -> dict[str, Any]:
    return {"name": name, "bound": bound, "value": value, "passed": passed, "gating": gating}


def _targets(data: RunData, s: dict[str, Any]) -> list[dict[str, Any]]:
    cfg = data.config
    electron = bool(s["electron"])
    died = bool(data.aborted and s["label"] in data.aborted)
    ran = s["attempts"] > 0
    out = [
        _target("error rate", f"< {cfg.max_error_rate:g}%",
                f"{s['error_rate_pct']:.3f}% ({s['errors']:,} of {s['attempts']:,})" if ran
                else "no request was made", ran and s["error_rate_pct"] < cfg.max_error_rate,
                True),
        _target("every body correct", "0 wrong bodies", f"{s['bad_bodies']:,} wrong",
                s["bad_bodies"] == 0 if ran else None, True),
    ]
    arenas = s["active_arenas_after"]
    if electron and not died:
        out.append(_target(
            "no leaked arenas", "active_arenas == 0 after the load",
            "no /stats" if arenas is None else f"active_arenas = {arenas}",
            arenas == 0, True))
    else:
        out.append(_target("no leaked arenas", "active_arenas == 0 after the load",
                           "n/a (server died)" if died else "n/a (no arenas)", None, False))
    rss = s["rss_mib"]
    key = "growth" if cfg.rss_window == "run" else "growth_second_half"
    where = "end vs after warm-up" if cfg.rss_window == "run" else "end vs half-way"
    growth = rss.get(key)
    bound = f"<= {cfg.max_rss_growth_mib:g} MiB ({where})"
    if growth is None or died:
        out.append(_target("RSS growth bounded", bound, "not measured", None, False))
    else:
        out.append(_target("RSS growth bounded", bound, f"{growth:+.1f} MiB",
                           growth <= cfg.max_rss_growth_mib, electron))
    if died:
        out.append(_target("server stayed up", "no crash during the load", str(data.aborted),
                           False, True))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _comparison(e: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    le, lb = e["latency_ms"], b["latency_ms"]
    return {
        "throughput_ratio": _ratio(e["throughput_rps"], b["throughput_rps"]),
        "p50_ratio": _ratio(le["p50"], lb["p50"]),
        "p99_ratio": _ratio(le["p99"], lb["p99"]),
        "rss_peak_ratio": _ratio(e["rss_mib"]["peak"], b["rss_mib"]["peak"]),
        "round_ratios": [
            _ratio(re_["rps"], rb["rps"]) for re_, rb in zip(e["rounds"], b["rounds"],
                                                             strict=False)
        ],
        "note": "ratios are electron / baseline: > 1 is better for throughput, "
                "< 1 is better for latency and RSS",
    }


def _issue(title: str, severity: str, impact: str, fix: str, details: list[str] | None = None
           ) -> dict[str, Any]:
    return {"title": title, "severity": severity, "impact": impact, "fix": fix,
            "details": details or []}


def _issues(data: RunData, servers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []
    if data.aborted:
        issues.append(_issue(f"Run aborted: {data.aborted}", "High",
                             "the server crashed under load; later rounds did not run",
                             "see the server log in the report folder"))
    for label, s in servers.items():
        for t in s["targets"]:
            died = bool(data.aborted and label in data.aborted)
            if t["passed"] is False and t["name"] != "server stayed up" and not died:
                sev = "High" if t["name"] in {"every body correct", "no leaked arenas"} \
                    else "Medium"
                if not t["gating"]:
                    sev = "Low"
                details = []
                if t["name"] in {"error rate", "every body correct"}:
                    kinds = s["errors_by_kind"]
                    details = [f"{k}: {v:,}" for k, v in kinds.items()]
                    wanted = ["bad_body"] if t["name"] == "every body correct" else list(kinds)
                    for k in wanted:
                        details += [f"e.g. {m}" for m in s["error_samples"].get(k, [])[:3]]
                impact = {
                    "error rate": "clients saw failed requests",
                    "every body correct": "a client received bytes that were not its own "
                                          "response: memory was reused while still in use",
                    "no leaked arenas": "arenas were not returned after their requests ended",
                    "RSS growth bounded": "server memory kept growing under steady load",
                }.get(t["name"], "target missed")
                fix = {
                    "every body correct": "find where pooled memory is released before the "
                                          "transport has sent it (hazards 1 and 2)",
                    "no leaked arenas": "check the middleware returns the arena on every path "
                                        "(aborted downloads, cancellation, errors)",
                    "RSS growth bounded": "run --scenario soak and compare /stats bytes_reserved"
                                          " with RSS to tell pool growth from a leak",
                    "error rate": "see the error kinds and the server log",
                }.get(t["name"], "")
                issues.append(_issue(f"{label}: {t['name']} missed ({t['value']}, target "
                                     f"{t['bound']})", sev, impact, fix, details))
        if s["client"]["saturated"]:
            issues.append(_issue(
                f"{label}: a client process was {s['client']['max_cpu_pct']:.0f}% busy",
                "Low", "the load generator may have limited the rate: the throughput is a "
                "lower bound of what the server can do",
                "re-run with more --procs or on a machine with more cores"))
        if s["log_problems"]:
            issues.append(_issue(f"{label}: errors in the server log", "Medium",
                                 "the server logged exceptions while under load",
                                 "read the server log in the report folder", s["log_problems"]))
        before, after = s["active_buffers_before"], s["active_buffers_after"]
        if s["electron"] and after is not None and after > (before or 0):
            issues.append(_issue(f"{label}: {after} buffer(s) still lent out after the load",
                                 "Medium", "pooled buffers were not returned",
                                 "check every path that takes a buffer gives it back"))
        leaks = (s["stats_after_total"] or {}).get("leaks_detected", 0)
        if s["electron"] and leaks:
            issues.append(_issue(f"{label}: the core detected {leaks} leak(s)", "High",
                                 "arenas or buffers were dropped without being returned to "
                                 "the pool (found by electron's leak detector)",
                                 "see the server log for where they were taken"))
        if s["electron"] and s["settle_s"] is not None and s["settle_s"] > 1.0:
            issues.append(_issue(f"{label}: arenas came back {s['settle_s']:.1f} s after the "
                                 "load ended", "Low", "memory stays lent out after requests end",
                                 "check connections that close late (slow readers, keep-alive)"))
    busy = [s for s in servers.values() if s["machine"]["cpu_bound"]]
    if busy:
        m = busy[0]["machine"]
        other = ("" if m["other_cores"] is None
                 else f"; other processes used {m['other_cores']:.2f} cores")
        issues.append(_issue(
            f"the machine was CPU-bound ({m['busy_pct']:.0f}% of {m['cores']} cores busy"
            f"{other})", "Low",
            "client, server and unrelated work competed for the cores: absolute rates are "
            "low and noisy; the alternating rounds keep the electron/baseline ratios fair",
            "run on an otherwise idle machine with more cores than server workers + clients"))
    return issues


def summarize(data: RunData, description: str = "") -> dict[str, Any]:
    """One scenario's figures, targets, comparison and issues as a JSON-ready dict."""
    servers = {label: _server_summary(data, sd) for label, sd in data.servers.items()}
    for s in servers.values():
        s["targets"] = _targets(data, s)
    e, b = servers.get("electron"), servers.get("baseline")
    comparison = _comparison(e, b) if e and b else None
    issues = _issues(data, servers)
    passed = not data.aborted and all(
        t["passed"] is not False for s in servers.values() for t in s["targets"] if t["gating"]
    )
    out = {
        "scenario": data.config.scenario,
        "description": description,
        "config": data.config.public(),
        "started": data.started,
        "finished": data.finished,
        "wall_s": round(data.wall_s, 2),
        "aborted": data.aborted,
        "servers": servers,
        "comparison": comparison,
        "issues": issues,
        "passed": passed,
    }
    out["client_tail"] = client_tail(out)
    return out
