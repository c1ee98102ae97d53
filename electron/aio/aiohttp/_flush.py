"""Knowing when a transport no longer references memory that was written to it.

uvloop (and CPython >= 3.12's selector transports) keep a reference to the memory passed to
``transport.write()`` until the kernel has taken it, so pooled memory may go back to its pool
only once the transport's write buffer is empty or the connection is lost. Neither event has
a callback of its own; this module gets one without polling: it lowers the transport's
write-buffer limits to zero for the length of the wait, so the transport pauses the protocol
now and resumes it exactly when its buffer is empty (or wakes it when the connection is
lost), and awaits that through aiohttp's ``writer.drain()``.

uvloop adds one twist: libuv counts a write as flushed (``get_write_buffer_size() == 0``) as
soon as the kernel took the bytes, but uvloop releases its buffer export of the memory only in
the write's completion callback, which libuv may run on the next loop iteration; that happens
both after a wait and when libuv's second attempt, right after a partial first one, completes
at once (frequent with slow readers: 13 of the slow-reader test's bodies, and 31 of 736 4 MiB
responses under wrk). Reusing the memory then would be safe (the kernel has its own copy), but
the pool would see it still exported and quarantine it; so on uvloop the release always waits
one more loop iteration. On asyncio a write the kernel took whole holds nothing: the memory
goes back at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp.abc import AbstractStreamWriter

from ._aiohttp_internals import is_uvloop, transport_of, writing_paused

__all__ = ("release_after_flush", "wait_flushed")

# id(transport) -> [waiters, low, high]: the limits to restore when the last waiter is done.
# An entry lives only while a waiter holds the transport, so its id cannot be reused.
_lowered: dict[int, list[int]] = {}
# Background flush waits, referenced so that they are not garbage-collected mid-wait.
_background: set[asyncio.Task[None]] = set()
_POLL = 0.005  # only for a transport that does not implement write flow control


async def wait_flushed(writer: AbstractStreamWriter) -> bool:
    """Return once the transport behind ``writer`` no longer references what was written.

    That is: its write buffer is empty (and, on uvloop, the write's completion has run) or
    the connection is lost. Returns True if the buffer was not empty. Never raises for a lost
    connection; cancellation propagates.
    """
    transport = transport_of(writer)
    if transport is None:
        return False
    waited = False
    if transport.get_write_buffer_size():
        waited = True
        await _wait_empty(writer, transport)
    current = transport_of(writer)
    if current is not None and is_uvloop(current):
        await asyncio.sleep(0)  # the twist in the module docstring
    return waited


async def _wait_empty(writer: AbstractStreamWriter, transport: asyncio.WriteTransport) -> None:
    key = id(transport)
    entry = _lowered.get(key)
    if entry is None:
        low, high = transport.get_write_buffer_limits()
        entry = _lowered[key] = [0, low, high]
    entry[0] += 1
    try:
        while True:
            current = transport_of(writer)
            if current is None or not current.get_write_buffer_size():
                return
            if not writing_paused(writer):
                try:
                    # Pauses the protocol at once (the buffer is not empty) and makes the
                    # transport resume it only when the buffer is empty.
                    current.set_write_buffer_limits(high=0, low=0)
                except RuntimeError:
                    pass  # closed under us: connection_lost comes next
                if not writing_paused(writer):
                    await asyncio.sleep(_POLL)
                    continue
            try:
                await writer.drain()
            except ConnectionError:
                return
    finally:
        entry[0] -= 1
        if not entry[0]:
            del _lowered[key]
            if not transport.is_closing():
                try:
                    transport.set_write_buffer_limits(high=entry[2], low=entry[1])
                except RuntimeError:
                    pass


async def _wait_then(writer: AbstractStreamWriter, release: Callable[[], object]) -> None:
    try:
        await wait_flushed(writer)
    finally:
        release()


def release_after_flush(writer: AbstractStreamWriter, release: Callable[[], object]) -> bool:
    """Call ``release`` now if the transport holds nothing, else once it has flushed.

    Returns True if the release had to be deferred to a background wait. Without a running
    event loop ``release`` runs at once (nothing can flush any more).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        release()
        return False
    transport = transport_of(writer)
    if transport is None:
        release()
        return False
    if not transport.get_write_buffer_size():
        if is_uvloop(transport):
            loop.call_soon(release)  # after libuv's pending write callbacks
        else:
            release()
        return False
    task = loop.create_task(_wait_then(writer, release))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return True
