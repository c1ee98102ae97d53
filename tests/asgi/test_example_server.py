"""examples/asgi_server.py: the contract of examples/server.py, under every ASGI server it
supports (uvicorn on uvloop and asyncio, with httptools and h11; hypercorn; granian), with
electron and as the --no-electron baseline; the real process (port 0, workers, signals)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aiohttp.test_example_server import check_routes, fetch, hammer
from tests.asgi.asgi_support import (
    ASGI_EXAMPLE,
    SERVERS,
    asgi_server,
    declared_upload_status,
    server_params,
    stop,
)
from tests.safety.test_server_faults import EXAMPLE, LINE, Server


@pytest.fixture(scope="module", params=server_params())
def electron_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server]]:
    name: str = request.param
    with asgi_server(tmp_path_factory.mktemp("asgi"), name, "--upload-limit", "2000000") as srv:
        yield name, srv


def test_every_route_answers_as_the_aiohttp_example_does(
    electron_server: tuple[str, Server],
) -> None:
    _, srv = electron_server
    check_routes(srv.url, EXAMPLE)
    status, _, body = srv.fetch("/bytes/0")
    assert (status, body) == (200, b"")
    for path in ("/bytes/300000?seed=2", "/bytes/3000?seed=2&pooled=1"):  # pooled memory
        n = int(path.split("/")[2].split("?")[0])
        assert srv.fetch(path)[2] == EXAMPLE.pattern(n, 2), path
    stats = srv.settle()
    assert stats["quarantine_events"] == 0
    routes = {r["route"] for r in stats["top_routes"]}  # type: ignore[attr-defined]
    assert routes == {"/bytes/{n}", "/upload"}  # the templates of the routes that used memory
    assert stats["middleware"]["in_flight"] == 0  # type: ignore[index]


def test_bad_requests_get_clear_answers(electron_server: tuple[str, Server]) -> None:
    _, srv = electron_server
    status, _, body = srv.fetch(f"/bytes/{(8 << 20) + 1}")
    assert status == 400
    assert b"8388608" in body
    for path in ("/bytes/abc", "/bytes/10?seed=x", "/bytes/-1", "/render?items=10001"):
        assert srv.fetch(path)[0] == 400, path
    assert srv.fetch(f"/render?name={'x' * 1001}")[0] == 400
    assert declared_upload_status(srv, 2_000_001) == 413
    assert json.loads(srv.fetch("/upload", b"x" * 999)[2])["size"] == 999
    assert srv.fetch("/nowhere")[0] == 404
    srv.settle()


def test_metrics_count_the_requests_that_used_memory(electron_server: tuple[str, Server]) -> None:
    _, srv = electron_server
    srv.fetch("/bytes/100000?seed=1&pooled=1")
    status, _, body = srv.fetch("/metrics")
    assert status == 200
    text = body.decode()
    assert "electron_http_requests_total" in text
    assert 'electron_request_bytes_count{route="/bytes/{n}"}' in text


@pytest.mark.parametrize("name", server_params())
def test_the_baseline_serves_the_same_contract(tmp_path: Path, name: str) -> None:
    with asgi_server(tmp_path, name, "--no-electron", "--upload-limit", "2000000") as srv:
        check_routes(srv.url, EXAMPLE)
        assert declared_upload_status(srv, 2_000_001) == 413
        stats = srv.stats()
        assert stats["active_arenas"] == 0
        assert srv.fetch("/metrics")[0] == 404  # as examples/server.py --no-electron


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["electron", "baseline"])
def test_every_route_under_concurrent_load(tmp_path: Path, mode: str) -> None:
    args = ("--no-electron",) if mode == "baseline" else ()
    with asgi_server(tmp_path, "uvicorn-uvloop", "--upload-limit", "2000000", *args) as srv:
        asyncio.run(hammer(srv.url, EXAMPLE, 600, seed=1))
        if mode == "electron":
            stats = srv.settle()
            assert stats["quarantine_events"] == 0
            assert 0 < stats["buffers_created"] < stats["middleware"]["requests"] // 2  # type: ignore[index]


def _start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ASGI_EXAMPLE), "--port", "0", *args],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = LINE.search(line)
    if match is None:
        stop(proc)
        raise AssertionError(f"unexpected first line {line!r}")
    return proc, f"http://{match.group(1)}:{match.group(2)}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_workers_share_the_port_and_stop_on_a_signal(sig: signal.Signals) -> None:
    proc, url = _start("--workers", "2")
    try:
        pids = {int(fetch_pid(url)) for _ in range(40)}
        assert 1 <= len(pids) <= 2
        assert fetch(url + "/")[1] == b"Hello, World!"
        proc.send_signal(sig)
        assert proc.wait(30) == 0
    finally:
        stop(proc)


def fetch_pid(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url + "/stats", timeout=30) as resp:
        return str(resp.headers["X-Server-Pid"])


def test_help_names_every_server() -> None:
    out = subprocess.run(
        [sys.executable, str(ASGI_EXAMPLE), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("uvicorn", "hypercorn", "granian", "--no-electron", "--workers"):
        assert name in out
    assert set(SERVERS) >= {"uvicorn-uvloop", "uvicorn-asyncio", "hypercorn", "granian"}
