"""Knowing when a transport no longer references memory that was written to it.

uvloop (and CPython >= 3.12's selector transports) keep a reference to the memory passed to
``transport.write()`` until the kernel has taken it, so pooled memory may go back to its pool
only once the transport's write buffer is empty or the connection is lost. Neither event has
a callback of its own; this module gets one without polling: it lowers the transport's
write-buffer limits to zero for the length of the wait, so the transport pauses the protocol
now and resumes it exactly when its buffer is empty (or wakes it when the connection is
lost), and awaits that through aiohttp's ``writer.drain()``.

When the kernel took a write whole at once, nothing references the memory and it goes back
immediately: no wait at all, the common case for bodies that fit the socket's buffer.

uvloop adds one twist: libuv counts a write as flushed (``get_write_buffer_size() == 0``) as
soon as the kernel took the bytes, but uvloop releases its buffer export of the memory only in
the write's completion callback, which libuv may run on the next loop iteration. Reusing the
memory then would be safe (the kernel has its own copy), but the pool would see it still
exported and quarantine it; so after a wait on uvloop the release waits for one more loop
iteration. A write the kernel took whole on libuv's second attempt, right after a partial one,
is the same case without a wait: it happens to large writes, so those wait one iteration too
(``SETTLE_FROM``); for a smaller one it is rare, and the pool's export check quarantines it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp.abc import AbstractStreamWriter

from ._aiohttp_internals import transport_of, writing_paused

__all__ = ("SETTLE_FROM", "release_after_flush", "wait_flushed")

# id(transport) -> [waiters, low, high]: the limits to restore when the last waiter is done.
# An entry lives only while a waiter holds the transport, so its id cannot be reused.
_lowered: dict[int, list[int]] = {}
# Background flush waits, referenced so that they are not garbage-collected mid-wait.
_background: set[asyncio.Task[None]] = set()
_POLL = 0.005  # only for a transport that does not implement write flow control
#: Writes of at least this many bytes wait one loop iteration on uvloop even when the kernel
#: took them (the twist in the module docstring): measured under wrk, 31 of 736 responses of
#: 4 MiB were otherwise given back while uvloop still held them (and quarantined), none of
#: 2,389 of 1 MiB.
SETTLE_FROM = 1 << 20


def _settles_later(transport: object) -> bool:
    """True for uvloop transports (see the module docstring)."""
    return type(transport).__module__.startswith("uvloop")


async def wait_flushed(writer: AbstractStreamWriter, *, large: bool = False) -> bool:
    """Return once the transport behind ``writer`` no longer references what was written.

    That is: its write buffer is empty (and, on uvloop, the write's completion has run) or
    the connection is lost. Returns True if the buffer was not empty. ``large``: what was
    written may have been more than the socket takes at once (see :data:`SETTLE_FROM`).
    Never raises for a lost connection; cancellation propagates.
    """
    transport = transport_of(writer)
    if transport is None:
        return False
    if not transport.get_write_buffer_size():
        # The kernel took every write: nothing holds the memory, except after the twist
        # below, which only large writes meet (libuv's second attempt, right after a partial
        # one, completed at once).
        if large and _settles_later(transport):
            await asyncio.sleep(0)
        return False
    await _wait_empty(writer, transport)
    current = transport_of(writer)
    if current is not None and _settles_later(current):
        await asyncio.sleep(0)
    return True


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
        release()
        return False
    task = loop.create_task(_wait_then(writer, release))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return True
