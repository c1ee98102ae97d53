"""Smoke test of an installed electron wheel: an aiohttp app on a real socket.

Run by ``.ci/package_check.sh`` with the interpreter of a fresh virtual environment that has
only ``electron[aiohttp]`` installed (``examples/`` is not in the wheel, so the app is here).
It starts an app set up with ``electron.aio.aiohttp.setup`` on a free port, requests a
pooled route (a 1 MiB body built in a pooled buffer and sent without a copy), an upload
read into pooled memory and a route that never touches electron memory, concurrently, checks
every body byte for byte, and then checks that every arena and buffer came back. Exits
non-zero, saying what failed, on any difference.
"""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
from aiohttp import web

import electron
from electron.aio.aiohttp import PooledResponse, read_body, request_buffer, setup

SIZE = 1 << 20
CONCURRENCY = 16


def pattern(n: int, seed: int) -> bytes:
    """``n`` bytes where byte i is ``(seed * 31 + i) % 251``."""
    period = bytes((seed * 31 + i) % 251 for i in range(251))
    return (period * (n // 251 + 1))[:n]


async def pooled(request: web.Request) -> web.StreamResponse:
    seed = int(request.match_info["seed"])
    buf = request_buffer(request, SIZE)  # pooled; goes back with the request
    buf.write(pattern(SIZE, seed))
    return PooledResponse(buf)  # sent without a copy, given back once flushed


async def upload(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, limit=4 << 20)  # pooled; 413 over the limit
    return web.json_response({"size": len(body), "sha256": hashlib.sha256(body.view()).hexdigest()})


async def plain(request: web.Request) -> web.StreamResponse:
    return web.Response(text="hello")


def make_app(aop: electron.ArenaOfPools) -> web.Application:
    app = web.Application()
    setup(app, aop, acquire_timeout=5)
    app.router.add_get("/pooled/{seed}", pooled)
    app.router.add_post("/upload", upload)
    app.router.add_get("/", plain)
    return app


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}")


async def main() -> None:
    aop = electron.ArenaOfPools(max_bytes=64 << 20)
    app = make_app(aop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"serving on 127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    upload_body = pattern(300_000, 7)
    try:
        async with aiohttp.ClientSession() as session:

            async def get_pooled(seed: int) -> bool:
                async with session.get(f"{base}/pooled/{seed}") as resp:
                    return resp.status == 200 and await resp.read() == pattern(SIZE, seed)

            results = await asyncio.gather(*(get_pooled(seed) for seed in range(CONCURRENCY)))
            check(all(results), f"{CONCURRENCY} concurrent pooled 1 MiB responses, byte for byte")
            async with session.post(f"{base}/upload", data=upload_body) as resp:
                doc = await resp.json()
            expected = {"size": len(upload_body), "sha256": hashlib.sha256(upload_body).hexdigest()}
            check(resp.status == 200 and doc == expected, "an upload read into pooled memory")
            async with session.get(f"{base}/") as resp:
                check(resp.status == 200 and await resp.text() == "hello", "a plain route")
        for _ in range(200):  # memory goes back once the transport has flushed
            stats = aop.statistics()
            if not stats.active_arenas and not stats.active_buffers:
                break
            await asyncio.sleep(0.01)
        stats = aop.statistics()
        check(
            stats.active_arenas == 0 and stats.active_buffers == 0,
            f"nothing stays lent (arenas {stats.active_arenas}, buffers {stats.active_buffers})",
        )
        mw = app[electron.aio.aiohttp.MIDDLEWARE_KEY]
        mstats = mw.statistics()
        check(
            mstats.requests == CONCURRENCY + 1 and mstats.in_flight == 0,
            f"middleware: {mstats.requests} requests lent an arena, {mstats.in_flight} in flight",
        )
        check(stats.leaks_detected == 0, "no leak detected")
    finally:
        await runner.cleanup()
    core = "compiled" if electron.COMPILED else "pure Python"
    print(f"package smoke test passed (electron {electron.__version__}, {core} core)")


if __name__ == "__main__":
    asyncio.run(main())
