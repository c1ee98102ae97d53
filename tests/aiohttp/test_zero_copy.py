"""Pooled memory handed to a zero-copy transport goes back only once the transport let go of it.

uvloop keeps referencing the memory passed to ``transport.write()`` until the kernel took it,
and aiohttp writes the body after the middleware returned. These tests make the transport
hold memory for long (a small kernel send buffer on the server, clients with a small receive
buffer reading slowly) and check that every client gets exactly its own bytes, that the
pool never had to quarantine memory (nothing was given back while referenced) and that
everything comes back after aborts and cancellations. They run on uvloop and asyncio.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import sys

import aiohttp
import pytest
from aiohttp import web

import electron
from electron.aio.aiohttp import MIDDLEWARE_KEY, PooledResponse, _response
from electron.aio.aiohttp._response import COPY_MAX
from tests.support import anyio_backend, eventually, load_example, serve_port  # noqa: F401 - anyio_backend: the asyncio-only backends

pytestmark = pytest.mark.anyio


def shrink_send_buffer(app: web.Application, size: int = 4096) -> None:
    """A small kernel send buffer on the server: the transport holds body memory longer."""

    async def shrink(request: web.Request, response: web.StreamResponse) -> None:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    app.on_response_prepare.append(shrink)


async def connect(port: int, rcvbuf: int = 4096) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def send_get(sock: socket.socket, path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())


async def slow_get(port: int, path: str, *, chunk: int = 4096, pause: float = 0.001) -> bytes:
    """GET ``path`` reading ``chunk`` bytes every ``pause`` s; return the body (status 200)."""
    loop = asyncio.get_running_loop()
    sock = await connect(port)
    try:
        await send_get(sock, path)
        got = bytearray()
        while data := await loop.sock_recv(sock, chunk):
            got += data
            await asyncio.sleep(pause)
    finally:
        sock.close()
    head, sep, body = bytes(got).partition(b"\r\n\r\n")
    assert sep, f"{path}: no response head in {bytes(got[:200])!r}"
    assert head.startswith(b"HTTP/1.1 200 "), f"{path}: {head[:100]!r}"
    return body


async def clobbered_downloads(sizes: list[int]) -> tuple[list[bool], int]:
    """Slow readers GET PooledResponses whose memory is overwritten the moment it is
    released (what a pool without quarantine does: reuse at once). Returns, per size,
    whether the client got the right bytes, and how many bodies were released."""
    pattern = load_example("electron_example_server").pattern
    app = web.Application()
    released = 0

    async def clobbered(request: web.Request) -> web.StreamResponse:
        n, seed = int(request.match_info["n"]), int(request.query["seed"])
        body = bytearray(pattern(n, seed))

        def clobber() -> None:
            nonlocal released
            released += 1
            body[:] = b"\xff" * len(body)

        return PooledResponse(body, on_release=clobber)

    app.router.add_get("/clobber/{n}", clobbered)
    shrink_send_buffer(app)
    async with serve_port(app) as port:
        paths = [(n, seed, f"/clobber/{n}?seed={seed}") for seed, n in enumerate(sizes)]
        bodies = await asyncio.gather(*(slow_get(port, p) for _, _, p in paths))
    intact = [body == pattern(n, seed) for (n, seed, _), body in zip(paths, bodies, strict=True)]
    return intact, released


# Small bodies are sent as a copy (their memory goes back at once); large ones from pooled
# memory, after which the response waits for the transport to flush before giving it back.
SMALL = [1, COPY_MAX // 2, COPY_MAX]
LARGE = [COPY_MAX + 1, 150_000, 300_000, 1 << 20]


async def test_memory_is_reused_only_after_the_transport_flushed() -> None:
    """The body's memory is overwritten the moment it is released; clients must not see it."""
    sizes = (SMALL + LARGE) * 3
    intact, released = await clobbered_downloads(sizes)
    assert all(intact), [n for n, ok in zip(sizes, intact, strict=True) if not ok]
    assert released == len(sizes)


async def test_without_the_flush_wait_large_bodies_reach_clients_clobbered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The test above can fail: where the transport sends memory without copying it
    (uvloop; asyncio on Python >= 3.12), giving large bodies back right after they were
    written sends the bytes that replaced them. Copied small bodies need no wait."""
    if not type(asyncio.get_running_loop()).__module__.startswith("uvloop") and (
        sys.version_info < (3, 12)
    ):
        pytest.skip("asyncio before Python 3.12 copies what it cannot send at once")

    async def no_wait(writer: object) -> bool:
        return False

    monkeypatch.setattr(_response, "wait_flushed", no_wait)
    sizes = SMALL * 2 + LARGE * 2
    intact, released = await clobbered_downloads(sizes)
    assert released == len(sizes)
    assert all(intact[: len(SMALL) * 2]), "a copied small body was clobbered"
    assert not all(intact), "large bodies arrived intact without the flush wait"


async def test_slow_readers_get_their_own_bytes_while_others_churn() -> None:
    """Many slow readers download large pooled bodies while other clients churn every route."""
    example = load_example("electron_example_server")
    aop = electron.ArenaOfPools(arena_size=16 << 10, pool_size=16)
    app = example.make_app(aop, upload_limit=1 << 20)
    shrink_send_buffer(app, 8192)
    mw = app[MIDDLEWARE_KEY]
    rng = random.Random(5)
    slow_sizes = [40_000, 1 << 20, 3 << 20, 60_000, 2 << 20, 500_000] * 2
    async with serve_port(app) as port:
        base = f"http://127.0.0.1:{port}"

        async def reader(i: int, n: int) -> None:
            body = await slow_get(port, f"/bytes/{n}?seed={i}&pooled=1", chunk=16384)
            assert body == example.pattern(n, i), f"slow reader {i}: wrong bytes"

        async def churn(session: aiohttp.ClientSession, i: int) -> None:
            kind = i % 5
            if kind == 0:
                n = rng.randrange(0, 200_000)
                async with session.get(f"{base}/bytes/{n}?seed={i}&pooled=1") as resp:
                    assert await resp.read() == example.pattern(n, i)
            elif kind == 1:
                async with session.get(f"{base}/json") as resp:
                    assert (await resp.json())["message"] == "Hello, World!"
            elif kind == 2:
                async with session.get(f"{base}/render?name=n{i}&items={i % 7}") as resp:
                    text = await resp.text()
                    assert f"Hello, n{i}!" in text
                    assert text.count("<li ") == i % 7
            elif kind == 3:
                data = rng.randbytes(rng.randrange(0, 100_000))
                async with session.post(f"{base}/upload", data=data) as resp:
                    doc = await resp.json()
                    assert doc == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            else:
                async with session.get(f"{base}/") as resp:
                    assert await resp.text() == "Hello, World!"

        connector = aiohttp.TCPConnector(limit=40)
        async with aiohttp.ClientSession(connector=connector) as session:
            readers = [reader(i, n) for i, n in enumerate(slow_sizes)]
            churners = [churn(session, i) for i in range(400)]
            await asyncio.gather(*readers, *churners)
            await eventually(lambda: aop.statistics().active_arenas == 0, "arenas back")
            async with session.get(f"{base}/stats") as resp:
                stats = await resp.json()
    assert stats["active_arenas"] == 0
    assert stats["active_buffers"] == 0
    assert stats["quarantine_events"] == 0, "memory was given back while still referenced"
    assert mw.statistics().in_flight == 0
    # Used electron memory: the slow readers and the churners of /bytes and /upload (/, /json and
    # /render answer with plain bytes: they never touch the request's arena or buffers).
    assert mw.statistics().requests == 12 + 2 * 400 // 5


@pytest.mark.parametrize("handler_cancellation", [True, False], ids=["cancel-on", "cancel-off"])
async def test_aborted_downloads_and_stalled_readers_give_everything_back(
    handler_cancellation: bool,
) -> None:
    example = load_example("electron_example_server")
    aop = electron.ArenaOfPools(arena_size=16 << 10)
    app = example.make_app(aop)
    shrink_send_buffer(app)
    mw = app[MIDDLEWARE_KEY]
    loop = asyncio.get_running_loop()
    async with serve_port(app, handler_cancellation=handler_cancellation) as port:

        async def abort(i: int, n: int, read: int) -> None:
            sock = await connect(port)
            try:
                await send_get(sock, f"/bytes/{n}?seed={i}&pooled=1")
                got = 0
                while got < read and (data := await loop.sock_recv(sock, 16384)):
                    got += len(data)
            finally:
                sock.close()  # unread data: the kernel resets the connection

        await asyncio.gather(*(abort(i, (i + 1) * (300 << 10), 1 + i * 20_000) for i in range(12)))

        # A reader that stops reading keeps its memory lent (it is still referenced) ...
        stalled = await connect(port)
        await send_get(stalled, f"/bytes/{4 << 20}?seed=1")
        await loop.sock_recv(stalled, 16384)
        await eventually(lambda: mw.statistics().requests == 13, "the stalled request started")
        await asyncio.sleep(0.1)
        assert aop.statistics().active_buffers >= 1
        # ... until it goes away.
        stalled.close()
        await eventually(lambda: aop.statistics().active_arenas == 0, "arenas back after aborts")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/stats") as resp,
        ):
            stats = await resp.json()
    assert stats["active_arenas"] == 0
    assert stats["active_buffers"] == 0
    assert mw.statistics().in_flight == 0


async def test_setup_on_a_plain_app_keeps_the_hello_world_path_undeferred() -> None:
    """The example's hello route never touches electron memory: nothing is lent, nothing
    deferred."""
    example = load_example("electron_example_server")
    aop = electron.ArenaOfPools(arena_size=4096)
    app = example.make_app(aop)
    mw = app[MIDDLEWARE_KEY]
    async with serve_port(app) as port, aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                assert await resp.text() == "Hello, World!"
    assert mw.statistics().deferred == 0
    assert mw.statistics().requests == 0
    assert aop.statistics().arenas_created == 0
