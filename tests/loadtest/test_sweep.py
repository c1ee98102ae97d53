"""``python -m bench.sweep``: its pure pieces, the allocator variants, and a tiny real sweep."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench._load import LoadRun, alternate, median_interval, parse_wrk, wrk_script
from bench.sweep import (
    BYTES_SIZES,
    MMAP_THRESHOLD,
    UPLOAD_SIZES,
    VARIANTS,
    aiohttp_target,
    choose_variants,
    command_target,
    find_library,
    human_size,
    parse_size,
    plan_routes,
    ratio_summary,
    suite_results,
)

ROOT = Path(__file__).resolve().parents[2]
WRK = shutil.which("wrk")


# -- sizes and routes ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "n"), [("1024", 1024), ("1k", 1024), ("16KiB", 16384),
                                         ("1m", 1 << 20), (" 8MiB ", 8 << 20), ("64kb", 65536)])
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "1g", "k", "1.5m", "-1"])
def test_parse_size_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_human_size() -> None:
    assert [human_size(n) for n in (1024, 1 << 20, 3 << 20, 1000)] == [
        "1 KiB", "1 MiB", "3 MiB", "1000 B"]


def test_default_plan_covers_every_route_and_size() -> None:
    routes = plan_routes(["bytes", "upload", "render", "json", "hello-mw", "hello"])
    names = [r.name for r in routes]
    assert names[:4] == ["GET /", "GET / (hello app)", "GET /json",
                         "GET /render?items=100"]
    assert [r.size for r in routes if r.kind == "upload"] == list(UPLOAD_SIZES)
    assert [r.path for r in routes if r.kind == "bytes"] == [f"/bytes/{n}" for n in BYTES_SIZES]
    assert "POST /upload 8 MiB" in names
    assert all(r.method == "POST" for r in routes if r.kind == "upload")


def test_sizes_replace_the_defaults_of_sized_routes_only() -> None:
    routes = plan_routes(["json", "upload", "bytes"], [4096])
    assert [(r.kind, r.size) for r in routes] == [("json", None), ("upload", 4096),
                                                  ("bytes", 4096)]
    with pytest.raises(ValueError, match="unknown route"):
        plan_routes(["bytes", "nope"])


def test_fewer_connections_where_bodies_are_large() -> None:
    routes = plan_routes(["json", "upload", "bytes"], [1024, 1 << 20, 4 << 20, 8 << 20])
    assert [r.connections() for r in routes] == [16, 16, 16, 8, 4, 16, 16, 8, 4]


# -- the wrk script and its output -----------------------------------------------------------


def test_upload_script_sends_a_body_of_the_size() -> None:
    (upload,) = plan_routes(["upload"], [16384])
    lua = upload.script()
    assert 'wrk.method = "POST"' in lua
    assert 'wrk.body = string.rep("x", 16384)' in lua
    assert 'wrk.headers["Content-Type"] = "application/octet-stream"' in lua
    assert "done = function(summary, latency, requests)" in lua


def test_get_script_sets_no_method_or_body() -> None:
    (get,) = plan_routes(["bytes"], [1024])
    lua = get.script()
    assert "wrk.method" not in lua
    assert "wrk.body" not in lua
    assert lua == wrk_script()


def test_parse_wrk_reads_the_summary_line() -> None:
    out = ("Running 1s test @ http://127.0.0.1:1/\n  4937 requests in 601.80ms\n\n"
           'BENCH_WRK_SUMMARY {"requests": 5000, "duration_us": 500000, "bytes": 6000000, '
           '"connect": 0, "read": 1, "write": 0, "status": 2, "timeout": 3, '
           '"p99_us": 20464, "max_us": 30807}\n')
    assert parse_wrk(out) == LoadRun(rps=10000.0, requests=5000, errors=6,
                                     latency_p99_us=20464.0, latency_max_us=30807.0,
                                     bytes_read=6000000)
    with pytest.raises(RuntimeError, match="no summary line"):
        parse_wrk("Requests/sec: 1000\n")


# -- ratios ----------------------------------------------------------------------------------


def test_ratio_summary_of_constant_ratios_is_exact() -> None:
    summary = ratio_summary([200.0, 400.0, 600.0], [100.0, 200.0, 300.0])
    assert summary == {"rounds": [2.0, 2.0, 2.0], "median": 2.0, "ci95": [2.0, 2.0]}


def test_ratio_summary_interval_brackets_the_median() -> None:
    mine, theirs = [110.0, 90.0, 130.0, 100.0, 95.0], [100.0, 100.0, 100.0, 100.0, 100.0]
    summary = ratio_summary(mine, theirs)
    ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
    assert summary["rounds"] == pytest.approx(ratios)
    assert summary["median"] == pytest.approx(statistics.median(ratios))
    low, high = summary["ci95"]
    assert min(ratios) <= low <= summary["median"] <= high <= max(ratios)
    assert low < high
    assert median_interval(ratios) == median_interval(ratios)  # fixed seed


def test_ratio_summary_needs_matching_rounds() -> None:
    with pytest.raises(ValueError, match="same number"):
        ratio_summary([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same number"):
        ratio_summary([], [])


def test_suite_results_one_per_route_and_comparison() -> None:
    route = {"route": "GET /bytes/1024",
             "sides": {"electron": {"rps_median": 2000.0},
                       "baseline": {"description": "--no-electron"},
                       "jemalloc": {"description": "jemalloc"}},
             "ratios": {"baseline": {"median": 0.9, "ci95": [0.8, 1.0]},
                        "jemalloc": {"median": 1.1, "ci95": [1.0, 1.2]}}}
    results = suite_results([route])
    assert [(r.baseline, r.ratio) for r in results] == [
        ("baseline: --no-electron", 0.9), ("jemalloc: jemalloc", 1.1)]
    assert results[0].ops_per_s == pytest.approx(2000.0)
    assert results[1].extra["ci95"] == [1.0, 1.2]


# -- allocator variants ----------------------------------------------------------------------


def _cache(tmp_path: Path, *sonames: str) -> tuple[str, dict[str, str]]:
    """A fake ``ldconfig -p`` listing ``sonames`` at files that exist under ``tmp_path``."""
    paths = {}
    lines = [f"{len(sonames) + 1} libs found in cache `/etc/ld.so.cache'",
             "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"]
    for soname in sonames:
        path = tmp_path / soname
        path.write_bytes(b"")
        paths[soname] = str(path)
        lines.append(f"\t{soname} (libc6,x86-64) => {path}")
    return "\n".join(lines) + "\n", paths


def test_find_library(tmp_path: Path) -> None:
    cache, paths = _cache(tmp_path, "libjemalloc.so.2")
    assert find_library("libjemalloc.so.2", cache) == paths["libjemalloc.so.2"]
    assert find_library("libmimalloc.so.2", cache) is None
    gone = cache.replace(paths["libjemalloc.so.2"], str(tmp_path / "gone.so"))
    assert find_library("libjemalloc.so.2", gone) is None  # listed but not on disk


def test_variants_preload_what_is_there_and_say_why_the_rest_is_skipped(tmp_path: Path
                                                                         ) -> None:
    cache, paths = _cache(tmp_path, "libjemalloc.so.2")
    chosen, skipped = choose_variants(["jemalloc", "mimalloc", "glibc-mmap"], cache)
    by_name = {v.name: v for v in chosen}
    assert set(by_name) == {"jemalloc", "glibc-mmap"}
    assert by_name["jemalloc"].env == {"LD_PRELOAD": paths["libjemalloc.so.2"]}
    assert by_name["jemalloc"].library == paths["libjemalloc.so.2"]
    assert by_name["glibc-mmap"].env == {"MALLOC_MMAP_THRESHOLD_": str(64 << 20)}
    assert by_name["glibc-mmap"].library is None
    assert set(skipped) == {"mimalloc"}
    assert "libmimalloc.so.2" in skipped["mimalloc"]
    assert "libmimalloc2.0" in skipped["mimalloc"]
    assert VARIANTS["jemalloc"].env == {}  # the table itself is left alone
    with pytest.raises(ValueError, match="unknown variant"):
        choose_variants(["tcmalloc"], cache)


_MALLINFO = """
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena ordblks smblks hblks hblkhd usmblks "
                                               "fsmblks uordblks fordblks keepcost").split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
body = bytearray(8 << 20)
print(libc.mallinfo2().hblkhd)
"""


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_the_mmap_threshold_variant_keeps_an_8_mib_body_off_mmap() -> None:
    """glibc honours the threshold (it ignored values over 32 MiB in some versions)."""

    def mapped(env: dict[str, str]) -> int:
        out = subprocess.run([sys.executable, "-c", _MALLINFO], env={**os.environ, **env},
                             capture_output=True, text=True, check=True).stdout
        return int(out)

    (variant,), _ = choose_variants(["glibc-mmap"], "")
    assert int(variant.env["MALLOC_MMAP_THRESHOLD_"]) == MMAP_THRESHOLD
    assert mapped({}) >= 8 << 20  # the control: by default the body is a fresh mapping
    assert mapped(variant.env) < 8 << 20


@pytest.mark.parametrize("name", ["jemalloc", "mimalloc"])
def test_preloaded_allocator_is_mapped_in_the_child(name: str) -> None:
    chosen, skipped = choose_variants([name])
    if skipped:
        pytest.skip(skipped[name])
    (variant,) = chosen
    assert variant.library is not None
    maps = subprocess.run([sys.executable, "-c", "print(open('/proc/self/maps').read())"],
                          env={**os.environ, **variant.env}, capture_output=True, text=True,
                          check=True).stdout
    assert variant.library in maps


# -- the servers and the command ------------------------------------------------------------


def test_targets() -> None:
    example = aiohttp_target("uvloop")
    assert example.baseline == [*example.electron, "--no-electron"]
    assert example.electron[:2] == [sys.executable, str(ROOT / "examples" / "server.py")]
    assert example.hello is not None
    assert [cmd[-1] for cmd in example.hello] == ["electron", "plain"]
    asgi = command_target("{python} examples/asgi.py --port 0",
                          "{python} examples/asgi.py --port 0 --no-electron")
    assert asgi.electron == [sys.executable, "examples/asgi.py", "--port", "0"]
    assert asgi.baseline[-1] == "--no-electron"
    assert asgi.hello is None  # no hello-app twin: that route is skipped


def test_without_wrk_the_sweep_stops_and_says_how_to_install_it(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.sweep", "--quick"], cwd=ROOT,
                          env={**os.environ, "PATH": str(tmp_path)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "apt-get install wrk" in proc.stderr
    assert "round" not in proc.stdout  # nothing was measured with anything else


@pytest.mark.slow
@pytest.mark.skipif(WRK is None, reason="wrk is not installed (apt-get install wrk)")
def test_tiny_sweep_end_to_end(tmp_path: Path) -> None:
    out, png = tmp_path / "sweep.json", tmp_path / "sweep.png"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sweep", "--routes", "bytes", "--sizes", "16k",
         "--rounds", "2", "--seconds", "0.5", "--connections", "4", "--variants",
         "glibc-mmap", "--json", str(out), "--png", str(png)],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vs glibc-mmap" in proc.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"
    doc = json.loads(out.read_text())
    assert doc["suite"] == "sweep"
    assert doc["machine"]["cores"] >= 1
    assert doc["interpreter"]
    assert doc["config"]["rounds"] == 2
    assert doc["config"]["load"].startswith("wrk")
    assert set(doc["config"]["variants"]) == {"glibc-mmap"}
    (route,) = doc["routes"]
    assert route["route"] == "GET /bytes/16384"
    assert len(route["loadavg_before"]) == len(route["loadavg_after"]) == 3
    assert set(route["sides"]) == {"electron", "baseline", "glibc-mmap"}
    assert route["sides"]["glibc-mmap"]["env"] == {"MALLOC_MMAP_THRESHOLD_": str(64 << 20)}
    for side in route["sides"].values():
        assert len(side["rounds"]) == 2
        assert side["errors"] == 0
        assert side["bytes_per_response"] >= 16384
        assert side["rss_peak"] >= side["rss_idle"] > 0
        for r in side["rounds"]:
            assert r["rps"] > 0
            assert r["requests"] > 0
            assert r["cpu_us_per_request"] > 0
            assert r["latency_max_us"] >= r["latency_p99_us"] > 0
    assert set(route["ratios"]) == {"baseline", "glibc-mmap"}
    for ratio in route["ratios"].values():
        low, high = ratio["ci95"]
        assert 0 < low <= ratio["median"] <= high
        assert len(ratio["rounds"]) == 2
    assert [r["baseline"].split(":")[0] for r in doc["results"]] == ["baseline", "glibc-mmap"]
    assert "cpu_ratios" in doc["legend"]
    again = tmp_path / "again.png"
    proc = subprocess.run([sys.executable, "-m", "bench.sweep", "--from-json", str(out), "--png",
                           str(again)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "GET /bytes/16384" in proc.stdout
    assert again.read_bytes()[:4] == b"\x89PNG"


def test_the_suite_skips_the_sweep_without_wrk_and_says_why(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import bench.__main__ as suite

    monkeypatch.setattr(shutil, "which", lambda name: None)
    reason = suite._unmet_need("sweep")
    assert reason == "wrk is not installed (apt-get install wrk)"
    assert suite._unmet_need("micro") is None
    machine = {"cpu": "Test CPU", "cores": 2, "platform": "Linux", "python": "3.11",
               "implementation": "CPython", "versions": {}}
    md = suite.render({"command": "python -m bench --quick", "quick": True, "machine": machine,
                       "started": "now", "seconds": 1.0, "passed": True,
                       "parts": [{"name": "sweep", "status": "skipped", "reason": reason}]})
    assert f"| `bench.sweep` | n/a skipped: {reason} |" in md
    assert f"\n## bench.sweep\n\nSkipped: {reason}.\n" in md


class _FakeServer:
    """Enough of ``bench._load.Server`` for ``alternate``: no process behind it."""

    url = "http://127.0.0.1:1"

    def rss(self) -> int:
        return 1 << 20

    def cpu_seconds(self) -> float:
        return 0.0


def test_a_round_that_completed_no_request_is_run_again() -> None:
    """A round in which wrk completed nothing (the server starved of CPU) is measured again
    instead of making a ratio divide by zero; a server that never answers stops the sweep
    with a clear error."""
    calls: list[str] = []
    answers = iter([0, 100, 100, 100])

    def generator(url: str, seconds: float, connections: int) -> LoadRun:
        calls.append(url)
        n = next(answers)
        return LoadRun(rps=float(n), requests=n, errors=0)

    servers = {"electron": _FakeServer(), "baseline": _FakeServer()}
    runs = alternate(servers, "/", 1, 0.5, 1, generator)  # type: ignore[arg-type]
    assert len(calls) == 3
    assert [load.rps for load in runs["electron"]] == [100.0]
    assert [load.rps for load in runs["baseline"]] == [100.0]

    def never(url: str, seconds: float, connections: int) -> LoadRun:
        return LoadRun(rps=0.0, requests=0, errors=0)

    with pytest.raises(RuntimeError, match="no request completed in 3 runs"):
        alternate(servers, "/", 1, 0.5, 1, never)  # type: ignore[arg-type]
