"""Lease: the electron memory one request uses, and how a handler's helpers find it.

Most requests never touch electron memory, so the middleware lends nothing up front: it
only registers the request in :data:`ACTIVE` while its handler runs. The first helper call
(or ``current_arena()``, with ``current_arena=True``) makes the request's one
:class:`Lease`, kept in :data:`LEASES` until the handler is done. Without a budget it
takes only what the handler asks for (the arena on its first use); under one (``max_arenas``
or ``max_bytes``) the first use also lends the request's arena, the unit that admission
counts and waits for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ..._arena import Arena
from ..._context import current_arena_var, register_lazy_marker
from .._request_memory import LENDING, UNMATCHED, RequestLease, ended
from .._wait import acquire_arena
from ._aiohttp_internals import key_of
from ._flush import release_after_flush

if TYPE_CHECKING:
    from ._middleware import Middleware
    from ._response import PooledResponse

__all__ = (
    "ACTIVE",
    "LEASES",
    "Lease",
    "lease_of",
    "lease_of_async",
    "owner_of",
    "route_name",
    "route_of",
)



class Lease(RequestLease):
    """One aiohttp request's electron memory (:class:`RequestLease`), with its response
    writer and the pooled response it returned.

    Everything goes back in one step by :meth:`release`: when the handler is done if the
    response cannot reference pooled memory, otherwise only once the response was written
    and the transport flushed it (or the connection was lost).
    """

    __slots__ = ("response", "route", "writer")

    def __init__(
        self, owner: Middleware, writer: AbstractStreamWriter, arena: Arena | None = None
    ) -> None:
        RequestLease.__init__(self, owner, arena)
        self.writer = writer
        self.response: PooledResponse | None = None
        # Set by whoever takes the lease out of LEASES (the middleware, once the handler is
        # done): by then the route is known, for setup's routes without a lookup.
        self.route = UNMATCHED

    def _route(self) -> str:
        return self.route

    def _release_first(self) -> BaseException | None:
        response, self.response = self.response, None
        if response is not None:
            try:
                response._release_body()
            except BaseException as exc:  # give the rest back before reporting it
                return exc
        return None

    def release_after_flush(self, *_: object) -> None:
        """Release now if the transport holds nothing of ours, else once it has flushed.

        Also the done callback of aiohttp's request task (the response has been written).
        """
        if not self.released and release_after_flush(self.writer, self.release):
            self.owner._flush_waits += 1


def route_of(request: web.BaseRequest) -> str:
    """The canonical path of the route ``request`` matched (bounded cardinality)."""
    return route_name(getattr(getattr(request, "match_info", None), "route", None))


def route_name(route: object) -> str:
    """The canonical path of an aiohttp route (``"(unmatched)"`` for aiohttp's system
    routes, 404 and 405, which have no resource)."""
    resource = getattr(route, "resource", None)
    if resource is None:
        return UNMATCHED
    return str(resource.canonical)


#: The requests whose handler runs now under electron's middleware: the request's writer
#: (``key_of``; requests built by hand that run concurrently need a writer each) -> the
#: middleware serving it. An entry lives exactly while the handler runs.
ACTIVE: dict[object, Middleware] = {}
#: Those of them that use electron memory: the request's writer -> its :class:`Lease`.
#: The middleware takes the lease out when the handler is done, after its ``ACTIVE`` entry.
LEASES: dict[object, Lease] = {}

_NO_ARENA = (
    "this request has no electron arena (here): set the app up with "
    "electron.aio.aiohttp.setup(app, aop) and use the helpers from a route's handler; for "
    "your own middlewares to use them too, setup(app, aop, as_middleware=True) (or "
    "middleware(aop=...) first in the app's middlewares); excluded paths get none"
)


def _lend(key: object, request: web.BaseRequest, arena: Arena | None = None) -> Lease:
    """Make the lease of ``request`` unless it has one already: with ``arena`` if given,
    else, under a budget, with one lent now (or PoolExhausted), else with none yet. Raises
    ArenaClosed once its handler is done."""
    with LENDING:
        lease = LEASES.get(key)
        owner = ACTIVE.get(key)
        if lease is None and owner is not None:
            if arena is None and owner._bounded:
                # Under a budget the request's arena is what admission counts and waits for.
                arena = owner.aop.get_arena(0)  # PoolExhausted beyond the budget
            lease = LEASES[key] = Lease(owner, key, arena)  # type: ignore[arg-type]
            arena = None
    if arena is not None:
        arena.close()  # another of the request's tasks made the lease first, or it ended
    if lease is None:
        raise ended()
    if key not in ACTIVE:
        # The handler finished (in another thread) while this one lent. Whoever takes the
        # lease out of LEASES, this thread or the middleware, gives it back.
        if LEASES.pop(key, None) is not None:
            lease.route = route_of(request)
            lease.release()
        raise ended()
    return lease


def lease_of(request: web.BaseRequest) -> Lease:
    """The lease of ``request``, whose handler runs now (lent on first use).

    Beyond the budget the first use raises :class:`~electron.PoolExhausted`; raises
    :class:`LookupError` if no electron middleware runs the request's handler.
    """
    key = key_of(request)
    lease = LEASES.get(key)
    if lease is not None:
        return lease
    if key not in ACTIVE:
        raise LookupError(_NO_ARENA)
    return _lend(key, request)


def owner_of(request: web.BaseRequest) -> Middleware:
    """The middleware whose handler runs ``request`` now; LookupError if there is none."""
    owner = ACTIVE.get(key_of(request))
    if owner is None:
        raise LookupError(_NO_ARENA)
    return owner


async def lease_of_async(request: web.BaseRequest) -> Lease:
    """Like :func:`lease_of`, but a first use while the budget is exhausted (or others queue
    for it) waits for an arena (fairly, up to the middleware's ``acquire_timeout``) rather
    than failing at once."""
    key = key_of(request)
    lease = LEASES.get(key)
    if lease is not None:
        return lease
    owner = ACTIVE.get(key)
    if owner is None:
        raise LookupError(_NO_ARENA)
    if not owner._bounded:
        return _lend(key, request)
    return _lend(key, request, await acquire_arena(owner.aop, owner.acquire_timeout))


def _resolve_lazy(marker: web.BaseRequest) -> Arena:
    """``current_arena()`` met the middleware's lazy marker (a request): lend its arena."""
    key = key_of(marker)
    arena = (LEASES.get(key) or _lend(key, marker)).arena
    current_arena_var.set(arena)  # later lookups in this context are direct
    return arena


register_lazy_marker(web.BaseRequest, _resolve_lazy)
