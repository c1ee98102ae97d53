"""Waiting for an arena without blocking the event loop, on any anyio backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

import anyio
from anyio.lowlevel import current_token

from .._arena import Arena
from .._arena_of_pools import ArenaOfPools, Waiter
from .._checks import check_timeout

# ASYNC109 is silenced on purpose below: ``timeout`` bounds the wait for the *budget* and
# ends in PoolExhausted (like the sync get_arena), which a cancel scope cannot express.

# Seconds between two looks at the pool's leak queues while waiting: the first after _POLL,
# then twice as long each time up to _POLL_MAX, so that a thousand tasks queued on an
# overloaded pool wake about a thousand times a second, not twenty thousand.
_POLL: Final = 0.05
_POLL_MAX: Final = 1.0

__all__ = ("acquire_arena", "wait_for_arena")


def _waker(event: anyio.Event) -> Callable[[], None]:
    """A non-blocking callable that sets ``event`` from any thread.

    On the event loop's own thread it sets the event directly; from another thread it asks
    the loop to do it (``call_soon_threadsafe`` on asyncio, ``run_sync_soon`` on trio).
    """
    loop_thread = threading.get_ident()
    native: Any = current_token().native_token  # an asyncio loop or a trio.lowlevel.TrioToken
    schedule: Callable[[Callable[[], object]], object] = (
        native.call_soon_threadsafe
        if hasattr(native, "call_soon_threadsafe")
        else native.run_sync_soon
    )

    def wake() -> None:
        if threading.get_ident() == loop_thread:
            event.set()
            return
        try:
            schedule(event.set)
        except RuntimeError:
            pass  # the loop is gone; its waiting task can no longer run

    return wake


async def acquire_arena(aop: ArenaOfPools, timeout: float | None) -> Arena:  # noqa: ASYNC109
    """Take an arena from ``aop``, waiting fairly (FIFO) for up to ``timeout`` seconds.

    ``timeout=None`` waits forever, ``0`` not at all. Raises :class:`~electron.PoolExhausted`
    on timeout and :class:`~electron.PoolClosed` if the pool is (or gets) closed. If the
    waiting task is cancelled, an arena handed to it in the meantime goes straight back to
    the pool (the next waiter gets it), so no cancellation pattern loses an arena. The
    caller owns the arena and gives it back with ``aop.return_arena``.
    """
    if timeout is not None:
        timeout = check_timeout(timeout)  # a typed error for NaN, negative, str ...
    arena = aop._lend_nowait()
    if arena is not None:
        return arena
    return await wait_for_arena(aop, timeout)


async def wait_for_arena(aop: ArenaOfPools, timeout: float | None) -> Arena:  # noqa: ASYNC109
    """The slow half of :func:`acquire_arena`: queue up and wait (no first try)."""
    if timeout is not None:
        timeout = check_timeout(timeout)
    if timeout == 0:
        return aop.get_arena(0)  # lends if the queue emptied meanwhile, else PoolExhausted
    event = anyio.Event()
    waiter = Waiter(_waker(event))
    arena = aop._enqueue(waiter, timeout)
    if arena is not None:
        return arena
    try:
        # Wake now and then to settle leaks and returns that finalizers queued (they cannot
        # take the pool's lock): they may hold the arena this task waits for.
        deadline = None if timeout is None else anyio.current_time() + timeout
        poll = _POLL
        while not event.is_set():
            step = poll if deadline is None else min(poll, deadline - anyio.current_time())
            if poll < _POLL_MAX:
                poll = min(poll * 2, _POLL_MAX)
            with anyio.move_on_after(max(0.0, step)):
                await event.wait()
            if event.is_set():
                break
            if aop._leaks or aop._buffers._leaks:
                aop._drain_leaks()
            if deadline is not None and anyio.current_time() >= deadline:
                break
    except BaseException:
        aop._abandon(waiter)
        raise
    return aop._finish_wait(waiter, timeout)
