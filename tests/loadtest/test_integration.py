"""End to end: ``python -m bench.loadtest`` against real server processes."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench._lt._report import SECTIONS, SUMMARY_HEADER

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples" / "server.py"


def _loadtest(*args: str, timeout: float = 100) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.loadtest", "--progress", "plain", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(not SERVER.exists(), reason="examples/server.py not written yet")
@pytest.mark.parametrize(("server", "script"), [("aiohttp", "server.py"),
                                                ("asgi", "asgi_server.py")])
def test_two_second_compare_run_against_the_example_server(tmp_path: Path, server: str,
                                                           script: str) -> None:
    if server == "asgi" and importlib.util.find_spec("uvicorn") is None:
        pytest.skip("uvicorn is not installed")
    out = tmp_path / "report"
    proc = _loadtest("--compare", "--duration", "1", "--rounds", "1", "--warmup", "0.2",
                     "--concurrency", "8", "--no-sweep", "--output", str(out),
                     "--server", server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Report: {out / 'report.md'}" in proc.stdout
    md = (out / "report.md").read_text()
    for section in SECTIONS:
        assert f"\n{section}\n" in md
    assert SUMMARY_HEADER in md
    assert (out / "loadtest-mixed.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    (sc,) = report["scenarios"]
    e, b = sc["servers"]["electron"], sc["servers"]["baseline"]
    for s in (e, b):
        assert s["requests"] > 0
        assert s["errors"] == 0, s["errors_by_kind"]
        assert s["bad_bodies"] == 0
        assert {r["route"] for r in s["routes"]} == {"/", "/json", "/bytes/262144", "/render",
                                                     "/upload"}
        assert s["rss_mib"]["peak"] > 0
    assert e["stats_before"]["active_arenas"] == 0
    assert e["active_arenas_after"] == 0
    assert f"examples/{script} " in e["command"]
    assert b["command"] == e["command"] + " --no-electron"
    assert f"(`examples/{script}`) was put under load" in md
    assert sc["comparison"]["throughput_ratio"] > 0
    assert report["server_bound"]["skipped"] == "--no-sweep was given"
    assert "Verdict: none. The server-bound measurement was skipped: --no-sweep" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not SERVER.exists(), reason="examples/server.py not written yet")
def test_the_quick_main_job_gives_a_server_bound_verdict_or_says_why_not(tmp_path: Path
                                                                         ) -> None:
    out = tmp_path / "report"
    proc = _loadtest("--compare", "--quick", "--output", str(out), timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    sb = report["server_bound"]
    md = (out / "report.md").read_text()
    assert "\n## Verdict\n" in md
    if shutil.which("wrk") is None:
        assert "apt-get install wrk" in sb["skipped"]
        assert "server-bound measurement was skipped" in md
        return
    assert sb["ran"] is True
    assert [r["route"] for r in sb["routes"]] == [
        "GET /", "GET /json", "GET /bytes/262144", "GET /render", "POST /upload 16 KiB"]
    for r, v in zip(sb["routes"], sb["verdicts"], strict=True):
        assert "error" not in r, r
        assert v["verdict"] in {"faster", "slower", "inconclusive", "no verdict"}
        low, high = v["ci95"]
        assert low <= v["ratio"] <= high
        for side in r["sides"].values():
            assert side["client_cpu_percent_median"] is not None  # wrk's CPU was measured
            assert all(x["latency_p999_us"] for x in side["rounds"])
    assert report["verdict"][0].startswith("Verdict (server-bound")
    assert report["verdict"][0] in proc.stdout


_CORRUPT = '''
import hashlib, socket, sys
from aiohttp import web

async def pattern(request):
    n, seed = int(request.match_info["n"]), int(request.query.get("seed", "0"))
    body = bytearray((seed * 31 + i) % 251 for i in range(n))
    body[n // 3] ^= 0x01   # one wrong byte in every body
    return web.Response(body=bytes(body))

async def stats(request):
    return web.json_response({"active_arenas": 0, "active_buffers": 0})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
app = web.Application()
app.add_routes([web.get("/bytes/{n}", pattern), web.get("/stats", stats)])
print(f"electron example server listening on http://127.0.0.1:{sock.getsockname()[1]}",
      flush=True)
web.run_app(app, sock=sock, print=None, access_log=None)
'''


@pytest.mark.slow
def test_a_server_sending_one_wrong_byte_fails_the_run(tmp_path: Path) -> None:
    script = tmp_path / "corrupt_server.py"
    script.write_text(_CORRUPT)
    out = tmp_path / "report"
    proc = _loadtest("--server-script", str(script), "--mix", "/bytes/1000=1", "--duration",
                     "0.5", "--rounds", "1", "--warmup", "0", "--concurrency", "2",
                     "--procs", "1", "--output", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    e = report["scenarios"][0]["servers"]["electron"]
    assert e["requests"] == 0
    assert e["errors_by_kind"]["bad_body"] == e["errors"] > 0
    assert "byte 333 " in e["error_samples"]["bad_body"][0]
    md = (out / "report.md").read_text()
    assert "every body correct missed" in md


_DYING = '''
import os, socket, threading
from aiohttp import web

async def hello(request):
    return web.Response(text="Hello, World!")

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
app = web.Application()
app.add_routes([web.get("/", hello)])
print(f"electron example server listening on http://127.0.0.1:{sock.getsockname()[1]}",
      flush=True)
threading.Timer(0.3, lambda: os._exit(3)).start()  # dies before the load is over
web.run_app(app, sock=sock, print=None, access_log=None)
'''


@pytest.mark.slow
def test_a_server_that_dies_under_load_fails_the_run(tmp_path: Path) -> None:
    script = tmp_path / "dying_server.py"
    script.write_text(_DYING)
    out = tmp_path / "report"
    proc = _loadtest("--server-script", str(script), "--mix", "/=1", "--duration", "30",
                     "--rounds", "1", "--warmup", "0", "--procs", "1", "--output", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    sc = report["scenarios"][0]
    assert "electron server exited" in sc["aborted"]
    targets = {t["name"]: t for t in sc["servers"]["electron"]["targets"]}
    assert targets["server stayed up"]["passed"] is False
    assert "Run aborted" in (out / "report.md").read_text()


def test_bad_options_exit_2_without_starting_anything(tmp_path: Path) -> None:
    proc = _loadtest("--mix", "/nope=1", "--output", str(tmp_path / "r"), timeout=30)
    assert proc.returncode == 2
    assert "unknown route" in proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("other", [("--server-script", "x.py"), ("--url", "http://h:1")])
def test_the_server_option_does_not_go_with_another_server(tmp_path: Path,
                                                           other: tuple[str, str]) -> None:
    proc = _loadtest("--server", "asgi", *other, "--output", str(tmp_path / "r"), timeout=30)
    assert proc.returncode == 2
    assert "--server starts an example" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_help_explains_every_option() -> None:
    proc = _loadtest("--help", timeout=30)
    assert proc.returncode == 0
    for option in ("--compare", "--url", "--server", "asgi", "--scenario", "--concurrency",
                   "--duration", "--requests", "--mix", "--procs", "--output", "--quick",
                   "stress", "soak", "burst", "slow-readers"):
        assert option in proc.stdout
