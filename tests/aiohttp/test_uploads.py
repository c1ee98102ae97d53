"""Uploads take memory as bytes arrive: a declared Content-Length alone holds nothing."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

import electron
from electron.aio.aiohttp import read_body, refuse_oversized, setup
from tests.support import anyio_backend, eventually, serve_port  # noqa: F401 - asyncio only

pytestmark = pytest.mark.anyio

DECLARED = 16_000_000


def _app(aop: electron.ArenaOfPools, **options: object) -> web.Application:
    app = web.Application()
    setup(app, aop, body_limit=DECLARED, **options)  # type: ignore[arg-type]

    async def upload(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        return web.Response(text=str(len(body)))

    app.router.add_post("/upload", upload, expect_handler=refuse_oversized())
    return app


async def _headers_only(port: int) -> asyncio.StreamWriter:
    """A connection that declares a large body and sends none of it."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {DECLARED}\r\n\r\n".encode()
    )
    await writer.drain()
    return writer


async def test_header_only_uploads_hold_no_memory_and_starve_nobody() -> None:
    # A budget that a single declared body would exhaust many times over.
    aop = electron.ArenaOfPools(arena_size=16 << 10, max_bytes=1 << 20)
    async with serve_port(_app(aop)) as port:
        idle = [await _headers_only(port) for _ in range(16)]
        await eventually(lambda: aop.statistics().waiting == 0, "handlers to start")
        await asyncio.sleep(0.05)  # let every handler reach read_body
        stats = aop.statistics()
        assert (stats.active_arenas, stats.active_buffers, stats.bytes_in_use) == (0, 0, 0)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/upload", data=b"x" * 300_000) as resp,
        ):
            assert resp.status == 200
            assert await resp.text() == "300000"
        for writer in idle:
            writer.close()
            await writer.wait_closed()
    assert aop.statistics().active_arenas == 0


async def test_a_body_that_stops_arriving_gets_408() -> None:
    aop = electron.ArenaOfPools(arena_size=16 << 10)
    async with serve_port(_app(aop, body_timeout=0.2)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.split()[1] == b"408"
        writer.close()
        await writer.wait_closed()
    assert aop.statistics().active_arenas == aop.statistics().active_buffers == 0


async def test_memory_grows_with_what_arrived() -> None:
    aop = electron.ArenaOfPools(arena_size=16 << 10)
    seen: list[int] = []
    app = web.Application()
    setup(app, aop)
    gate = asyncio.Event()

    async def upload(request: web.Request) -> web.StreamResponse:
        task = asyncio.ensure_future(read_body(request))
        await gate.wait()
        await asyncio.sleep(0.05)
        seen.append(aop.statistics().bytes_in_use)
        body = await task
        return web.Response(text=str(len(body)))

    app.router.add_post("/upload", upload)
    async with serve_port(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 10_000
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        gate.set()
        await eventually(lambda: bool(seen), "the handler's look at the books")
        writer.write(b"y" * 990_000)
        await writer.drain()
        await asyncio.wait_for(reader.readline(), 10)
        writer.close()
    # 10 KB arrived: an arena and a buffer of about twice that, not the declared 1 MB.
    assert seen[0] <= (16 << 10) + 2 * 10_000 + 4096
    assert aop.statistics().active_buffers == 0


async def test_expect_continue_over_the_limit_is_refused_before_the_body() -> None:
    aop = electron.ArenaOfPools(arena_size=16 << 10, max_bytes=1 << 20)
    async with serve_port(_app(aop)) as port:  # body_limit 16 MB, but the budget is 1 MiB
        for declared, first_line in ((2 << 20, b"413"), (1000, b"100")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                + f"Content-Length: {declared}\r\n\r\n".encode()
            )
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.split()[1] == first_line, declared
            if first_line == b"100":  # the body is wanted now: send it
                await reader.readline()
                writer.write(b"z" * declared)
                await writer.drain()
                status = await asyncio.wait_for(reader.readline(), 10)
                assert status.split()[1] == b"200"
            writer.close()
            await writer.wait_closed()
    assert aop.statistics().active_arenas == aop.statistics().active_buffers == 0
