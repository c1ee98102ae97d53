"""The middleware: one arena per request, given back once nothing references it."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from types import CodeType

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

from ..._aop import ArenaOfPools
from ..._arena import Arena
from ..._context import current_arena_var
from ..._errors import PoolClosed, PoolExhausted
from ..._memory import check_size, check_timeout
from .. import acquire_arena
from ._keys import AOP_KEY, MIDDLEWARE_KEY
from ._lease import ACTIVE, Lease
from ._response import PooledResponse
from ._stats import MiddlewareStatistics

__all__ = ("Middleware", "middleware", "setup")

# aiohttp runs each request's middlewares, handler *and* response write in one task made
# from this coroutine; its end is the moment the response has been handed to the transport.
_REQUEST_TASK_CODE: CodeType | None = getattr(
    getattr(RequestHandler, "_handle_request", None), "__code__", None
)
_set_arena = current_arena_var.set
_reset_arena = current_arena_var.reset
_Response = web.Response


def _in_request_task(task: asyncio.Task[object]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code is _REQUEST_TASK_CODE


class Middleware:
    """electron's aiohttp middleware (new style): lends every request an arena.

    The arena is :func:`electron.aio.current_arena` inside the handler and
    :func:`request_arena` anywhere. It goes back, with every buffer taken through
    :func:`request_buffer` or :func:`read_body`, as soon as nothing can reference it: when
    the handler returns a response whose body is ``bytes``, at once; otherwise (a
    :class:`PooledResponse`, a streamed or memoryview body) only after aiohttp has written
    the response and the transport has flushed it, or the connection was lost. Errors and
    cancellation give it back too. When the budget stays exhausted for ``acquire_timeout``
    seconds the request is answered ``503`` with ``Retry-After: retry_after``. Requests for
    a path in ``exclude`` get no arena; nor does one that an outer electron middleware (a
    parent app's) already lent one. Keep it outermost (:func:`setup` does): it sees the
    response's end through aiohttp's request task. Run inside another task (a middleware
    wrapping the handler in ``asyncio.shield``, or ``asyncio.wait_for`` before Python 3.12),
    it stays safe, but memory behind a non-pooled response then goes back only when aiohttp
    drops the request.
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
    ) -> None:
        if not isinstance(aop, ArenaOfPools):
            raise TypeError(f"aop must be an ArenaOfPools, not {type(aop).__name__}")
        self.aop = aop
        self.acquire_timeout = check_timeout(acquire_timeout)
        self.retry_after = check_size(retry_after, "retry_after")
        self.body_limit = check_size(body_limit, "body_limit")
        self.exclude = frozenset(exclude)
        self._requests = 0
        self._released = 0
        self._rejected = 0
        self._deferred = 0
        self._flush_waits = 0
        self._errors = 0
        self._cancelled = 0
        self._too_large = 0

    def _unavailable(self) -> web.HTTPServiceUnavailable:
        self._rejected += 1
        return web.HTTPServiceUnavailable(
            headers={"Retry-After": str(self.retry_after)},
            text="503: the server's memory budget is exhausted; retry later",
        )

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = id(request)
        if key in ACTIVE or (self.exclude and request.path in self.exclude):
            # Excluded, or an outer electron middleware (a parent app's) lent it an arena.
            return await handler(request)
        aop = self.aop
        try:
            # acquire_arena's own first step, inline: no coroutine unless the budget is spent.
            arena = aop._lend_nowait() or await acquire_arena(aop, self.acquire_timeout)
        except (PoolExhausted, PoolClosed):
            raise self._unavailable() from None
        self._requests += 1
        ACTIVE[key] = (self, arena)  # a Lease is made of it only if a helper needs one
        token = _set_arena(arena)
        try:
            resp = await handler(request)
        except BaseException as exc:
            _reset_arena(token)
            self._failed(self._lease(ACTIVE.pop(key), arena, request), request, exc)
            raise
        _reset_arena(token)
        entry = ACTIVE.pop(key)
        if isinstance(resp, _Response) and not request.writer.output_size:
            body = resp.body
            if body is None or body.__class__ is bytes:
                # Nothing written yet and a bytes body: writing the response cannot touch
                # pooled memory, so everything goes back now.
                if type(entry) is Lease:
                    entry.release()
                else:
                    self._released += 1
                    arena.close()
                return resp
        lease = self._lease(entry, arena, request)
        if isinstance(resp, PooledResponse) and not resp.released:
            resp._lease = lease
            lease.response = resp
        self._defer(lease, request)
        return resp

    def _lease(
        self, entry: tuple[object, Arena] | Lease, arena: Arena, request: web.Request
    ) -> Lease:
        return entry if type(entry) is Lease else Lease(self, arena, request.writer)

    def _failed(self, lease: Lease, request: web.Request, exc: BaseException) -> None:
        """The handler raised ``exc``: count it, give the lease back (now if nothing of
        ours can be in the transport), and turn a buffer-budget error into a 503."""
        untouched = not request.writer.output_size
        if isinstance(exc, asyncio.CancelledError):
            self._cancelled += 1
        elif isinstance(exc, PoolExhausted) and untouched:
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

    def statistics(self) -> MiddlewareStatistics:
        """A snapshot of this middleware's counters."""
        return MiddlewareStatistics(
            requests=self._requests,
            in_flight=self._requests - self._released,
            rejected=self._rejected,
            deferred=self._deferred,
            flush_waits=self._flush_waits,
            errors=self._errors,
            cancelled=self._cancelled,
            too_large=self._too_large,
        )

    def __repr__(self) -> str:
        return f"<electron Middleware aop={self.aop!r} in_flight={self._requests - self._released}>"


def middleware(
    *,
    aop: ArenaOfPools,
    acquire_timeout: float | None = 1.0,
    retry_after: int = 1,
    body_limit: int = 1 << 20,
    exclude: Iterable[str] = (),
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
    )
    app.middlewares.insert(0, mw)
    app[AOP_KEY] = aop
    app[MIDDLEWARE_KEY] = mw
    app.on_cleanup.append(_close_aop)
    return mw
