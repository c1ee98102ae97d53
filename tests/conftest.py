"""Shared fixtures: every async test runs on asyncio, asyncio+uvloop and trio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import electron

BACKENDS = [
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """The anyio pytest plugin runs each ``@pytest.mark.anyio`` test once per backend."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def aop() -> Iterator[electron.ArenaOfPools]:
    """A small ArenaOfPools that must have every arena and buffer back when the test ends."""
    pool = electron.ArenaOfPools(arena_size=16 << 10, pool_size=8)
    yield pool
    stats = pool.statistics()
    pool.close()
    assert stats.active_arenas == 0, f"test leaked {stats.active_arenas} arena(s)"
    assert stats.active_buffers == 0, f"test leaked {stats.active_buffers} buffer(s)"
