"""Lease: one request's arena and pooled buffers, given back once nothing references them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ..._arena import Arena
from ..._buffer import Buffer
from ._flush import release_after_flush

if TYPE_CHECKING:
    from ..._aop import ArenaOfPools
    from ._response import PooledResponse

__all__ = ("ACTIVE", "Lease", "arena_of", "lease_of")


class _Owner(Protocol):
    """What a lease reports to (the middleware's counters)."""

    aop: ArenaOfPools
    body_limit: int
    _released: int
    _flush_waits: int
    _too_large: int


class Lease:
    """A request's arena, the pooled buffers it took and the pooled response it returned.

    Everything goes back in one step by :meth:`release`, which the middleware calls when the
    handler is done if the response cannot reference pooled memory, and otherwise only once
    the response was written and the transport flushed it (or the connection was lost).
    """

    __slots__ = ("arena", "buffers", "owner", "released", "response", "writer")

    def __init__(self, owner: _Owner, arena: Arena, writer: AbstractStreamWriter) -> None:
        self.owner = owner
        self.arena = arena
        self.writer = writer
        self.buffers: list[Buffer] | None = None
        self.response: PooledResponse | None = None
        self.released = False

    def buffer(self, size_hint: int) -> Buffer:
        """A pooled buffer that goes back with this lease."""
        buf = self.owner.aop.get_buffer(size_hint)
        if self.buffers is None:
            self.buffers = [buf]
        else:
            self.buffers.append(buf)
        return buf

    def release(self) -> None:
        """Give the arena, the buffers and the response's body back now. Idempotent."""
        if self.released:
            return
        self.released = True
        self.owner._released += 1
        if self.response is None and self.buffers is None:
            self.arena.close()
            return
        resp, self.response = self.response, None
        buffers, self.buffers = self.buffers, None
        try:
            if resp is not None:
                resp._release_body()
        finally:
            try:
                if buffers:
                    _close_all(buffers)
            finally:
                self.arena.close()

    def release_after_flush(self) -> None:
        """Release now if the transport holds nothing of ours, else once it has flushed."""
        if self.released:
            return
        if release_after_flush(self.writer, self.release):
            self.count_flush_wait()

    def count_flush_wait(self) -> None:
        """Record that giving this lease back had to wait for the transport."""
        self.owner._flush_waits += 1

    def on_task_done(self, task: asyncio.Task[object]) -> None:
        """Done callback of aiohttp's request task: the response has been written."""
        self.release_after_flush()


def _close_all(buffers: list[Buffer]) -> None:
    error: BaseException | None = None
    for buf in buffers:
        try:
            buf.close()
        except BaseException as exc:  # give the others back before reporting it
            error = error or exc
    if error is not None:
        raise error


#: The requests whose handler runs under electron's middleware now: ``id(request)`` -> the
#: ``(middleware, arena)`` pair the middleware registered, or the :class:`Lease` a helper
#: made of it (most requests never need one). An entry lives exactly while the handler runs;
#: the middleware holds the request meanwhile, so its id cannot be reused.
ACTIVE: dict[int, tuple[_Owner, Arena] | Lease] = {}

_NO_ARENA = (
    "this request has no electron arena (here): install the middleware with "
    "electron.aio.aiohttp.setup(app, aop) (or middleware(aop=...)) and use the helpers from "
    "the handler (or a middleware inside electron's); excluded paths get none"
)


def arena_of(request: web.BaseRequest) -> Arena:
    """The arena of ``request``, whose handler runs now."""
    entry = ACTIVE.get(id(request))
    if entry is None:
        raise LookupError(_NO_ARENA)
    if type(entry) is Lease:
        return entry.arena
    return entry[1]  # type: ignore[index]


def lease_of(request: web.BaseRequest) -> Lease:
    """The lease of ``request``, whose handler runs now (made on first use)."""
    key = id(request)
    entry = ACTIVE.get(key)
    if entry is None:
        raise LookupError(_NO_ARENA)
    if type(entry) is Lease:
        return entry
    owner, arena = entry  # type: ignore[misc]
    lease = Lease(owner, arena, request.writer)
    ACTIVE[key] = lease
    return lease
