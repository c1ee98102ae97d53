"""trim_periodically: gives idle pooled memory back while no traffic comes."""

from __future__ import annotations

import anyio

from .._arena_of_pools import ArenaOfPools
from .._checks import check_timeout
from .._errors import InvalidArgument

__all__ = ("trim_periodically",)


async def trim_periodically(aop: ArenaOfPools, interval: float | None = None) -> None:
    """Call ``aop.trim()`` every ``interval`` seconds (default ``aop.trim_interval``), forever.

    The pool trims as arenas come back; without traffic nothing comes back, so a server runs
    this for its lifetime (electron's aiohttp ``setup`` does) to release what a burst left
    idle. Cancel the task to stop it. Returns at once when the pool has no interval (or 0:
    it then trims on every return).
    """
    if not isinstance(aop, ArenaOfPools):
        raise TypeError(f"aop must be an ArenaOfPools, not {type(aop).__name__}")
    if interval is None:
        period = aop.trim_interval
    else:
        period = check_timeout(interval, "interval")
        if not period:
            raise InvalidArgument("interval", interval, "a number > 0 or None")
    if not period:
        return
    while not aop.closed:
        await anyio.sleep(period)
        if not aop.closed:
            aop.trim()
