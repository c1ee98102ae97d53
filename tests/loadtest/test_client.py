"""The load generator in-process against small aiohttp apps: verified bodies, error kinds.

aiohttp-only, so these run on asyncio (no anyio backend matrix).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import socket
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bench._lt._client import Job, JobResult, run_job
from bench._lt._mix import parse_mix
from bench._lt._verify import expected_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _app(*, flip_byte: bool = False, status: int = 200) -> web.Application:
    async def hello(request: web.Request) -> web.StreamResponse:
        if status != 200:
            return web.Response(status=status, text="busy")
        return web.Response(text="Hello, World!")

    async def json_doc(request: web.Request) -> web.StreamResponse:
        return web.json_response({"message": "Hello, World!"})

    async def pattern(request: web.Request) -> web.StreamResponse:
        n, seed = int(request.match_info["n"]), int(request.query["seed"])
        body = bytearray(expected_bytes(n, seed))
        if flip_byte:
            body[n // 2] ^= 0xFF
        return web.Response(body=bytes(body))

    async def upload(request: web.Request) -> web.StreamResponse:
        data = await request.read()
        return web.json_response({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})

    async def render(request: web.Request) -> web.StreamResponse:
        name = html.escape(request.query["name"], quote=False)
        items = "".join(f"<li>{i} {name}</li>" for i in range(int(request.query["items"])))
        return web.Response(text=f"<h1>{name}</h1><ul>{items}</ul>", content_type="text/html")

    app = web.Application(client_max_size=1 << 24)
    app.add_routes([web.get("/", hello), web.get("/json", json_doc),
                    web.get("/bytes/{n}", pattern), web.post("/upload", upload),
                    web.get("/render", render)])
    return app


async def _against(app: web.Application | None, **job: object) -> JobResult:
    runner = None
    if app is None:  # a port nobody listens on
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    else:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
    try:
        defaults: dict[str, object] = {
            "url": f"http://127.0.0.1:{port}", "routes": parse_mix("/=1"), "concurrency": 4,
            "start_at": time.monotonic(), "duration": 30.0, "timeout": 10.0,
        }
        return await run_job(Job(**(defaults | job)))  # type: ignore[arg-type]
    finally:
        if runner is not None:
            await runner.cleanup()


def test_correct_server_every_route_verified_and_quota_exact() -> None:
    mix = parse_mix("/=1,/json=1,/bytes/70000=1,/render?items=4=1,/upload=1", upload_size=5000)
    r = asyncio.run(_against(_app(), routes=mix, requests=150, concurrency=6))
    assert r.crashed is None
    assert r.errors == {}
    assert r.ok == 150
    assert set(r.routes) == {"/", "/json", "/bytes/70000", "/render?items=4", "/upload"}
    assert sum(rr.ok for rr in r.routes.values()) == 150
    assert all(rr.hist for rr in r.routes.values())
    assert r.routes["/bytes/70000"].bytes_in == 70000 * r.routes["/bytes/70000"].ok
    assert r.bytes_out == 5000 * r.routes["/upload"].ok
    assert sum(c for _, c, _, _ in r.timeline) == 150


def test_one_wrong_byte_is_an_error_not_a_success() -> None:
    r = asyncio.run(_against(_app(flip_byte=True), routes=parse_mix("/bytes/4096=1,/=1"),
                             requests=60))
    bad = r.routes["/bytes/4096"]
    assert bad.ok == 0
    assert bad.errors == r.errors["bad_body"] > 0
    assert r.ok == r.routes["/"].ok == 60 - bad.errors
    assert any("byte 2048 " in m for m in r.samples["bad_body"])


def test_http_errors_are_counted_by_status() -> None:
    r = asyncio.run(_against(_app(status=503), requests=20))
    assert r.ok == 0
    assert r.errors == {"http_503": 20}


def test_connection_refused_is_counted_and_bounded() -> None:
    r = asyncio.run(_against(None, requests=8, concurrency=2))
    assert r.ok == 0
    assert r.errors == {"connect": 8}


def test_slow_readers_get_exactly_their_bytes() -> None:
    r = asyncio.run(_against(_app(), requests=12, concurrency=1, slow_readers=2,
                             slow_size=300_000, slow_rcvbuf=4096, slow_chunk=16384,
                             slow_pause=0.0005))
    slow = r.routes["/bytes/300000 (slow reader)"]
    assert r.errors == {}
    assert slow.ok > 0
    assert slow.bytes_in == 300_000 * slow.ok
    assert r.ok == 12
