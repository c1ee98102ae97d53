"""Uploads take memory as bytes arrive: a declared Content-Length alone holds nothing."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Callable
from unittest import mock

import aiohttp
import pytest
from aiohttp import StreamReader, web
from aiohttp.streams import EmptyStreamReader

import electron
from electron.aio.aiohttp import read_body, refuse_oversized, setup
from electron.aio.aiohttp._aiohttp_internals import next_part
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


async def _upload_in_steps(
    aop: electron.ArenaOfPools, declared: int, steps: list[int], look: Callable[[], object]
) -> tuple[list[object], tuple[tuple[int, int], ...]]:
    """POST a body of ``declared`` bytes in ``steps`` (byte counts) to an app set up with
    ``aop``, calling ``look()`` in the handler once each step but the last arrived (the
    handler reads the body meanwhile): what it saw, and the idle buffers by size after."""
    app = web.Application()
    setup(app, aop)
    seen: list[object] = []
    step_arrived = asyncio.Event()

    async def upload(request: web.Request) -> web.StreamResponse:
        task = asyncio.ensure_future(read_body(request))
        for _ in steps[:-1]:
            await step_arrived.wait()
            step_arrived.clear()
            await asyncio.sleep(0.05)  # read_body takes what arrived
            seen.append(look())
        body = await task
        return web.Response(text=str(len(body)))

    app.router.add_post("/upload", upload)
    async with serve_port(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n"
        writer.write(head.encode())
        for k, n in enumerate(steps):
            writer.write(b"y" * n)
            await writer.drain()
            if k < len(steps) - 1:
                await asyncio.sleep(0.05)
                step_arrived.set()
                await eventually(lambda k=k: len(seen) > k, "the handler's look at the books")  # type: ignore[misc]
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.split()[1] == b"200"
        writer.close()
        await eventually(lambda: aop.statistics().active_buffers == 0, "the buffer back")
        return seen, aop.buffer_pool.statistics().pooled_by_size


async def test_under_a_budget_memory_grows_with_what_arrived() -> None:
    aop = electron.ArenaOfPools(arena_size=16 << 10, max_bytes=64 << 20)
    seen, _ = await _upload_in_steps(
        aop, 1_000_000, [10_000, 990_000], lambda: aop.statistics().bytes_in_use
    )
    # 10 KB arrived: an arena and a buffer of about twice that, not the declared 1 MB.
    assert seen[0] <= (16 << 10) + 2 * 10_000 + 4096  # type: ignore[operator]


@pytest.mark.parametrize("max_arenas", [None, 64])  # a budget of arenas counts no bytes
async def test_without_max_bytes_a_declared_body_takes_one_buffer_once_half_arrived(
    max_arenas: int | None,
) -> None:
    aop = electron.ArenaOfPools(arena_size=16 << 10, max_arenas=max_arenas)
    pool = aop.buffer_pool

    def look() -> tuple[int, int]:
        stats = pool.statistics()
        return stats.active, stats.active_bytes

    steps = [10_000, 440_000, 100_000, 450_000]
    seen, idle = await _upload_in_steps(aop, 1_000_000, steps, look)
    whole = pool.size_class(1_000_000)
    # Less than half arrived: nothing taken yet; then one buffer of the declared length.
    assert seen == [(0, 0), (0, 0), (1, whole)]
    # One region, copied into once: no smaller ones outgrown on the way.
    assert idle == ((whole, 1),)


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


async def test_the_parts_aiohttp_holds_are_taken_one_by_one_as_they_are() -> None:
    # read_nowait() would join them into new bytes: a copy read_body does not need.
    content = StreamReader(mock.Mock(), 1 << 16, loop=asyncio.get_running_loop())
    first, second = b"a" * 1000, b"b" * 1000
    content.feed_data(first)
    content.feed_data(second)
    assert next_part(content) is first
    assert next_part(content) is second
    assert next_part(content) == b""
    content.set_exception(aiohttp.ClientPayloadError("cut short"))
    with pytest.raises(aiohttp.ClientPayloadError):
        next_part(content)
    assert next_part(EmptyStreamReader()) == b""


async def test_a_compressed_body_may_outgrow_its_declared_length() -> None:
    # aiohttp inflates a gzip body: Content-Length is the compressed size, the buffer taken
    # for it grows to hold the whole inflated body.
    aop = electron.ArenaOfPools(arena_size=16 << 10)
    app = web.Application()
    setup(app, aop)

    async def upload(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        return web.Response(body=hashlib.sha256(body.view()).digest())

    app.router.add_post("/upload", upload)
    raw = b"".join(b"%08d," % i for i in range(100_000))  # 900 KB, a few KB compressed
    packed = gzip.compress(raw)
    gzipped = {"Content-Encoding": "gzip"}
    async with (
        serve_port(app) as port,
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/upload", data=packed, headers=gzipped) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == hashlib.sha256(raw).digest()
    assert aop.statistics().active_buffers == 0
