"""Lease: one request's arena and pooled buffers, given back once nothing references them.

Most requests never touch electron memory, so the middleware lends nothing up front: it
registers the request in :data:`ACTIVE` (by :func:`key_of`) as *lazy*; installed with
``current_arena=True`` it also sets the context variable of
:func:`electron.aio.current_arena` to the request itself (a lazy marker). The first helper
call (or ``current_arena()`` then) lends the arena and upgrades the entry.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ..._arena import Arena
from ..._buffer import Buffer
from ..._context import current_arena_var, set_lazy_resolver
from ..._errors import ArenaClosed
from .._wait import acquire_arena
from ._flush import release_after_flush

if TYPE_CHECKING:
    from ..._arena_of_pools import ArenaOfPools
    from ._response import PooledResponse

__all__ = (
    "ACTIVE",
    "Lease",
    "arena_of",
    "claimed_pop",
    "key_of",
    "lease_of",
    "lease_of_async",
    "route_of",
)


class _Owner(Protocol):
    """What a lease reports to (the middleware's counters)."""

    aop: ArenaOfPools
    body_limit: int
    acquire_timeout: float | None
    _lent: int
    _released: int
    _flush_waits: int
    _too_large: int

    def _record(self, route: str, nbytes: int) -> None: ...


class Lease:
    """A request's arena, the pooled buffers it took and the pooled response it returned.

    Everything goes back in one step by :meth:`release`, which the middleware calls when the
    handler is done if the response cannot reference pooled memory, and otherwise only once
    the response was written and the transport flushed it (or the connection was lost).
    """

    __slots__ = (
        "arena",
        "buffer_bytes",
        "buffers",
        "owner",
        "released",
        "response",
        "route",
        "writer",
    )

    def __init__(
        self, owner: _Owner, arena: Arena, writer: AbstractStreamWriter, route: str
    ) -> None:
        self.owner = owner
        self.arena = arena
        self.writer = writer
        self.route = route
        self.buffers: list[Buffer] | None = None
        self.buffer_bytes = 0  # capacity of the buffers taken, as lent
        self.response: PooledResponse | None = None
        self.released = False

    def buffer(self, size_hint: int) -> Buffer:
        """A pooled buffer that goes back with this lease."""
        buf = self.owner.aop.get_buffer(size_hint)
        if self.buffers is None:
            self.buffers = [buf]
        else:
            self.buffers.append(buf)
        self.buffer_bytes += buf.capacity
        return buf

    def release(self) -> None:
        """Give the arena, the buffers and the response's body back now. Idempotent."""
        if self.released:
            return
        self.released = True
        owner = self.owner
        owner._released += 1
        arena = self.arena
        used = self.buffer_bytes if arena._mv is None else self.buffer_bytes + arena.used
        try:
            if self.response is None and self.buffers is None:
                arena.close()
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
                    arena.close()
        finally:
            owner._record(self.route, used)

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


def route_of(request: web.BaseRequest) -> str:
    """The canonical path of the route ``request`` matched (bounded cardinality)."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "(unmatched)"  # 404 / 405: aiohttp's system route
    return str(resource.canonical)


#: The requests whose handler runs under electron's middleware now: :func:`key_of` the
#: request -> the middleware itself (lazy: nothing lent yet), the ``(middleware, arena)`` pair
#: of a lent arena, or the :class:`Lease` a helper made of it (most requests never need one).
#: An entry lives exactly while the handler runs.
ACTIVE: dict[object, Any] = {}


def key_of(request: web.BaseRequest) -> object:
    """The key of ``request``'s entry in :data:`ACTIVE`: its response writer.

    aiohttp makes one writer per HTTP exchange and hands it to every ``request.clone()``, so
    a clone (a middleware may pass one on) finds the same arena. The writer hashes by
    identity, and reading it is cheaper than ``id(request)``, which allocates an int.
    Requests built by hand (``make_mocked_request``) that run concurrently need a writer
    each: two sharing one count as one exchange.
    """
    return request._payload_writer  # request.writer without the property's call


# Serialises upgrades of an entry (lazy -> lent -> Lease). An upgrade *claims* the entry by
# popping it, so that the middleware, popping it at the end of the request, either gets it
# before the claim (the upgrade then finds nothing and fails) or finds it missing and takes
# this lock to wait for the upgrade to put it back. A handler's threads (``to_thread``) may
# upgrade concurrently with the event loop thread. Reentrant: a garbage-collection finaliser
# run inside the locked section may call back in.
_UPGRADE = threading.RLock()

_NO_ARENA = (
    "this request has no electron arena (here): install the middleware with "
    "electron.aio.aiohttp.setup(app, aop) (or middleware(aop=...)) and use the helpers from "
    "the handler (or a middleware inside electron's); excluded paths get none"
)


def _ended() -> ArenaClosed:
    return ArenaClosed("its request has ended: the request's memory went back with it")


def _entry(key: object) -> Any:
    entry = ACTIVE.get(key)
    if entry is None:
        with _UPGRADE:  # an upgrade in another thread may hold it for a moment
            entry = ACTIVE.get(key)
        if entry is None:
            raise LookupError(_NO_ARENA)
    return entry


def claimed_pop(key: object) -> Any:
    """The middleware's end of a request: take the entry, waiting out an upgrade in flight.

    None if there is none: only when a second electron middleware checked the entry while a
    thread's upgrade held it, and so served the request itself and took the entry.
    """
    with _UPGRADE:
        return ACTIVE.pop(key, None)


def _upgrade(key: object, request: web.BaseRequest, lease: bool) -> Any:
    """The entry of ``request`` with its arena lent (at once, or PoolExhausted), made a
    :class:`Lease` if ``lease``."""
    with _UPGRADE:
        entry = ACTIVE.pop(key, None)
        if entry is None:
            raise _ended()
        try:
            kind = type(entry)
            if kind is Lease or (kind is tuple and not lease):
                return entry
            if kind is tuple:
                owner, arena = entry
            else:
                owner = entry
                aop = owner.aop
                arena = aop._lend_nowait() or aop.get_arena(0)
                owner._lent += 1
                if not lease:
                    entry = (owner, arena)
                    return entry
            entry = Lease(owner, arena, request.writer, route_of(request))
            return entry
        finally:
            ACTIVE[key] = entry


def arena_of(request: web.BaseRequest) -> Arena:
    """The arena of ``request``, whose handler runs now (lent on first use)."""
    key = key_of(request)
    entry = _entry(key)
    kind = type(entry)
    if kind is tuple:
        return entry[1]  # type: ignore[no-any-return]
    if kind is not Lease:
        entry = _upgrade(key, request, False)
        if type(entry) is tuple:
            return entry[1]  # type: ignore[no-any-return]
    return entry.arena  # type: ignore[no-any-return]


def lease_of(request: web.BaseRequest) -> Lease:
    """The lease of ``request``, whose handler runs now (made, and lent, on first use)."""
    key = key_of(request)
    entry = _entry(key)
    if type(entry) is Lease:
        return entry
    return _upgrade(key, request, True)  # type: ignore[no-any-return]


async def lease_of_async(request: web.BaseRequest) -> Lease:
    """Like :func:`lease_of`, but a request without an arena yet waits for the budget
    (fairly, up to the middleware's ``acquire_timeout``) rather than failing at once."""
    key = key_of(request)
    entry = _entry(key)
    kind = type(entry)
    if kind is Lease:
        return entry  # type: ignore[no-any-return]
    if kind is tuple:
        return _upgrade(key, request, True)  # type: ignore[no-any-return]
    owner: _Owner = entry
    aop = owner.aop
    arena = aop._lend_nowait() or await acquire_arena(aop, owner.acquire_timeout)
    with _UPGRADE:
        entry = ACTIVE.pop(key, None)
        if entry is owner:
            owner._lent += 1
            entry = Lease(owner, arena, request.writer, route_of(request))
            ACTIVE[key] = entry
            return entry
        if entry is not None:
            ACTIVE[key] = entry
    # The request ended meanwhile, or another of its tasks was lent an arena first.
    arena.close()
    if entry is None:
        raise _ended()
    return lease_of(request)


def _resolve_lazy(marker: object) -> Arena:
    """``current_arena()`` met the middleware's lazy marker (a request): lend its arena."""
    if not isinstance(marker, web.BaseRequest):
        raise LookupError(f"no current arena: the context holds {marker!r}")  # noqa: TRY004
    key = key_of(marker)
    entry = ACTIVE.get(key)
    if entry is None:
        with _UPGRADE:
            entry = ACTIVE.get(key)
        if entry is None:
            raise _ended()  # a task spawned by the request outlived it
    arena = arena_of(marker)
    current_arena_var.set(arena)  # later lookups in this context are direct
    return arena


set_lazy_resolver(_resolve_lazy)
