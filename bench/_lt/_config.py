"""What a load-test run does: the settings, and the named scenario presets.

A scenario fills in defaults; any option given on the command line wins over it. Every
preset is bounded in time (and ``--quick`` shrinks it to seconds for CI).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._mix import DEFAULT_MIX, parse_mix
from ._server import DEFAULT_SCRIPT

__all__ = ("SCENARIOS", "Config", "Scenario", "resolve")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named preset: a one-line description and the option defaults it sets."""

    name: str
    description: str
    settings: dict[str, Any]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "mixed",
            "normal operation: 32 concurrent clients on the full route mix",
            {"concurrency": 32, "duration": 10.0, "rounds": 3},
        ),
        Scenario(
            "stress",
            "high concurrency: 100 concurrent clients, sustained",
            {"concurrency": 100, "duration": 20.0, "rounds": 4},
        ),
        Scenario(
            "soak",
            "memory leak detection: a longer run watching RSS for growth in its second half",
            {"concurrency": 32, "duration": 120.0, "rounds": 4, "warmup": 5.0,
             "rss_window": "second-half", "max_rss_growth_mib": 16.0},
        ),
        Scenario(
            "burst",
            "sudden load: 10 clients, then 10x (100) in the middle third of every round",
            {"concurrency": 10, "burst_factor": 10, "duration": 15.0, "rounds": 3,
             "max_rss_growth_mib": 128.0},
        ),
        Scenario(
            "slow-readers",
            "slow readers: clients with a 4 KiB receive buffer draining 1 MiB bodies slowly "
            "while others churn the route mix",
            {"concurrency": 24, "slow_readers": 8, "duration": 12.0, "rounds": 3,
             "max_rss_growth_mib": 128.0},
        ),
    )
}

_QUICK: dict[str, Any] = {"duration": 2.0, "rounds": 2, "warmup": 0.3}


@dataclass(slots=True)
class Config:
    """Every setting of one run (see ``python -m bench.loadtest --help`` for each meaning)."""

    scenario: str = "mixed"
    concurrency: int = 32
    duration: float = 10.0
    requests: int | None = None
    rounds: int = 3
    warmup: float = 1.0
    mix: str = DEFAULT_MIX
    upload_size: int = 16384
    timeout: float = 30.0
    procs: int = 0  # 0: automatic
    procs_auto: bool = False  # chosen automatically: may grow while a client is saturated
    workers: int = 1
    compare: bool = False
    url: str | None = None
    baseline_url: str | None = None
    server_pid: int | None = None
    baseline_pid: int | None = None
    server_script: Path = DEFAULT_SCRIPT
    slow_readers: int = 0
    slow_size: int = 1 << 20
    slow_chunk: int = 8192
    slow_pause: float = 0.002
    slow_rcvbuf: int = 4096
    burst_factor: int = 1
    max_error_rate: float = 1.0  # percent
    max_rss_growth_mib: float = 64.0
    rss_window: str = "run"  # "run": end vs after warm-up; "second-half": end vs half-way
    interval: float = 0.0  # timeline bucket; 0: automatic
    seed: int = 1
    client_uvloop: bool = True
    quick: bool = False
    output: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return ("electron", "baseline") if self.compare else ("electron",)

    @property
    def round_duration(self) -> float:
        return self.duration / self.rounds

    @property
    def round_requests(self) -> int | None:
        return None if self.requests is None else math.ceil(self.requests / self.rounds)

    @property
    def burst_windows(self) -> tuple[tuple[float, float], ...]:
        """Offsets (seconds from a round's start) when the extra burst clients run."""
        if self.burst_factor <= 1:
            return ()
        d = self.round_duration
        return ((d / 3, 2 * d / 3),)

    @property
    def bucket(self) -> float:
        """Width of one timeline point (seconds of load)."""
        if self.interval > 0:
            return self.interval
        return min(5.0, max(0.25, round(self.duration / 40 * 4) / 4))

    def public(self) -> dict[str, Any]:
        """The settings as JSON-ready values (for report.json)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else v
        out["bucket_s"] = self.bucket
        out["burst_windows"] = [list(w) for w in self.burst_windows]
        out["mix_routes"] = [
            {"route": r.name, "kind": r.kind, "weight": r.weight, "size": r.size}
            for r in parse_mix(self.mix, self.upload_size)
        ]
        return out


def auto_procs(workers: int) -> int:
    """Client processes when not given: one per core up to 4, at least 2 on a multi-core box
    (measured here: one aiohttp client process saturates before one server worker does)."""
    cores = os.cpu_count() or 1
    return max(1, min(4, max(cores - workers, 2 if cores > 1 else 1)))


def resolve(scenario: str, overrides: dict[str, Any]) -> Config:
    """The scenario's preset, then ``--quick``, then explicit options (``None`` = not given)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    cfg = replace(Config(), scenario=scenario, **SCENARIOS[scenario].settings)
    if overrides.get("quick"):
        quick: dict[str, Any] = dict(_QUICK)
        if scenario == "soak":
            quick["duration"] = 4.0
        cfg = replace(cfg, quick=True, **quick)
    given = {k: v for k, v in overrides.items() if v is not None and k != "quick"}
    if given.get("requests") is not None and "duration" not in given:
        given["duration"] = 300.0  # a count-bounded run keeps a time bound too
    cfg = replace(cfg, **given)
    if cfg.procs <= 0:
        cfg = replace(cfg, procs=auto_procs(cfg.workers if cfg.url is None else 0),
                      procs_auto=True)
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    if cfg.concurrency < 1:
        raise ValueError("--concurrency must be >= 1")
    if cfg.duration <= 0 or cfg.rounds < 1 or cfg.warmup < 0 or cfg.timeout <= 0:
        raise ValueError("--duration and --timeout must be > 0, --rounds >= 1, --warmup >= 0")
    if cfg.requests is not None and cfg.requests < 1:
        raise ValueError("--requests must be >= 1")
    if cfg.compare and cfg.url and not cfg.baseline_url:
        raise ValueError("--compare with --url needs --baseline-url (the server to compare to)")
    if cfg.procs > cfg.concurrency:
        cfg.procs = cfg.concurrency
    if cfg.rss_window not in {"run", "second-half"}:
        raise ValueError("--rss-window is 'run' or 'second-half'")
    if cfg.upload_size < 1 or not 0 < cfg.slow_size <= 8 << 20:
        raise ValueError("--upload-size must be >= 1 and --slow-size 1 .. 8 MiB")
    if cfg.burst_factor < 1:
        raise ValueError("--burst-factor must be >= 1")
