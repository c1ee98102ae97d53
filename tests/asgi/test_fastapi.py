"""electron.asgi.fastapi: the dependencies give the request's arena and pooled body."""

from __future__ import annotations

import httpx
import pytest

import electron
from electron.asgi import setup

fastapi = pytest.importorskip("fastapi")

from electron.asgi.fastapi import RequestArena, RequestBody  # noqa: E402 - needs fastapi

api = fastapi.FastAPI()
aop = electron.ArenaOfPools(arena_size=16 << 10)
mw = setup(api, aop, body_limit=1000)


@api.post("/upload")  # type: ignore[untyped-decorator]
async def upload(body: RequestBody, arena: RequestArena) -> dict[str, int]:
    arena.alloc(10)
    return {"size": len(body), "lines": body.count(b"\n")}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_fastapi_dependencies_give_the_request_memory(anyio_backend: str) -> None:
    transport = httpx.ASGITransport(api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post("/upload", content=b"a\nb\n" * 100)
        assert r.json() == {"size": 400, "lines": 200}
        assert (await c.post("/upload", content=b"x" * 1001)).status_code == 413
    assert [u.route for u in mw.route_usage()] == ["/upload"]
    stats = aop.statistics()
    assert (stats.active_arenas, stats.active_buffers) == (0, 0)
