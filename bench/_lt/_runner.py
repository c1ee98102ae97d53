"""Run the load: start the servers, warm them up, then alternate measured rounds between them.

With ``--compare`` the electron server and the ``--no-electron`` baseline run side by side
and take turns (ABBA order: e b b e e b ...), so slow drifts of a shared machine fall on both.
``execute`` returns the raw measurements; ``_results`` turns them into figures.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ._client import ClientPool, Job, JobResult, split
from ._config import Config
from ._hist import LatencyHistogram
from ._mix import parse_mix
from ._progress import ProgressSink
from ._server import (
    RemoteServer,
    Sample,
    Sampler,
    ServerError,
    ServerProcess,
    fetch,
    fetch_stats,
)

__all__ = ("RoundData", "RunData", "ServerData", "execute")

_SETTLE_S = 10.0  # how long /stats may take to show every arena back after the load


@dataclass(slots=True)
class RoundData:
    """One measured round against one server."""

    label: str
    index: int
    start_at: float
    end_at: float
    results: list[JobResult]
    server_cpu_s: float | None = None
    machine_busy_pct: float | None = None  # of all cores, while the round ran


@dataclass(slots=True)
class ServerData:
    """Everything measured on one server (electron or baseline) over the run."""

    label: str
    electron: bool
    url: str = ""
    command: str = ""
    pid: int | None = None
    stats_before: list[dict[str, Any]] = field(default_factory=list)
    stats_after: list[dict[str, Any]] = field(default_factory=list)
    settle_s: float | None = None
    json_reference: bytes | None = None
    warmup: list[JobResult] = field(default_factory=list)
    rss_after_warmup: Sample | None = None
    rss_end: Sample | None = None
    samples: list[Sample] = field(default_factory=list)
    rounds: list[RoundData] = field(default_factory=list)
    log: str = ""
    exit_code: int | None = None


@dataclass(slots=True)
class RunData:
    """The raw outcome of :func:`execute`."""

    config: Config
    servers: dict[str, ServerData]
    started: str
    finished: str = ""
    wall_s: float = 0.0
    client_pids: list[int] = field(default_factory=list)
    aborted: str | None = None


def _servers(cfg: Config, outdir: Path) -> dict[str, ServerProcess | RemoteServer]:
    out: dict[str, ServerProcess | RemoteServer] = {}
    for label in cfg.labels:
        electron = label == "electron"
        if cfg.url:
            url = cfg.url if electron else cfg.baseline_url
            assert url is not None
            pid = cfg.server_pid if electron else cfg.baseline_pid
            out[label] = RemoteServer(label, url.rstrip("/"), pid, electron)
        else:
            out[label] = ServerProcess(label, electron=electron, workers=cfg.workers,
                                       script=cfg.server_script,
                                       log_path=outdir / f"{cfg.scenario}-{label}-server.log")
    return out


def _json_reference(url: str) -> bytes | None:
    """``/json``'s body if two fetches agree (then every response must equal it)."""
    s1, b1, _ = fetch(url + "/json")
    s2, b2, _ = fetch(url + "/json")
    return b1 if s1 == s2 == 200 and b1 == b2 else None


def _settle_stats(url: str, workers: int) -> tuple[list[dict[str, Any]], float | None]:
    """``/stats`` once every arena is back (polling up to ``_SETTLE_S``), and how long it took."""
    t0 = time.monotonic()
    docs = fetch_stats(url, workers)
    while docs and any(d.get("active_arenas", 0) for d in docs):
        if time.monotonic() - t0 > _SETTLE_S:
            return docs, None
        time.sleep(0.1)
        docs = fetch_stats(url, workers)
    return docs, time.monotonic() - t0


class _Driver:
    def __init__(self, cfg: Config, pool: ClientPool, sampler: Sampler, ui: ProgressSink) -> None:
        self.cfg = cfg
        self.pool = pool
        self.sampler = sampler
        self.ui = ui
        self.routes = parse_mix(cfg.mix, cfg.upload_size)
        self.seq = 0

    def jobs(self, url: str, duration: float, requests: int | None, *, record: bool,
             json_reference: bytes | None, start_at: float) -> list[Job]:
        cfg, n = self.cfg, self.pool.n
        self.seq += 1
        quotas: list[int | None] = (
            [None] * n if requests is None else list(split(requests, n))
        )
        burst = cfg.concurrency * (cfg.burst_factor - 1) if record else 0
        return [
            Job(
                url=url, routes=self.routes, concurrency=c, start_at=start_at,
                duration=duration, requests=q, timeout=cfg.timeout, interval=cfg.bucket,
                token_base=(self.seq * 64 + i) << 32, record=record,
                seed=cfg.seed * 1_000_003 + self.seq * 64 + i, upload_size=cfg.upload_size,
                json_reference=json_reference,
                slow_readers=s, slow_size=cfg.slow_size, slow_chunk=cfg.slow_chunk,
                slow_pause=cfg.slow_pause, slow_rcvbuf=cfg.slow_rcvbuf,
                burst_workers=b, burst_windows=cfg.burst_windows if b else (),
            )
            for i, (c, q, s, b) in enumerate(zip(
                split(cfg.concurrency, n), quotas, split(cfg.slow_readers, n),
                split(burst, n), strict=True))
        ]

    def run(self, label: str, title: str, server: ServerProcess | RemoteServer,
            jobs: list[Job]) -> RoundData:
        cfg = self.cfg
        quota = sum(j.requests or 0 for j in jobs)
        self.ui.phase(title, jobs[0].duration, quota or None)
        before = self.sampler.sample_now().get(label)
        m0 = psutil.cpu_times()
        self.pool.start(jobs)

        def poll() -> None:
            ok, err = self.pool.live_totals()
            self.ui.update(ok, err)
            if not server.alive():
                raise ServerError(f"{label} server exited during {title}")

        start_at = jobs[0].start_at
        results = self.pool.collect(
            poll, deadline=start_at + jobs[0].duration + cfg.timeout + 30.0)
        end = time.monotonic()
        m1 = psutil.cpu_times()
        after = self.sampler.sample_now().get(label)
        crashed = [r.crashed for r in results if r.crashed]
        if crashed:
            raise RuntimeError("client process failed:\n" + crashed[0])
        cpu = after.cpu_s - before.cpu_s if before and after else None
        self.ui.done(_line(results, end - start_at, cpu))
        return RoundData(label, 0, start_at, end, results, cpu, _busy_pct(m0, m1))


def _busy_pct(m0: Any, m1: Any) -> float | None:
    """Percent of all cores busy running processes of this machine between two readings
    (time stolen by a hypervisor is not counted as busy; guest time is inside user)."""
    def split(t: Any) -> tuple[float, float]:
        busy = sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))
        rest = sum(getattr(t, f, 0.0) for f in ("idle", "iowait", "steal"))
        return busy, busy + rest

    b0, t0 = split(m0)
    b1, t1 = split(m1)
    return round((b1 - b0) / (t1 - t0) * 100, 1) if t1 > t0 else None


def _line(results: list[JobResult], wall: float, server_cpu: float | None) -> str:
    ok = sum(r.ok for r in results)
    errors = sum(sum(r.errors.values()) for r in results)
    h = LatencyHistogram()
    for r in results:
        for name, rr in r.routes.items():
            if "(slow reader)" not in name:
                h.merge(rr.hist)
    client = max((r.cpu_s / r.wall_s * 100 for r in results), default=0.0)
    text = f"{ok:,} ok, {ok / wall:,.0f} req/s, {errors:,} errors, "
    if h.count:  # warm-ups record no latencies
        text += f"p99 {h.percentile(99) / 1e3:.1f} ms, "
    text += f"client CPU max {client:.0f}%"
    if server_cpu is not None:
        text += f", server CPU {server_cpu / wall * 100:.0f}%"
    return text


def execute(cfg: Config, outdir: Path, ui: ProgressSink) -> RunData:
    """Start (or attach to) the servers, warm up, run the rounds, read ``/stats``, stop.

    Raises :class:`ServerError` when a server cannot be started; a server dying mid-run is
    recorded in ``RunData.aborted`` and the measurements so far are kept.
    """
    t_start = time.monotonic()
    data = RunData(cfg, {}, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    servers = _servers(cfg, outdir)
    max_procs = min(cfg.concurrency, 8, os.cpu_count() or 1) if cfg.procs_auto else cfg.procs
    # The client processes import while the servers boot: both take about a second.
    pool = ClientPool(cfg.procs, use_uvloop=cfg.client_uvloop, max_n=max_procs, wait=False)
    try:
        for label, srv in servers.items():
            data.servers[label] = ServerData(label, srv.electron)
            if isinstance(srv, ServerProcess):
                ui.log(f"starting {label} server: {' '.join(srv.cmd)}")
                srv.launch()
        for label, srv in servers.items():
            sd = data.servers[label]
            if isinstance(srv, ServerProcess):
                srv.wait_listening()
                sd.command = " ".join(srv.cmd)
            sd.url, sd.pid = srv.url, srv.pid
            ui.log(f"{label} server at {srv.url}")
            sd.stats_before = fetch_stats(srv.url, cfg.workers)
            sd.json_reference = _json_reference(srv.url)
        pool.wait_ready()
        data.client_pids = pool.pids
        with Sampler({label: s.pid for label, s in servers.items()}) as sampler:
            drv = _Driver(cfg, pool, sampler, ui)
            try:
                _rounds(cfg, drv, servers, data)
            except ServerError as exc:
                data.aborted = str(exc)
                ui.log(f"ABORTED: {exc}")
            pool.close(force=data.aborted is not None)
            for label, srv in servers.items():
                sd = data.servers[label]
                if srv.alive():
                    sd.stats_after, sd.settle_s = _settle_stats(srv.url, cfg.workers)
                sd.rss_end = sampler.sample_now().get(label)
                sd.samples = list(sampler.samples[label])
    finally:
        pool.close()
        for srv in servers.values():
            if isinstance(srv, ServerProcess):
                srv.interrupt()  # all at once: they shut down in parallel
        for label, srv in servers.items():
            if isinstance(srv, ServerProcess):
                code = srv.stop()
                if label in data.servers:
                    data.servers[label].exit_code = code
                    data.servers[label].log = srv.log_text()
    data.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data.wall_s = time.monotonic() - t_start
    return data


def _should_grow(rd: RoundData, pool: ClientPool) -> bool:
    """One more client process helps when one is saturated and the machine has idle CPU."""
    busiest = max((r.cpu_s / r.wall_s for r in rd.results if r.wall_s), default=0.0)
    idle_cpu = rd.machine_busy_pct is not None and rd.machine_busy_pct < 90.0
    return busiest >= 0.9 and idle_cpu and pool.n < pool.max_n


def _rounds(cfg: Config, drv: _Driver, servers: dict[str, ServerProcess | RemoteServer],
            data: RunData) -> None:
    drv.ui.plan(0.0 if cfg.requests else len(servers) * (cfg.warmup + cfg.duration))
    if cfg.warmup > 0:
        for label, srv in servers.items():
            sd = data.servers[label]
            while True:
                jobs = drv.jobs(srv.url, cfg.warmup, None, record=False,
                                json_reference=sd.json_reference,
                                start_at=time.monotonic() + 0.05)
                rd = drv.run(label, f"{label} warm-up", srv, jobs)
                sd.warmup = rd.results
                if not _should_grow(rd, drv.pool):
                    break
                cfg.procs = drv.pool.grow(1)
                drv.ui.log(f"a client process was saturated: now {cfg.procs} client processes")
    for label in servers:
        data.servers[label].rss_after_warmup = drv.sampler.sample_now().get(label)
    labels = list(servers)
    for r in range(cfg.rounds):
        for label in labels if r % 2 == 0 else labels[::-1]:
            srv, sd = servers[label], data.servers[label]
            jobs = drv.jobs(srv.url, cfg.round_duration, cfg.round_requests, record=True,
                            json_reference=sd.json_reference, start_at=time.monotonic() + 0.05)
            rd = drv.run(label, f"{label} round {r + 1}/{cfg.rounds}", srv, jobs)
            rd.index = r
            sd.rounds.append(rd)
