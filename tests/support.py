"""Helpers shared by the tests: one bound on every wait, and aiohttp servers in-process."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from aiohttp import web

#: Seconds any test waits for something that should happen at once: a bug then fails the
#: test instead of hanging it.
JOIN = 20.0

EXAMPLE_SERVER = Path(__file__).resolve().parents[1] / "examples" / "server.py"


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


async def eventually(predicate: Callable[[], bool], what: str, within: float = JOIN) -> None:
    """Let other tasks (and threads) run until ``predicate()`` holds; fail after ``within`` s.

    For states that have no event to wait on (a pool's statistics); any anyio backend.
    """
    with anyio.move_on_after(within):
        while not predicate():  # noqa: ASYNC110 - polled state has no event to wait on
            await anyio.sleep(0.001)
        return
    pytest.fail(f"timed out waiting for: {what}")


def wait_until(predicate: Callable[[], bool], what: str, within: float = JOIN) -> None:
    """:func:`eventually` for threads: poll ``predicate()``; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {what}")
        time.sleep(0.001)


def load_example(name: str) -> ModuleType:
    """``examples/server.py`` imported as module ``name`` (once: later calls reuse it)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE_SERVER)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
