"""trim_periodically: idle memory comes back while no traffic comes."""

from __future__ import annotations

import anyio
import pytest

from electron import ArenaOfPools, InvalidArgument
from electron.aio import trim_periodically
from tests.support import eventually

pytestmark = pytest.mark.anyio


async def test_idle_memory_comes_back_without_traffic() -> None:
    with ArenaOfPools(arena_size=4096, trim_interval=0.05) as aop:
        bufs = [aop.get_buffer(1 << 20) for _ in range(4)]
        arenas = [aop.get_arena() for _ in range(4)]
        for buf in bufs:
            aop.return_buffer(buf)
        for arena in arenas:
            aop.return_arena(arena)
        assert aop.statistics().bytes_reserved >= 4 << 20
        async with anyio.create_task_group() as tg:
            tg.start_soon(trim_periodically, aop)
            await eventually(lambda: aop.statistics().bytes_reserved == 0, "idle memory trimmed")
            tg.cancel_scope.cancel()


async def test_it_ends_when_the_pool_closes_and_checks_its_arguments() -> None:
    aop = ArenaOfPools(trim_interval=0.01)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(trim_periodically, aop)
            await anyio.sleep(0.03)
            aop.close()
    with pytest.raises(InvalidArgument):
        await trim_periodically(aop, 0)
    with pytest.raises(TypeError):
        await trim_periodically(5)  # type: ignore[arg-type]
    await trim_periodically(ArenaOfPools(trim_interval=None))  # no interval: returns
