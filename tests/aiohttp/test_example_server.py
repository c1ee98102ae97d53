"""examples/server.py: every route under concurrent load (electron and baseline), and the
real process (port 0, workers, signals)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import aiohttp
import psutil
import pytest

import electron
from electron.aio.aiohttp import MIDDLEWARE_KEY
from tests.support import EXAMPLE_SERVER, anyio_backend, load_example, serve  # noqa: F401 - anyio_backend: the asyncio-only backends

LINE = re.compile(r"^electron example server listening on (http://127\.0\.0\.1:(\d+))$")


def test_pattern_matches_the_definition() -> None:
    pattern = load_example("electron_example_server").pattern
    for seed in (0, 1, 7, 250, 251, 1000, -3):
        assert pattern(1000, seed) == bytes((seed * 31 + i) % 251 for i in range(1000))
    assert pattern(0, 5) == b""


@pytest.mark.anyio
async def test_bytes_uses_pooled_memory_from_pooled_from_or_when_asked() -> None:
    """Below POOLED_FROM the body is plain bytes (no lease: the request costs electron
    nothing); from it, and at any size with ``pooled=1``, it is pooled memory. The body is
    the pattern either way."""
    example = load_example("electron_example_server")
    aop = electron.ArenaOfPools()
    app = example.make_app(aop, metrics=False)
    mw = app[MIDDLEWARE_KEY]
    small, large = example.POOLED_FROM - 1, example.POOLED_FROM
    async with serve(app) as url, aiohttp.ClientSession() as session:
        for path, leases in [
            (f"/bytes/{small}?seed=3", 0),
            (f"/bytes/{large}?seed=3", 1),
            (f"/bytes/{small}?seed=3&pooled=1", 1),
            ("/bytes/100?seed=3&pooled=1", 1),
        ]:
            before = mw.statistics().requests
            async with session.get(url + path) as resp:
                n = int(path.split("/")[2].split("?")[0])
                assert await resp.read() == example.pattern(n, 3), path
            assert mw.statistics().requests - before == leases, path


async def hammer(url: str, example: ModuleType, requests: int, seed: int) -> None:
    """Hundreds of concurrent requests on every route, each body checked byte for byte."""
    rng = random.Random(seed)
    sizes = [0, 1, 250, 251, 252, 4096, 16384, 16385, 65536, 300_000, 1 << 20]

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        kind = i % 6
        if kind == 0:
            async with session.get(f"{url}/") as resp:
                assert resp.status == 200
                assert resp.content_type == "text/plain"
                assert await resp.read() == b"Hello, World!"
        elif kind == 1:
            async with session.get(f"{url}/json") as resp:
                assert resp.content_type == "application/json"
                doc = await resp.json()
                assert doc["message"] == "Hello, World!"
                assert len(doc["items"]) == 3
        elif kind == 2:
            n = rng.choice(sizes) if i % 12 else (8 << 20)
            async with session.get(f"{url}/bytes/{n}?seed={i}") as resp:
                assert resp.status == 200
                assert await resp.read() == example.pattern(n, i), f"/bytes/{n}?seed={i}"
        elif kind == 3:
            data = rng.randbytes(rng.choice([0, 1, 1000, 70_000, 1 << 20]))
            async with session.post(f"{url}/upload", data=data) as resp:
                assert await resp.json() == {
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
        elif kind == 4:
            name = f"<i>&'{i}\""
            items = i % 40
            async with session.get(f"{url}/render", params={"name": name, "items": items}) as resp:
                assert resp.content_type == "text/html"
                page = await resp.text()
                assert "<i>" not in page  # autoescaped
                assert f"Hello, &lt;i&gt;&amp;&#x27;{i}&quot;!" in page
                assert page.count("<li ") == items
        else:
            async with session.get(f"{url}/stats") as resp:
                assert resp.status == 200
                assert "active_arenas" in await resp.json()

    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, i) for i in range(requests)))


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["electron", "baseline"])
async def test_every_route_under_concurrent_load(mode: str) -> None:
    example = load_example("electron_example_server")
    aop = electron.ArenaOfPools(arena_size=16 << 10) if mode == "electron" else None
    app = example.make_app(aop, upload_limit=2 << 20)
    async with serve(app) as url:
        await hammer(url, example, 600, seed=1)
        if aop is not None:
            async with aiohttp.ClientSession() as session:
                # Once the responses are out, the server is idle: /stats shows no arena lent
                # and does not count itself.
                mw = app[MIDDLEWARE_KEY]
                before = mw.statistics().requests
                for _ in range(3):
                    async with session.get(f"{url}/stats") as resp:
                        stats = await resp.json()
                assert mw.statistics().requests == before
            assert stats["active_arenas"] == 0
            assert stats["active_buffers"] == 0
            assert stats["quarantine_events"] == 0
            # Pooled buffers were reused: far fewer made than requests that used one.
            assert 0 < stats["buffers_created"] < stats["middleware"]["requests"] // 2
            fields = electron.ArenaOfPoolsStatistics.__dataclass_fields__
            assert set(stats) == {*fields, "middleware", "top_routes"}
            routes = {r["route"] for r in stats["top_routes"]}
            # Only routes that use electron memory: not /, /json, /render (plain bytes), /stats.
            assert routes == {"/bytes/{n}", "/upload"}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["electron", "baseline"])
async def test_bad_requests_get_clear_answers(mode: str) -> None:
    example = load_example("electron_example_server")
    aop = electron.ArenaOfPools(arena_size=16 << 10) if mode == "electron" else None
    app = example.make_app(aop, upload_limit=1000)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/bytes/{(8 << 20) + 1}") as resp:
            assert resp.status == 400
            assert "8388608" in await resp.text()
        for path in ("/bytes/abc", "/bytes/10?seed=x", "/bytes/-1", "/render?items=10001"):
            async with session.get(url + path) as resp:
                assert resp.status == 400, path
        async with session.get(f"{url}/render?name={'x' * 1001}") as resp:
            assert resp.status == 400
        # On its own connection: before 3.14, aiohttp's own 413 (the baseline's) leaves the
        # unread body on the connection for the next request to trip over.
        refused = {"Connection": "close"}
        async with session.post(f"{url}/upload", data=b"x" * 1001, headers=refused) as resp:
            assert resp.status == 413
        # Under the limit (aiohttp 3.10's own check refuses a body of exactly the limit).
        async with session.post(f"{url}/upload", data=b"x" * 999) as resp:
            assert (await resp.json())["size"] == 999
        async with session.get(f"{url}/stats") as resp:
            stats = await resp.json()
    assert stats["active_arenas"] == 0
    if aop is not None:
        assert aop.statistics().active_buffers == 0


# -- the real process ------------------------------------------------------------------------


@contextmanager
def server_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start examples/server.py on port 0; yield (process, base URL); stop it at the end."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE_SERVER), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().rstrip("\n")
        match = LINE.match(line)
        if match is None:
            proc.kill()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {proc.communicate()[1]}")
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)  # reaps it and closes the pipes


def fetch(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def stats_pid(url: str) -> int:
    with urllib.request.urlopen(url + "/stats", timeout=30) as resp:
        return int(resp.headers["X-Server-Pid"])


def check_routes(url: str, example: ModuleType) -> None:
    assert fetch(url + "/") == (200, b"Hello, World!")
    assert json.loads(fetch(url + "/json")[1])["server"] == "electron"
    assert fetch(url + "/bytes/100000?seed=9") == (200, example.pattern(100_000, 9))
    _, body = fetch(url + "/upload", b"abc" * 1000)
    assert json.loads(body) == {
        "size": 3000,
        "sha256": hashlib.sha256(b"abc" * 1000).hexdigest(),
    }
    assert b"Hello, x!" in fetch(url + "/render?name=x&items=3")[1]
    assert fetch(url + "/bytes/9000000")[0] == 400


@pytest.mark.slow
@pytest.mark.parametrize("args", [(), ("--no-electron",), ("--loop", "asyncio")])
def test_server_process_serves_and_stops_on_sigterm(args: tuple[str, ...]) -> None:
    example = load_example("electron_example_server")
    with server_process(*args) as (proc, url):
        check_routes(url, example)
        stats = json.loads(fetch(url + "/stats")[1])
        assert stats["active_arenas"] == 0
        assert stats_pid(url) == proc.pid
        if not args:
            assert stats["buffers_created"] >= 1
        status, text = fetch(url + "/metrics")
        assert status == 200
        assert b"\nprocess_resident_memory_bytes " in text  # the process collector
        if "--no-electron" in args:  # the same libraries, without electron's figures
            assert b"electron_" not in text
        else:
            assert b"\nelectron_arenas_created_total " in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_workers_share_the_port_and_leave_no_orphans(sig: signal.Signals) -> None:
    example = load_example("electron_example_server")
    with server_process("--workers", "2") as (proc, url):
        parent = psutil.Process(proc.pid)
        workers = parent.children()
        assert len(workers) == 2
        for _ in range(5):
            check_routes(url, example)
        # The kernel spreads new connections over both workers (each has its own pool).
        pids = {stats_pid(url) for _ in range(40)}
        assert pids == {w.pid for w in workers}
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == [], f"orphaned workers: {alive}"


@pytest.mark.slow
def test_workers_exit_when_the_parent_is_killed() -> None:
    with server_process("--workers", "2") as (proc, url):
        workers = psutil.Process(proc.pid).children()
        assert len(workers) == 2
        assert fetch(url + "/")[0] == 200
        proc.kill()  # no chance to clean up: the kernel tells the workers (PDEATHSIG)
        proc.wait(30)
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == [], f"orphaned workers: {alive}"


def test_port_in_use_is_reported() -> None:
    with server_process() as (proc, url):
        port = url.rsplit(":", 1)[1]
        other = subprocess.run(
            [sys.executable, str(EXAMPLE_SERVER), "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        assert other.returncode == 1
        assert "in use" in other.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_help_explains_the_options() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE_SERVER), "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for option in ("--host", "--port", "--workers", "--no-electron", "--upload-limit"):
        assert option in out
