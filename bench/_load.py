"""Server-bound load: a server on one core, wrk on the other, alternating rounds.

Shared by ``bench.http`` and ``bench.sweep``: ``Server`` (a server subprocess pinned to one
core), ``run_wrk`` (one wrk run, its figures reported by a Lua ``done`` hook), ``measure``
(one run with the server's RSS and CPU time sampled meanwhile), ``alternate`` (rounds, the
order of the servers flipped every round) and ``median_interval`` (a bootstrap interval).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = (
    "CLIENT_CPU",
    "LISTENING",
    "SERVER_CPU",
    "Generator",
    "Load",
    "LoadRun",
    "Server",
    "alternate",
    "cpus",
    "measure",
    "median_interval",
    "pinned",
    "print_round",
    "run_wrk",
    "wrk_script",
)

ROOT = Path(__file__).resolve().parents[1]
#: The line a server prints once it accepts connections.
LISTENING = re.compile(r"listening on (http://\S+)")
#: Which of the usable cores (sorted) the server and the load generator are pinned to.
SERVER_CPU = 0
CLIENT_CPU = 1


def cpus() -> list[int]:
    """The cores this process may run on, sorted; empty where that cannot be told."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def pinned(index: int) -> Callable[[], None]:
    """A ``preexec_fn`` pinning a child to usable core ``index`` when there are two or more
    (on one core, pinning server and load to it would only add to their contention)."""
    usable = cpus()

    def pin() -> None:
        if len(usable) >= 2:
            os.sched_setaffinity(0, {usable[index]})

    return pin


class Server:
    """A server subprocess on one core; ``url`` once it printed its listening line.

    ``env`` is added to this process's environment (an ``LD_PRELOAD``, a ``MALLOC_*``
    setting); the command must print ``listening on http://HOST:PORT`` first.
    """

    def __init__(self, label: str, cmd: list[str], env: Mapping[str, str] | None = None
                 ) -> None:
        self.label = label
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=pinned(SERVER_CPU),
            env={**os.environ, **env} if env else None,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = LISTENING.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"{label}: no 'listening on' line (got {line!r})")
        self.url = match.group(1).rstrip("/")
        self.ps = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def rss_high_water(self) -> int | None:
        """The kernel's peak RSS of the process so far (``VmHWM``), None where unknown."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) << 10 if match else None

    def maps(self) -> str:
        """The process's memory map (``/proc/PID/maps``): which libraries it loaded."""
        try:
            return Path(f"/proc/{self.proc.pid}/maps").read_text()
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.communicate()


# -- wrk -------------------------------------------------------------------------------------


@dataclass
class LoadRun:
    """What a load generator measured in one run (latencies in microseconds)."""

    rps: float
    requests: int
    errors: int
    latency_p99_us: float | None = None
    latency_max_us: float | None = None
    bytes_read: int | None = None


_MARK = "BENCH_WRK_SUMMARY "  # the line _DONE writes
# wrk calls done() once at the end with the summary of all threads; latencies are in us.
_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_WRK_SUMMARY {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, '
    .. '"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f, '
    .. '"p99_us": %.0f, "max_us": %.0f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(99), latency.max))
end
"""


def wrk_script(method: str = "GET", body_size: int = 0) -> str:
    """The Lua script for one wrk run: the request (``body_size`` bytes of ``x`` as the body
    of a ``method`` request) and a ``done`` hook printing wrk's summary as JSON."""
    lines = ["-- written by bench._load.wrk_script"]
    if method != "GET":
        lines.append(f'wrk.method = "{method}"')
    if body_size:
        lines.append(f'wrk.body = string.rep("x", {int(body_size)})')
        lines.append('wrk.headers["Content-Type"] = "application/octet-stream"')
    return "\n".join(lines) + "\n" + _DONE


def parse_wrk(out: str) -> LoadRun:
    """The figures of wrk's output with a :func:`wrk_script` ``done`` hook."""
    for line in out.splitlines():
        if line.startswith(_MARK):
            doc = json.loads(line[len(_MARK):])
            break
    else:
        raise RuntimeError(f"cannot read wrk's output (no summary line):\n{out}")
    errors = sum(int(doc[k]) for k in ("connect", "read", "write", "status", "timeout"))
    seconds = doc["duration_us"] / 1e6
    return LoadRun(
        rps=doc["requests"] / seconds if seconds else 0.0,
        requests=int(doc["requests"]),
        errors=errors,
        latency_p99_us=float(doc["p99_us"]),
        latency_max_us=float(doc["max_us"]),
        bytes_read=int(doc["bytes"]),
    )


def run_wrk(url: str, seconds: float, connections: int, script: str | None = None) -> LoadRun:
    """One wrk run (one thread, pinned to the load core) of ``seconds`` against ``url``.

    wrk takes whole seconds; a shorter run is stopped by SIGINT, on which wrk still reports.
    """
    whole = max(1, int(-(-seconds // 1)))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-") as lua:
        lua.write(script if script is not None else wrk_script())
        lua.flush()
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{whole}s", "-s", lua.name, url]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=pinned(CLIENT_CPU)) as proc:
            timer = None
            if seconds < whole:
                timer = threading.Timer(seconds, proc.send_signal, (signal.SIGINT,))
                timer.start()
            try:
                out, err = proc.communicate(timeout=whole + 60)
            finally:
                if timer is not None:
                    timer.cancel()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {err.strip()}\n{out}")
    return parse_wrk(out)


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Load:
    """One measured run: requests per second, errors, and the server's use of the machine."""

    rps: float
    requests: int
    errors: int
    cpu_seconds: float  # server CPU time (user + system) during the run
    seconds: float
    rss_peak: int
    extra: dict[str, Any] = field(default_factory=dict)
    latency_p99_us: float | None = None
    latency_max_us: float | None = None
    bytes_read: int | None = None

    @property
    def server_cpu(self) -> float:
        """Percent of one core the server got."""
        return 100 * self.cpu_seconds / self.seconds

    @property
    def cpu_ns_per_request(self) -> float:
        return 1e9 * self.cpu_seconds / max(1, self.requests)


#: A load generator: ``(url, seconds, connections) -> LoadRun``.
Generator = Callable[[str, float, int], LoadRun]


def measure(server: Server, path: str, seconds: float, connections: int,
            generator: Generator = run_wrk, sample_every: float = 0.05) -> Load:
    """Load ``server`` for ``seconds``, sampling its RSS and CPU meanwhile."""
    peak = server.rss()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(sample_every):
            try:
                peak = max(peak, server.rss())
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    cpu0 = server.cpu_seconds()
    t0 = time.monotonic()
    sampler.start()
    try:
        run = generator(server.url + path, seconds, connections)
    finally:
        stop.set()
        sampler.join()
    cpu = server.cpu_seconds() - cpu0
    return Load(run.rps, run.requests, run.errors, cpu, time.monotonic() - t0, peak,
                latency_p99_us=run.latency_p99_us, latency_max_us=run.latency_max_us,
                bytes_read=run.bytes_read)


def alternate(
    servers: dict[str, Server], path: str, rounds: int, seconds: float, connections: int,
    generator: Generator = run_wrk,
) -> dict[str, list[Load]]:
    """``rounds`` runs per server, alternating, the order flipped every round."""
    names = list(servers)
    if seconds > 1:
        for name in names:  # warm up pools, caches and connections
            measure(servers[name], path, max(1.0, seconds / 4), connections, generator)
    runs: dict[str, list[Load]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for attempt in range(1, _ATTEMPTS + 1):
                load = measure(servers[name], path, seconds, connections, generator)
                print_round(r + 1, rounds, name, load)
                if load.rps > 0:
                    break
                # A round that completed no request measured nothing (the server starved of
                # CPU by other work, or stuck): run it again rather than divide by zero.
                if attempt == _ATTEMPTS:
                    raise RuntimeError(
                        f"{name}: no request completed in {_ATTEMPTS} runs of {seconds:g} s "
                        f"on {path}: is the server stuck, or the machine too busy?"
                    )
                print(f"  round {r + 1}/{rounds} {name}: no request completed, again", flush=True)
            runs[name].append(load)
    return runs


_ATTEMPTS = 3  # runs of a round that completed no request before the sweep gives up


def print_round(done: int, rounds: int, name: str, load: Load) -> None:
    """One line of progress: round ``done`` of ``rounds`` of server ``name`` measured ``load``."""
    print(
        f"  round {done}/{rounds} {name:28} {load.rps:9,.0f} req/s  "
        f"{load.cpu_ns_per_request / 1000:7.1f} us cpu/req  "
        f"cpu {load.server_cpu:4.0f}%  rss peak {load.rss_peak / 2**20:6.1f} MiB"
        + (f"  errors {load.errors}" if load.errors else ""),
        flush=True,
    )


def median_interval(values: Sequence[float], draws: int = 2000) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval for the median of ``values`` (fixed seed: the
    same rounds always give the same interval)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]
