"""The middleware: one arena per request, given back once nothing references it."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable
from types import CodeType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

from ..._arena_of_pools import ArenaOfPools
from ..._checks import check_size, check_timeout
from ..._context import current_arena_var
from ..._errors import PoolClosed, PoolExhausted
from .. import acquire_arena
from ._keys import AOP_KEY, MIDDLEWARE_KEY
from ._lease import ACTIVE, Lease, claimed_pop, route_of
from ._response import PooledResponse
from ._stats import OTHER_ROUTES, MiddlewareStatistics, RouteUsage

__all__ = ("Middleware", "middleware", "setup")

# aiohttp runs each request's middlewares, handler *and* response write in one task made
# from this coroutine; its end is the moment the response has been handed to the transport.
_REQUEST_TASK_CODE: CodeType | None = getattr(
    getattr(RequestHandler, "_handle_request", None), "__code__", None
)
_set_arena = current_arena_var.set
_reset_arena = current_arena_var.reset
_Response = web.Response
_log = logging.getLogger("electron.aio.aiohttp")
_unregister = ACTIVE.pop


def _in_request_task(task: asyncio.Task[object]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code is _REQUEST_TASK_CODE


class Middleware:
    """electron's aiohttp middleware (new style): request-scoped memory for every request.

    Inside the handler :func:`request_arena` is the request's arena, lent on first use: a
    request that never touches electron memory costs next to nothing. With
    ``current_arena=True`` :func:`electron.aio.current_arena` gives the same arena in the
    handler and in the tasks it starts (for code that is not handed the request); it is
    off by default, as setting and resetting the context variable costs about as much as
    the rest of the middleware's per-request work. The arena goes back, with every buffer taken
    through :func:`request_buffer` or :func:`read_body`, as soon as nothing can reference
    it: when the handler returns a response whose body is ``bytes``, at once; otherwise (a
    :class:`PooledResponse`, a streamed or memoryview body) only after aiohttp has written
    the response and the transport has flushed it, or the connection was lost. Errors and
    cancellation give it back too.

    While the pool can lend at once, a request starts without an arena; when the budget is
    exhausted (or others queue for it) the request instead waits for one before its handler
    runs, for up to ``acquire_timeout`` seconds, and is then answered ``503`` with
    ``Retry-After: retry_after``. A handler whose first use finds the budget exhausted
    (others took it meanwhile) gets :class:`~electron.PoolExhausted` at once from the sync
    helpers, which the middleware answers ``503`` the same way; :func:`read_body` waits.

    Requests for a path in ``exclude`` get no arena; nor does one that an outer electron
    middleware (a parent app's) serves. Keep it outermost (:func:`setup` does): it sees the
    response's end through aiohttp's request task. Run inside another task (a middleware
    wrapping the handler in ``asyncio.shield``, or ``asyncio.wait_for`` before Python 3.12),
    it stays safe, but memory behind a non-pooled response then goes back only when aiohttp
    drops the request. Per route (its canonical path) it records the bytes each request
    that used electron memory took (arena bytes used plus pooled buffer capacity): see
    :meth:`route_usage` and :meth:`add_usage_listener`.
    """

    __middleware_version__ = 1  # aiohttp: a new-style middleware

    def __init__(
        self,
        *,
        aop: ArenaOfPools,
        acquire_timeout: float | None = 1.0,
        retry_after: int = 1,
        body_limit: int = 1 << 20,
        exclude: Iterable[str] = (),
        max_routes: int = 256,
        current_arena: bool = False,
    ) -> None:
        if not isinstance(aop, ArenaOfPools):
            raise TypeError(f"aop must be an ArenaOfPools, not {type(aop).__name__}")
        self.aop = aop
        self.acquire_timeout = check_timeout(acquire_timeout)
        self.retry_after = check_size(retry_after, "retry_after")
        self.body_limit = check_size(body_limit, "body_limit")
        self.exclude = frozenset(exclude)
        self.max_routes = check_size(max_routes, "max_routes")
        self._bounded = aop.max_arenas is not None or aop.max_bytes is not None
        self.current_arena = bool(current_arena)
        self._lent = 0  # requests lent an arena
        self._released = 0
        self._rejected = 0
        self._deferred = 0
        self._flush_waits = 0
        self._errors = 0
        self._cancelled = 0
        self._too_large = 0
        # route -> [requests, bytes, largest]: requests that used electron memory
        self._routes: dict[str, list[int]] = {}
        self._listeners: tuple[Callable[[str, int], object], ...] = ()

    def _unavailable(self) -> web.HTTPServiceUnavailable:
        self._rejected += 1
        return web.HTTPServiceUnavailable(
            headers={"Retry-After": str(self.retry_after)},
            text="503: the server's memory budget is exhausted; retry later",
        )

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request._payload_writer  # key_of(request), inline: this runs for every request
        if key in ACTIVE or (self.exclude and request.path in self.exclude):
            # An outer electron middleware (a parent app's) serves it, or it is excluded.
            return await handler(request)
        ACTIVE[key] = self
        if self._bounded:
            # A cheap, racy look without the pool's lock: could the pool lend at once? If so
            # lend nothing now (first use lends, or fails with PoolExhausted if others took
            # the budget meanwhile); otherwise queue for the budget before the handler runs.
            aop = self.aop
            if not aop.can_lend_now():
                return await self._serve_lent(key, request, handler)
        # The lazy marker, for current_arena() in the handler and its child tasks; opt-in,
        # as it costs a context variable's set and reset (about half the middleware's cost).
        token = _set_arena(request) if self.current_arena else None  # type: ignore[arg-type]
        try:
            resp = await handler(request)
        except BaseException as exc:
            if token is not None:
                _reset_arena(token)
            entry = _unregister(key, None) or claimed_pop(key)
            if entry is self or entry is None:
                self._failed_unlent(request, exc)
            else:
                self._failed(self._lease(entry, request), request, exc)
            raise
        if token is not None:
            _reset_arena(token)
        entry = _unregister(key, None)
        if entry is self:
            return resp
        entry = entry or claimed_pop(key)
        return resp if entry is None or entry is self else self._finish(entry, request, resp)

    async def _serve_lent(
        self, key: object, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """The budget is exhausted or others queue for it: wait for an arena first."""
        aop = self.aop
        try:
            # acquire_arena's own first step, inline: no coroutine unless the budget is spent.
            arena = aop._lend_nowait() or await acquire_arena(aop, self.acquire_timeout)
        except BaseException as exc:
            del ACTIVE[key]
            if isinstance(exc, (PoolExhausted, PoolClosed)):
                raise self._unavailable() from None
            raise
        self._lent += 1
        ACTIVE[key] = (self, arena)  # a Lease is made of it only if a helper needs one
        token = _set_arena(arena) if self.current_arena else None
        try:
            resp = await handler(request)
        except BaseException as exc:
            if token is not None:
                _reset_arena(token)
            entry = _unregister(key, None) or claimed_pop(key)
            self._failed(self._lease(entry, request), request, exc)
            raise
        if token is not None:
            _reset_arena(token)
        return self._finish(_unregister(key, None) or claimed_pop(key), request, resp)

    def _finish(
        self, entry: Any, request: web.Request, resp: web.StreamResponse
    ) -> web.StreamResponse:
        """The handler returned ``resp`` and had memory lent: give it back now or later."""
        if isinstance(resp, _Response) and not request.writer.output_size:
            body = resp.body
            if body is None or body.__class__ is bytes:
                # Nothing written yet and a bytes body: writing the response cannot touch
                # pooled memory, so everything goes back now.
                if type(entry) is Lease:
                    entry.release()
                else:
                    arena = entry[1]
                    self._released += 1
                    used = 0 if arena._mv is None else arena.used
                    arena.close()
                    self._record(route_of(request), used)
                return resp
        lease = self._lease(entry, request)
        if isinstance(resp, PooledResponse) and not resp.released:
            resp._lease = lease
            lease.response = resp
        self._defer(lease, request)
        return resp

    def _lease(self, entry: Any, request: web.Request) -> Lease:
        if type(entry) is Lease:
            return entry
        return Lease(self, entry[1], request.writer, route_of(request))

    def _failed_unlent(self, request: web.Request, exc: BaseException) -> None:
        """The handler of a request that had nothing lent raised ``exc``: count it, and
        answer 503 if electron refused it memory before anything was written."""
        if isinstance(exc, asyncio.CancelledError):
            self._cancelled += 1
        elif isinstance(exc, (PoolExhausted, PoolClosed)) and not request.writer.output_size:
            raise self._unavailable() from exc
        elif not isinstance(exc, web.HTTPException):
            self._errors += 1

    def _failed(self, lease: Lease, request: web.Request, exc: BaseException) -> None:
        """The handler raised ``exc``: count it, give the lease back (now if nothing of
        ours can be in the transport), and turn a budget error into a 503."""
        untouched = not request.writer.output_size
        if isinstance(exc, asyncio.CancelledError):
            self._cancelled += 1
        elif isinstance(exc, (PoolExhausted, PoolClosed)) and untouched:
            lease.release()
            raise self._unavailable() from exc
        elif not isinstance(exc, web.HTTPException):
            self._errors += 1
        if untouched:
            lease.release()
        else:
            self._defer(lease, request)

    def _defer(self, lease: Lease, request: web.Request) -> None:
        """Give ``lease`` back once aiohttp has written the response and it was flushed."""
        self._deferred += 1
        task = asyncio.current_task()
        if task is not None and _in_request_task(task):
            task.add_done_callback(lease.on_task_done)
        else:
            # Run inside a task of someone else's (a middleware wrapping the handler in a
            # new task): the response's end is not observable, so the lease goes back when
            # aiohttp drops the request (a PooledResponse gives it back earlier itself).
            weakref.finalize(request, lease.release_after_flush)

    def _record(self, route: str, nbytes: int) -> None:
        """A request of ``route`` that used electron memory gave back ``nbytes``."""
        routes = self._routes
        usage = routes.get(route)
        if usage is None:
            if len(routes) >= self.max_routes:
                route = OTHER_ROUTES
                usage = routes.get(route)
            if usage is None:
                usage = routes[route] = [0, 0, 0]
        usage[0] += 1
        usage[1] += nbytes
        if nbytes > usage[2]:
            usage[2] = nbytes
        for listener in self._listeners:
            try:
                listener(route, nbytes)
            except Exception:  # a metrics hook must never break a release
                _log.exception("electron: a usage listener failed")

    def add_usage_listener(self, listener: Callable[[str, int], object]) -> None:
        """Call ``listener(route, nbytes)`` whenever a request that used electron memory
        gave it back (e.g. to observe a histogram). It runs on the event loop, inside the
        release: keep it quick and non-blocking; its exceptions are logged, not raised."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        self._listeners = (*self._listeners, listener)

    def route_usage(self, top: int | None = None) -> list[RouteUsage]:
        """Memory used per route, largest total first (at most ``top`` routes).

        Counts the requests that used electron memory (those that did not cost nothing and
        are not counted); routes beyond ``max_routes`` are merged into ``"(other)"``.
        """
        rows = [RouteUsage(route, *usage) for route, usage in list(self._routes.items())]
        rows.sort(key=lambda r: (-r.bytes_total, r.route))
        return rows if top is None else rows[: check_size(top, "top")]

    def statistics(self) -> MiddlewareStatistics:
        """A snapshot of this middleware's counters."""
        return MiddlewareStatistics(
            requests=self._lent,
            in_flight=self._lent - self._released,
            rejected=self._rejected,
            deferred=self._deferred,
            flush_waits=self._flush_waits,
            errors=self._errors,
            cancelled=self._cancelled,
            too_large=self._too_large,
        )

    def __repr__(self) -> str:
        return f"<electron Middleware aop={self.aop!r} in_flight={self._lent - self._released}>"


def middleware(
    *,
    aop: ArenaOfPools,
    acquire_timeout: float | None = 1.0,
    retry_after: int = 1,
    body_limit: int = 1 << 20,
    exclude: Iterable[str] = (),
    max_routes: int = 256,
    current_arena: bool = False,
) -> Middleware:
    """electron's middleware for an app's ``middlewares`` list (put it first).

    See :class:`Middleware` for what it does and for the options; :func:`setup` also
    stores ``aop`` on the app and closes it at cleanup.
    """
    return Middleware(
        aop=aop,
        acquire_timeout=acquire_timeout,
        retry_after=retry_after,
        body_limit=body_limit,
        exclude=exclude,
        max_routes=max_routes,
        current_arena=current_arena,
    )


async def _close_aop(app: web.Application) -> None:
    app[AOP_KEY].close()


def setup(
    app: web.Application,
    aop: ArenaOfPools,
    *,
    acquire_timeout: float | None = 1.0,
    retry_after: int = 1,
    body_limit: int = 1 << 20,
    exclude: Iterable[str] = (),
    max_routes: int = 256,
    current_arena: bool = False,
) -> Middleware:
    """Install electron's middleware as ``app``'s outermost one and return it.

    ``aop`` is stored under :data:`AOP_KEY` (the middleware under :data:`MIDDLEWARE_KEY`)
    and closed when the app is cleaned up. Options as for :class:`Middleware`.
    """
    mw = middleware(
        aop=aop,
        acquire_timeout=acquire_timeout,
        retry_after=retry_after,
        body_limit=body_limit,
        exclude=exclude,
        max_routes=max_routes,
        current_arena=current_arena,
    )
    app.middlewares.insert(0, mw)
    app[AOP_KEY] = aop
    app[MIDDLEWARE_KEY] = mw
    app.on_cleanup.append(_close_aop)
    return mw
