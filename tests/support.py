"""Helpers shared by the tests that run aiohttp servers in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """aiohttp runs on asyncio only: the stock loop and uvloop (zero-copy writes)."""
    return request.param  # type: ignore[no-any-return]


@asynccontextmanager
async def serve_port(
    app: web.Application, *, handler_cancellation: bool = False
) -> AsyncIterator[int]:
    """Run ``app`` on a free loopback port for the block; yields the port."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=handler_cancellation)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve(app: web.Application, *, handler_cancellation: bool = False) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port for the block; yields its base URL."""
    async with serve_port(app, handler_cancellation=handler_cancellation) as port:
        yield f"http://127.0.0.1:{port}"
