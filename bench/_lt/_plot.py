"""The PNG: throughput, p99 latency and server RSS over load time, electron vs baseline.

One figure per scenario, three stacked panels sharing the time axis, one line per server, so
the two servers are read side by side at the same moment of their load. Uses matplotlib's
Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ("plot_scenario",)

_COLORS = {"electron": "#1f77b4", "baseline": "#ff7f0e"}


def plot_scenario(sc: dict[str, Any], path: Path, machine: str = "") -> Path:
    """Draw ``sc`` (one scenario of report.json) into ``path`` and return it."""
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True, constrained_layout=True)
    ax_rps, ax_p99, ax_rss = axes
    for label, s in sc["servers"].items():
        color = _COLORS.get(label)
        tl = s["timeline"]
        t = [p["t"] for p in tl]
        ax_rps.plot(t, [p["rps"] for p in tl], color=color, label=label, lw=1.6)
        ax_p99.plot(t, [p["p99_ms"] for p in tl], color=color, label=label, lw=1.6)
        rss = s["rss_timeline"]
        if rss:
            ax_rss.plot([p["t"] for p in rss], [p["rss_mib"] for p in rss], color=color,
                        label=label, lw=1.6)
        errs = [(p["t"], p["rps"]) for p in tl if p["errors"]]
        if errs:
            ax_rps.scatter(*zip(*errs, strict=True), color="red", marker="x", zorder=3,
                           label=f"{label}: errors")
        # Round boundaries: the rounds alternate between servers, so mark where each ends.
        end = 0.0
        for r in s["rounds"][:-1]:
            end += r["wall_s"]
            for ax in axes:
                ax.axvline(end, color=color, alpha=0.15, lw=1)
    cfg = sc["config"]
    first = next(iter(sc["servers"].values()))
    windows = cfg.get("burst_windows") or []
    start = 0.0
    for r in first["rounds"]:
        for a, b in windows:
            for ax in axes:
                ax.axvspan(start + a, start + b, color="grey", alpha=0.12, lw=0)
        start += r["wall_s"]
    if windows:
        ax_rps.text(0.01, 0.97, "shaded: burst windows", transform=ax_rps.transAxes,
                    fontsize=8, va="top", color="dimgrey")
    title = (f"{sc['scenario']}: {cfg['concurrency']} clients"
             + (f" + {cfg['slow_readers']} slow readers" if cfg["slow_readers"] else "")
             + (f", bursts x{cfg['burst_factor']}" if cfg["burst_factor"] > 1 else "")
             + f", {cfg['duration']:g} s per server in {cfg['rounds']} alternating rounds")
    fig.suptitle(title + (f"\n{machine}" if machine else ""), fontsize=11)
    ax_rps.set_ylabel("throughput (req/s)")
    ax_p99.set_ylabel("p99 latency (ms)")
    ax_rss.set_ylabel("server RSS (MiB)")
    ax_rss.set_xlabel("seconds of load on each server (rounds joined end to end)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    if not any(s["rss_timeline"] for s in sc["servers"].values()):
        ax_rss.text(0.5, 0.5, "RSS not measured (--url without --server-pid)",
                    transform=ax_rss.transAxes, ha="center", va="center", color="dimgrey")
    ax_rps.set_ylim(bottom=0)
    ax_p99.set_ylim(bottom=0)
    lo, hi = ax_rss.get_ylim()
    if hi - lo < 16:  # a flat line should look flat, not like noise blown up
        mid = (hi + lo) / 2
        ax_rss.set_ylim(max(0.0, mid - 8), mid + 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
