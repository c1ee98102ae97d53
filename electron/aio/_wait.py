"""Waiting for an arena without blocking the event loop, on any anyio backend."""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
from anyio.lowlevel import current_token

from .._aop import ArenaOfPools, Waiter
from .._arena import Arena

__all__ = ("acquire_arena",)


def _waker(event: anyio.Event) -> Callable[[], None]:
    """A non-blocking callable that sets ``event`` from any thread.

    On the event loop's own thread it sets the event directly; from another thread it asks
    the loop to do it (``call_soon_threadsafe`` on asyncio, ``run_sync_soon`` on trio).
    """
    loop_thread = threading.get_ident()
    native = current_token().native_token
    schedule: Callable[[Callable[[], object]], object] = getattr(
        native, "call_soon_threadsafe", None
    ) or native.run_sync_soon  # type: ignore[attr-defined]

    def wake() -> None:
        if threading.get_ident() == loop_thread:
            event.set()
            return
        try:
            schedule(event.set)
        except RuntimeError:
            pass  # the loop is gone; its waiting task can no longer run

    return wake


async def acquire_arena(aop: ArenaOfPools, timeout: float | None) -> Arena:
    """Take an arena from ``aop``, waiting fairly (FIFO) for up to ``timeout`` seconds.

    Raises :class:`~electron.PoolExhausted` on timeout. If the waiting task is cancelled,
    an arena handed to it in the meantime goes straight back to the pool (the next waiter
    gets it), so no cancellation pattern loses an arena.
    """
    arena = aop._lend_nowait()
    if arena is not None:
        return arena
    if timeout == 0:
        return aop.get_arena(0)  # raises PoolExhausted with the budget in the message
    event = anyio.Event()
    waiter = Waiter(_waker(event))
    arena = aop._enqueue(waiter)
    if arena is not None:
        return arena
    try:
        if timeout is None:
            await event.wait()
        else:
            with anyio.move_on_after(timeout):
                await event.wait()
    except BaseException:
        aop._abandon(waiter)
        raise
    return aop._finish_wait(waiter, timeout)
