"""Several worker processes: one scrape sees them all, and they stop without orphans.

``examples/server.py --workers 2`` (reuse-port processes, each with its own ArenaOfPools) and
the documented gunicorn recipe, both in prometheus_client's multiprocess mode: after a known
sequence of requests spread by the kernel over both workers, ``/metrics`` from whichever
worker answers adds up both; the live gauges of a worker go when it stops.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples" / "server.py"
LINE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
GUNICORN_LINE = re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)")
MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() != MULTIPROC.lower()}
    env.update(extra)
    return env


@contextmanager
def example_server(*args: str, env: dict[str, str]) -> Iterator[tuple[psutil.Process, str]]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = LINE.search(line)
        if match is None:
            proc.kill()
            raise AssertionError(f"no listening line: {line!r} {proc.communicate()[1]}")
        yield psutil.Process(proc.pid), match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    status, _, body = get(url + "/metrics")
    assert status == 200
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def per_worker_stats(url: str, pids: set[int]) -> dict[int, dict[str, Any]]:
    """/stats of every worker (new connections land on either; retried until all seen)."""
    docs: dict[int, dict[str, Any]] = {}
    for _ in range(400):
        _, headers, body = get(url + "/stats")
        docs[int(headers["X-Server-Pid"])] = json.loads(body)
        if set(docs) == pids:
            return docs
    raise AssertionError(f"/stats never reached every worker: {set(docs)} of {pids}")


def known_sequence(url: str) -> None:
    """60 requests, each on a new connection: 40 use electron memory, 20 do not."""
    for i in range(40):
        status, _, body = get(f"{url}/bytes/1000?seed={i}&pooled=1")
        assert (status, len(body)) == (200, 1000)
        if i % 2 == 0:
            assert get(url + "/")[0] == 200


def eventually_scraped(url: str, want: Samples, within: float = 20.0) -> Samples:
    """Scrape until every figure in ``want`` has its value (workers publish every 0.1 s here,
    the pool's figures and the per-route histogram each in their own write)."""
    deadline = time.monotonic() + within
    while True:
        samples = scrape(url)
        got = {key: samples.get(key) for key in want}
        if got == want:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never settled: got {got}, want {want}")
        time.sleep(0.05)


def check_aggregated(url: str, workers: list[psutil.Process], *, spread: bool = True) -> None:
    """The known sequence, then one scrape must add up every worker's figures. ``spread``:
    the kernel spread the connections over the workers (SO_REUSEPORT); a shared listening
    socket (gunicorn) may leave a worker idle, whose figures then add zeros."""
    known_sequence(url)
    docs = per_worker_stats(url, {w.pid for w in workers})
    served = {pid: doc["middleware"]["requests"] for pid, doc in docs.items()}
    assert sum(served.values()) == 40
    if spread:
        assert all(n > 0 for n in served.values()), f"one worker served everything: {served}"
    created = sum(int(doc["arenas_created"]) for doc in docs.values())
    route = (("route", "/bytes/{n}"),)
    samples = eventually_scraped(
        url,
        {
            ("electron_http_requests_total", ()): 40.0,
            ("electron_arenas_created_total", ()): float(created),
            ("electron_arenas_active", ()): 0.0,
            ("electron_buffers_active", ()): 0.0,
            ("electron_http_in_flight", ()): 0.0,
            ("electron_leaks_detected_total", ()): 0.0,
            ("electron_request_bytes_count", route): 40.0,
            ("electron_request_bytes_sum", route): 40.0 * 1024,
        },
    )
    assert samples[("electron_arena_size_bytes", ())] == 65536  # livemax of the workers
    pooled = sum(int(doc["pooled_buffers"]) for doc in docs.values())
    assert samples[("electron_buffers_pooled", ())] == pooled >= (2 if spread else 1)


def assert_stopped(parent: psutil.Process, workers: list[psutil.Process]) -> None:
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(30) == 0
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == [], f"orphaned workers: {alive}"


def test_example_workers_aggregate_metrics_and_stop_cleanly(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # an earlier run's: wiped at start
    env = clean_env(**{MULTIPROC: str(metrics_dir)})
    args = ("--workers", "2", "--metrics-interval", "0.1")
    with example_server(*args, env=env) as (parent, url):
        workers = parent.children()
        assert len(workers) == 2
        assert not (metrics_dir / "counter_1.db").exists()
        check_aggregated(url, workers)
        live = sorted(p.name for p in metrics_dir.glob("gauge_live*.db"))
        assert {name.rsplit("_", 1)[1] for name in live} == {f"{w.pid}.db" for w in workers}
        assert_stopped(parent, workers)
    assert not list(metrics_dir.glob("gauge_live*.db")), "a stopped worker's gauges remain"
    assert list(metrics_dir.glob("counter_*.db")), "counters must outlive their workers"


def test_example_workers_use_a_temporary_metrics_dir(tmp_path: Path) -> None:
    args = ("--workers", "2", "--metrics-interval", "0.1")
    with example_server(*args, env=clean_env(TMPDIR=str(tmp_path))) as (parent, url):
        workers = parent.children()
        assert len(workers) == 2
        made = list(tmp_path.glob("electron-metrics-*"))
        assert len(made) == 1
        metrics_dir = made[0]
        check_aggregated(url, workers)
        assert_stopped(parent, workers)
    assert not metrics_dir.exists(), "the temporary metrics directory was left behind"


GUNICORN_CONF = """
from electron import metrics

def child_exit(server, worker):
    metrics.mark_process_dead(worker.pid)
"""


@pytest.mark.skipif(
    shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None,
    reason="gunicorn is not installed (pip install gunicorn)",
)
def test_gunicorn_recipe(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(GUNICORN_CONF)
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    env = clean_env(
        **{MULTIPROC: str(metrics_dir), "ELECTRON_SERVER_ARGS": "--metrics-interval 0.1"}
    )
    proc = subprocess.Popen(
        [
            gunicorn,
            "examples.server:app_factory",
            "--worker-class",
            "aiohttp.GunicornUVLoopWebWorker",
            "--workers",
            "2",
            "--bind",
            "127.0.0.1:0",
            "--config",
            str(conf),
            "--graceful-timeout",
            "10",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        url = None
        lines = []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if (m := GUNICORN_LINE.search(line)) is not None:
                url = m.group(1)
        assert url is not None, "".join(lines)
        parent = psutil.Process(proc.pid)
        for _ in range(200):  # the arbiter forks its workers after it printed the address
            workers = parent.children()
            if len(workers) == 2 and all(get(url + "/")[0] == 200 for _ in range(2)):
                break
            time.sleep(0.05)
        assert len(workers) == 2
        check_aggregated(url, workers, spread=False)
        live = {p.name.rsplit("_", 1)[1] for p in metrics_dir.glob("gauge_live*.db")}
        assert live == {f"{w.pid}.db" for w in workers}  # both publish, busy or not
        assert_stopped(parent, workers)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)
    assert not list(metrics_dir.glob("gauge_live*.db")), "a stopped worker's gauges remain"
