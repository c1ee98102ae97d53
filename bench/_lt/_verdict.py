"""The verdict: what the server-bound measurement says, and how far it can be trusted.

Pure functions of measured figures (no I/O, no clock), so that the rules can be tested with
synthetic inputs:

- a throughput ratio is *faster* or *slower* only when its 95% interval over rounds excludes
  1.0; otherwise it is *inconclusive*;
- a route whose load generator was near saturation while the server was not gives no verdict
  (the generator, not the server, set the pace);
- the overall ratio is the geometric mean of the usable routes' median ratios, its interval a
  bootstrap that resamples each route's rounds;
- the latency tail (p99, p99.9, max) of the two servers is compared round by round: they
  *differ* only when the ranges over rounds do not overlap (the difference is larger than
  the round-to-round spread), and then the causes the measurement can see are named.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = (
    "FASTER",
    "INCONCLUSIVE",
    "NO_VERDICT",
    "SATURATED_PCT",
    "SLOWER",
    "classify",
    "compare_tail",
    "generator_bound",
    "overall_verdict",
    "route_verdict",
    "tail_causes",
    "verdict_lines",
)

FASTER, SLOWER, INCONCLUSIVE, NO_VERDICT = "faster", "slower", "inconclusive", "no verdict"
#: A process this busy (percent of one core) is near saturation.
SATURATED_PCT = 90.0
#: A server that got less of its core than this (while its load generator was not
#: saturated) was kept waiting: by other processes on the machine, or by its own I/O.
STARVED_PCT = 80.0
#: RSS growth while loaded that counts as "grew more" (MiB, and times the other side's).
RSS_GROWTH_MIB, RSS_GROWTH_FACTOR = 8.0, 1.5
MIB = 1 << 20


def classify(low: float, high: float) -> str:
    """``faster`` / ``slower`` when the interval of electron ÷ baseline throughput excludes
    1.0, else ``inconclusive``."""
    if low > 1.0:
        return FASTER
    if high < 1.0:
        return SLOWER
    return INCONCLUSIVE


def generator_bound(client_pct: float | None, server_pct: float | None,
                    limit: float = SATURATED_PCT) -> bool:
    """True when the load generator used ``limit``% or more of a core while the server did
    not (or the server's share is unknown): the generator, not the server, set the pace."""
    if client_pct is None or client_pct < limit:
        return False
    return server_pct is None or server_pct < limit


def _fmt_x(v: float) -> str:
    return f"{v:.2f}x"


def _interval(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.2f}-{ci[1]:.2f}]"


def route_verdict(route: dict[str, Any]) -> dict[str, Any]:
    """The verdict on one route of the server-bound measurement (a ``bench.sweep`` route
    record with the load generator's CPU share added per side).

    Returns ``route``, ``ratio``, ``ci95``, ``rounds``, ``verdict`` (faster, slower,
    inconclusive, or no verdict), ``reason`` (why no verdict), ``bottleneck`` (the sides whose
    load generator was saturated), ``caveats`` and the CPU-per-request ratio.
    """
    name = route["route"]
    if route.get("error"):
        return {"route": name, "verdict": NO_VERDICT, "reason": f"not measured: {route['error']}",
                "ratio": None, "ci95": None, "rounds": [], "bottleneck": [], "caveats": [],
                "cpu_ratio": None}
    ratio = route["ratios"]["baseline"]
    out: dict[str, Any] = {
        "route": name, "ratio": ratio["median"], "ci95": list(ratio["ci95"]),
        "rounds": list(ratio["rounds"]), "verdict": classify(*ratio["ci95"]), "reason": None,
        "bottleneck": [], "caveats": [],
        "cpu_ratio": route.get("cpu_ratios", {}).get("baseline"),
    }
    sides = {label: route["sides"][label] for label in ("electron", "baseline")}
    starved: list[str] = []
    for label, side in sides.items():
        client = side.get("client_cpu_percent_median")
        server = side.get("server_cpu_percent_median")
        if generator_bound(client, server):
            out["bottleneck"].append({"side": label, "client_cpu_percent": client,
                                      "server_cpu_percent": server})
        elif server is not None and server < STARVED_PCT:
            starved.append(f"{label} {server:.0f}% (wrk "
                           + ("?" if client is None else f"{client:.0f}%") + ")")
    if starved:
        out["starved"] = True
        out["caveats"].append(
            "neither the server nor wrk used its whole core (servers: " + ", ".join(starved)
            + "): the machine's other processes took the rest, or the server waited; both "
            "servers took turns under the same conditions, so the ratio stands (compare it "
            "with CPU per request), the absolute rates do not")
    cpu = out["cpu_ratio"]
    if cpu is not None:
        out["cpu_verdict"] = classify(*cpu["ci95"])
    errors = {label: side.get("errors", 0) for label, side in sides.items()}
    if out["bottleneck"]:
        b = out["bottleneck"][0]
        out["verdict"] = NO_VERDICT
        out["reason"] = (f"the load generator was the bottleneck ({b['side']}: wrk "
                         f"{b['client_cpu_percent']:.0f}% of a core, server "
                         + ("?" if b["server_cpu_percent"] is None
                            else f"{b['server_cpu_percent']:.0f}%") + ")")
    elif any(errors.values()):
        out["verdict"] = NO_VERDICT
        out["reason"] = "errors: " + ", ".join(f"{k} {v}" for k, v in errors.items() if v)
    return out


def overall_verdict(verdicts: Sequence[dict[str, Any]], draws: int = 2000) -> dict[str, Any]:
    """Electron ÷ baseline over the routes that gave a verdict: the geometric mean of their
    median ratios, and a 95% bootstrap interval of it (each draw resamples every route's
    rounds, takes each route's median and their geometric mean; fixed seed)."""
    usable = [v for v in verdicts if v["verdict"] != NO_VERDICT and v["rounds"]]
    left_out = [v["route"] for v in verdicts if v not in usable]
    if not usable:
        return {"ratio": None, "ci95": None, "verdict": NO_VERDICT, "routes": [],
                "left_out": left_out, "faster": [], "slower": [],
                "reason": "no route gave a verdict"}

    def geomean(values: Sequence[float]) -> float:
        return math.exp(statistics.fmean(math.log(x) for x in values))

    rng = random.Random(0)
    means = sorted(
        geomean([statistics.median(rng.choices(v["rounds"], k=len(v["rounds"])))
                 for v in usable])
        for _ in range(draws))
    low, high = means[int(0.025 * draws)], means[int(0.975 * draws) - 1]
    ratio = geomean([v["ratio"] for v in usable])
    return {
        "ratio": round(ratio, 4), "ci95": [round(low, 4), round(high, 4)],
        "verdict": classify(low, high), "routes": [v["route"] for v in usable],
        "left_out": left_out, "reason": None,
        "faster": [v["route"] for v in usable if v["verdict"] == FASTER],
        "slower": [v["route"] for v in usable if v["verdict"] == SLOWER],
    }


# -- the latency tail ------------------------------------------------------------------------


def compare_tail(metric: str, electron: Sequence[float | None],
                 baseline: Sequence[float | None]) -> dict[str, Any] | None:
    """One tail metric (microseconds, one value per round per side) of the two servers.

    ``differs`` is ``higher`` / ``lower`` (electron's against the baseline's) when the two
    sides' ranges over rounds do not overlap, i.e. the difference is larger than the
    round-to-round spread; ``None`` when they overlap, or when there are fewer than two
    rounds a side (no spread to compare with). None when a side has no value.
    """
    e = [float(x) for x in electron if x is not None]
    b = [float(x) for x in baseline if x is not None]
    if not e or not b:
        return None
    differs = None
    if len(e) >= 2 and len(b) >= 2:
        if min(e) > max(b):
            differs = "higher"
        elif max(e) < min(b):
            differs = "lower"
    return {"metric": metric, "electron": statistics.median(e), "baseline": statistics.median(b),
            "electron_range": [min(e), max(e)], "baseline_range": [min(b), max(b)],
            "rounds": min(len(e), len(b)), "differs": differs}


def tail_causes(worse: dict[str, Any], better: dict[str, Any], *, gc: str | None = None
                ) -> list[str]:
    """Causes of a worse latency tail that the measurement can see, from the two servers'
    observations (each a dict of optional figures): ``label``, ``client_cpu_pct`` (the load
    generator's share of a core), ``client_saturated``, ``server_cpu_pct``,
    ``cpu_us_per_request``, ``rss_growth_mib`` (while loaded), ``client_gc_max_ms`` (the
    longest collection pause in a client process), ``loadavg`` and ``cores``.

    Returns one sentence per cause, or ``["not determined ..."]``; ``gc`` is a note on the
    server's garbage collector (e.g. that it is not exposed), appended to that answer.
    """
    causes: list[str] = []
    w, b = worse["label"], better["label"]
    if worse.get("client_saturated") or generator_bound(worse.get("client_cpu_pct"),
                                                        worse.get("server_cpu_pct")):
        causes.append(f"the load generator of the {w} run was near saturation "
                      f"({worse.get('client_cpu_pct') or 0:.0f}% of a core): its own queueing "
                      "is part of the measured latency")
    gw, gb = worse.get("client_gc_max_ms"), better.get("client_gc_max_ms")
    if gw is not None and gw >= 1.0 and (gb is None or gw > 2 * gb):
        causes.append(f"a garbage collection paused a client process for {gw:.1f} ms in the "
                      f"{w} run (longest in the {b} run: "
                      + ("-" if gb is None else f"{gb:.1f} ms") + "): every request in flight "
                      "in that process waited for it (it adds at most that much to a latency)")
    cw, cb = worse.get("cpu_us_per_request"), better.get("cpu_us_per_request")
    if cw and cb and cw > 1.1 * cb:
        causes.append(f"the {w} server spends more CPU per request ({cw:.0f} vs {cb:.0f} µs): "
                      "requests queue longer behind each other")
    rw, rb = worse.get("rss_growth_mib"), better.get("rss_growth_mib")
    if rw is not None and rw > RSS_GROWTH_MIB and rw > RSS_GROWTH_FACTOR * max(rb or 0.0, 0.0):
        causes.append(f"the {w} server's RSS grew more while loaded (+{rw:.0f} vs "
                      + ("?" if rb is None else f"+{rb:.0f}") + " MiB): faulting in fresh "
                      "memory (and the allocator returning it) takes time on the request path")
    sw, sb = worse.get("server_cpu_pct"), better.get("server_cpu_pct")
    if sw is not None and sw < STARVED_PCT and (sb is None or sw < sb - 5):
        load, cores = worse.get("loadavg"), worse.get("cores")
        busy = (f"; load average {load:.1f} on {cores} cores" if load is not None and cores
                else "")
        causes.append(f"the {w} server got {sw:.0f}% of its core"
                      + ("" if sb is None else f" ({b}: {sb:.0f}%)") + busy
                      + ": it was kept off the CPU at times, and requests waited meanwhile")
    if not causes:
        causes.append("not determined: none of the recorded figures (load generator CPU, "
                      "server CPU per request and share of its core, RSS growth"
                      + (", client GC pauses" if "client_gc_max_ms" in worse else "")
                      + ") tells the two runs apart" + (f"; {gc}" if gc else ""))
    elif gc:
        causes.append(gc)
    return causes


# -- text ------------------------------------------------------------------------------------


def _route_line(v: dict[str, Any]) -> str:
    if v["ratio"] is None:
        return f"{v['route']}: no verdict: {v['reason']}"
    text = f"{v['route']}: {_fmt_x(v['ratio'])} {_interval(v['ci95'])} "
    if v["verdict"] == NO_VERDICT:
        return text + f"no verdict: {v['reason']}"
    if v["verdict"] == INCONCLUSIVE:
        return text + "inconclusive (the interval includes 1.0)"
    return text + ("electron faster" if v["verdict"] == FASTER else "electron slower")


def verdict_lines(server_bound: dict[str, Any]) -> list[str]:
    """The verdict as plain lines (the report's and the terminal's): overall first, then
    one line per route."""
    if not server_bound.get("ran"):
        return [f"Verdict: none. The server-bound measurement was skipped: "
                f"{server_bound.get('skipped')}. The Python clients' throughput is not used "
                "for a verdict (on a small machine they, not the server, set the pace)."]
    o = server_bound["overall"]
    c = server_bound["config"]
    how = (f"server-bound: wrk and the server on separate cores, {c['rounds']} alternating "
           f"rounds of {c['seconds']:g} s per route")
    if o["ratio"] is None:
        head = f"Verdict: none ({how}): {o['reason']}."
    else:
        word = {FASTER: "electron is faster than the baseline",
                SLOWER: "electron is slower than the baseline",
                INCONCLUSIVE: "inconclusive (the interval includes 1.0)"}[o["verdict"]]
        head = (f"Verdict ({how}): electron ÷ baseline throughput {_fmt_x(o['ratio'])} "
                f"{_interval(o['ci95'])} (geometric mean over {len(o['routes'])} route(s), "
                f"95% bootstrap interval over rounds): {word}.")
        if o["faster"] and o["slower"]:
            head += (f" Mixed: faster on {', '.join(o['faster'])}; slower on "
                     f"{', '.join(o['slower'])}.")
        if o["left_out"]:
            head += f" Left out (no verdict): {', '.join(o['left_out'])}."
        used = [v for v in server_bound["verdicts"] if v["route"] in o["routes"]]
        starved = [v for v in used if v.get("starved")]
        if starved:
            head += (f" On {len(starved)} of {len(used)} route(s) the servers did not get a "
                     "whole core (a shared machine): a comparison under the same contention, "
                     "not of saturated servers.")
        cpu = [v for v in used if v.get("cpu_verdict")]
        if cpu:
            agree = sum(v["cpu_verdict"] == v["verdict"] for v in cpu)
            head += (f" Server CPU per request agrees with the throughput verdict on {agree} "
                     f"of {len(cpu)} route(s).")
    return [head, *(f"  {_route_line(v)}" for v in server_bound["verdicts"])]


# -- putting it together ---------------------------------------------------------------------

#: What the report says about the server's garbage collector.
SERVER_GC = ("the server's garbage collections were not recorded (the example server does "
             "not expose gc counts or pause times)")
_TAIL_METRICS = (("p99", "latency_p99_us"), ("p99.9", "latency_p999_us"),
                 ("max", "latency_max_us"))


def _tail(route: str, metrics: list[dict[str, Any]], observe: dict[str, dict[str, Any]],
          gc: str | None) -> dict[str, Any]:
    """A route's tail comparison and, per direction in which the servers differ, the causes."""
    out: dict[str, Any] = {"route": route, "metrics": metrics, "findings": []}
    for direction, worse, better in (("higher", "electron", "baseline"),
                                     ("lower", "baseline", "electron")):
        names = [m["metric"] for m in metrics if m["differs"] == direction]
        if names:
            out["findings"].append({
                "worse": worse, "metrics": names,
                "causes": tail_causes(observe[worse], observe[better], gc=gc),
            })
    return out


def server_bound_tail(route: dict[str, Any], cores: int | None) -> dict[str, Any] | None:
    """The latency tail of one server-bound route: wrk's p99, p99.9 and max per round."""
    if route.get("error"):
        return None
    sides = route["sides"]
    metrics = [m for name, key in _TAIL_METRICS
               if (m := compare_tail(name, [r.get(key) for r in sides["electron"]["rounds"]],
                                     [r.get(key) for r in sides["baseline"]["rounds"]]))]
    load = max(route.get("loadavg_before", [0.0])[0], route.get("loadavg_after", [0.0])[0])
    observe = {
        label: {
            "label": label,
            "client_cpu_pct": s.get("client_cpu_percent_median"),
            "server_cpu_pct": s.get("server_cpu_percent_median"),
            "cpu_us_per_request": s.get("cpu_us_per_request_median"),
            "rss_growth_mib": ((s["rss_peak"] - s["rss_idle"]) / MIB
                               if s.get("rss_peak") and s.get("rss_idle") else None),
            "loadavg": load, "cores": cores,
        }
        for label, s in ((k, sides[k]) for k in ("electron", "baseline"))
    }
    return _tail(route["route"], metrics, observe, SERVER_GC)


def analyze_server_bound(server_bound: dict[str, Any], cores: int | None) -> dict[str, Any]:
    """``server_bound`` (the part's record) with ``verdicts``, ``overall`` and ``tails``."""
    if not server_bound.get("ran"):
        return server_bound
    verdicts = [route_verdict(r) for r in server_bound["routes"]]
    tails = [t for r in server_bound["routes"] if (t := server_bound_tail(r, cores))]
    return {**server_bound, "verdicts": verdicts, "overall": overall_verdict(verdicts),
            "tails": tails}


def client_tail(scenario: dict[str, Any]) -> dict[str, Any] | None:
    """The latency tail of the Python clients' run of a ``--compare`` scenario (p99, p99.9
    and max per round, as the clients measured them)."""
    servers = scenario.get("servers", {})
    if "electron" not in servers or "baseline" not in servers:
        return None
    metrics = [m for name, key in (("p99", "p99_ms"), ("p99.9", "p99_9_ms"), ("max", "max_ms"))
               if (m := compare_tail(
                   name, [None if r.get(key) is None else r[key] * 1e3
                          for r in servers["electron"]["rounds"]],
                   [None if r.get(key) is None else r[key] * 1e3
                    for r in servers["baseline"]["rounds"]]))]

    def observe(s: dict[str, Any]) -> dict[str, Any]:
        rss = s.get("rss_mib", {})
        peak, start = rss.get("peak"), rss.get("after_warmup")
        out = {
            "label": s["label"],
            "client_cpu_pct": s["client"]["max_cpu_pct"],
            "client_saturated": s["client"]["saturated"],
            "server_cpu_pct": s.get("server_cpu_pct"),
            "cpu_us_per_request": (s["server_cpu_pct"] / 100 * s["duration_s"] / s["requests"]
                                   * 1e6 if s.get("server_cpu_pct") and s.get("requests")
                                   else None),
            "rss_growth_mib": peak - start if peak is not None and start is not None else None,
        }
        if s["client"].get("gc_max_pause_ms") is not None:
            out["client_gc_max_ms"] = s["client"]["gc_max_pause_ms"]
        return out

    observe_all = {label: observe(servers[label]) for label in ("electron", "baseline")}
    return _tail(f"{scenario['scenario']} (Python clients, route mix)", metrics, observe_all,
                 SERVER_GC)


def tail_lines(tail: dict[str, Any]) -> list[str]:
    """One tail comparison as plain lines: the figures, then each finding and its causes."""
    def ms(us: float) -> str:
        return f"{us / 1e3:.1f}"

    figs = "; ".join(
        f"{m['metric']} electron {ms(m['electron_range'][0])}-{ms(m['electron_range'][1])} ms "
        f"(median {ms(m['electron'])}) vs baseline {ms(m['baseline_range'][0])}-"
        f"{ms(m['baseline_range'][1])} ms (median {ms(m['baseline'])})"
        for m in tail["metrics"])
    lines = [f"{tail['route']}, over rounds: {figs or 'no latency figures'}."]
    if not tail["findings"]:
        one_round = any(m["rounds"] < 2 for m in tail["metrics"])
        lines.append("  " + ("one round a side: no round-to-round spread to judge a difference "
                             "by" if one_round else
                             "no difference beyond the round-to-round spread (the ranges over "
                             "rounds overlap)") + ".")
    lines.extend(
        f"  {f['worse']}'s {', '.join(f['metrics'])} above "
        f"{'baseline' if f['worse'] == 'electron' else 'electron'}'s in every round (the ranges "
        "over rounds do not overlap: a difference beyond the round-to-round spread). Likely "
        "cause(s) seen: " + "; ".join(f["causes"]) + "."
        for f in tail["findings"])
    return lines
