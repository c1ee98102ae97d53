"""The middleware: request-scoped memory for every request, given back once nothing
references it; :func:`setup` and :func:`middleware` install it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import types
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Unpack

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter, AbstractView
from aiohttp.typedefs import Handler

from ..._arena_of_pools import ArenaOfPools
from ..._context import current_arena_var
from ..._errors import PoolClosed, PoolExhausted
from .._request_memory import RequestMemoryOptions, RequestMemoryOwner, never_fits
from .._trim import trim_periodically
from .._wait import acquire_arena
from ._aiohttp_internals import in_request_task, own_routes, replace_handler, sent_anything
from ._lease import ACTIVE, LEASES, Lease, route_name, route_of
from ._response import PooledResponse

__all__ = ("AOP_KEY", "MIDDLEWARE_KEY", "Middleware", "MiddlewareOptions", "middleware", "setup")

_set_arena = current_arena_var.set
_reset_arena = current_arena_var.reset
_BYTES = (bytes, type(None))  # response bodies whose sending cannot touch pooled memory
_log = logging.getLogger("electron.aio.aiohttp")
_SERVED_BY = "__electron_middleware__"  # on a route handler setup wrapped: the Middleware


class MiddlewareOptions(RequestMemoryOptions, total=False):
    """The options :func:`setup` and :func:`middleware` pass on to :class:`Middleware`."""

    current_arena: bool


class Middleware(RequestMemoryOwner):
    """Request-scoped memory for every request of an aiohttp app: what :func:`setup`
    installs, and a new-style aiohttp middleware.

    Inside the handler :func:`request_arena` is the request's arena, lent on first use: a
    request that never touches electron memory costs next to nothing. With
    ``current_arena=True`` :func:`electron.aio.current_arena` gives the same arena in the
    handler and in the tasks it starts (for code that is not handed the request); it is
    off by default, as setting and resetting the context variable costs about as much as
    the rest of the middleware's per-request work. The arena goes back, with every buffer taken
    through :func:`request_buffer` or :func:`read_body`, as soon as nothing can reference
    it: when the handler returns a response whose body is ``bytes`` (or a
    :class:`PooledResponse` of at most ``COPY_MAX`` bytes, copied when it was made), at once;
    otherwise (a larger PooledResponse, a streamed or memoryview body) only after aiohttp has
    written the response and the transport has flushed it, or the connection was lost.
    Errors and cancellation give it back too.

    While the pool can lend at once, a request starts without an arena; when the budget is
    exhausted (or others queue for it) the request instead waits for one before its handler
    runs, for up to ``acquire_timeout`` seconds, and is then answered ``503`` with
    ``Retry-After: retry_after``. A handler whose first use finds the budget exhausted
    (others took it meanwhile) gets :class:`~electron.PoolExhausted` at once from the sync
    helpers, which the middleware answers ``503`` the same way; :func:`read_body` waits.

    :func:`setup` makes it run each route's handler (:meth:`serve`); as a middleware, put it
    first in the app's list. Requests for a path in ``exclude`` get no arena; nor does one
    that another electron middleware, run earlier, serves. It sees the response's end
    through aiohttp's request task. Run inside another task (a middleware wrapping the
    handler in ``asyncio.shield``, or ``asyncio.wait_for`` before Python 3.12), it stays
    safe, but memory behind a non-pooled response then goes back only when aiohttp drops
    the request. Per route (its canonical path) it records the bytes each request
    that used electron memory took (arena bytes used plus pooled buffer capacity): see
    :meth:`route_usage` and :meth:`add_usage_listener`.

    :func:`read_body` accepts at most ``body_limit`` bytes (413 beyond) and waits at most
    ``body_timeout`` seconds for each part of a body (408 after).
    """

    __middleware_version__ = 1  # aiohttp: a new-style middleware

    def __init__(
        self,
        *,
        aop: ArenaOfPools,
        current_arena: bool = False,
        **options: Unpack[RequestMemoryOptions],
    ) -> None:
        super().__init__(aop=aop, **options)
        self.current_arena = bool(current_arena)

    def _unavailable(self) -> web.HTTPServiceUnavailable:
        self._rejected += 1
        return web.HTTPServiceUnavailable(
            headers={"Retry-After": str(self.retry_after)},
            text="503: the server's memory budget is exhausted; retry later",
        )

    def __call__(
        self, request: web.Request, handler: Handler
    ) -> Coroutine[Any, Any, web.StreamResponse]:
        """Serve ``request`` with ``handler`` (the middleware protocol of aiohttp)."""
        return self._serve(None, handler, request)

    def serve(
        self, handler: Handler, request: web.Request
    ) -> Coroutine[Any, Any, web.StreamResponse]:
        """Run ``handler`` for ``request`` with request-scoped memory (awaitable): what
        :func:`setup` makes each route's handler, which also knows the route."""
        return self._serve(None, handler, request)

    async def _serve(
        self, route: str | None, handler: Handler, request: web.Request
    ) -> web.StreamResponse:
        """:meth:`serve`, for a request of ``route`` (its name for :meth:`route_usage`;
        None: looked up from the request, when the request used memory)."""
        key = request._payload_writer  # key_of(request), inline: see _aiohttp_internals
        if key in ACTIVE or (self.exclude and request.path in self.exclude):
            # An outer electron middleware (a parent app's) serves it, or it is excluded.
            return await handler(request)
        if self._bounded and not self.aop.can_lend_now():
            await self._lend_before_handler(key, request)
        ACTIVE[key] = self
        # The request is current_arena()'s lazy marker until first use (opt-in: it costs as
        # much as the rest of the middleware's work for a request that uses no memory).
        token = _set_arena(request) if self.current_arena else None  # type: ignore[arg-type]
        resp: web.StreamResponse | None = None
        try:
            resp = await handler(request)
        except BaseException as exc:
            if isinstance(exc, web.HTTPException):
                resp = exc  # aiohttp sends it as the response
            self._count_failure(exc, request, key)
            raise
        finally:
            if token is not None:
                _reset_arena(token)
            del ACTIVE[key]
            # After ACTIVE, as _lend expects; most requests use no memory, LEASES is empty.
            if LEASES and (lease := LEASES.pop(key, None)) is not None:
                lease.route = route_of(request) if route is None else route
                self._give_back(lease, request, resp)
        return resp

    async def _lend_before_handler(self, key: AbstractStreamWriter, request: web.Request) -> None:
        """The budget is spent or others queue for it: wait for an arena before the handler
        runs (503 after ``acquire_timeout`` seconds) and make the request's lease of it."""
        try:
            arena = await acquire_arena(self.aop, self.acquire_timeout)
        except (PoolExhausted, PoolClosed):
            raise self._unavailable() from None
        LEASES[key] = Lease(self, key, arena)

    def _count_failure(
        self, exc: BaseException, request: web.Request, key: AbstractStreamWriter
    ) -> None:
        """Count what the handler raised. Raised before anything was sent, a budget error
        becomes a 503 (waiting could help), and a request for more memory than the whole
        budget, or than it leaves beside what the request holds itself, a final 500 that
        says so (no Retry-After: retrying cannot help)."""
        if isinstance(exc, asyncio.CancelledError):
            self._cancelled += 1
            return
        final = never_fits(exc, LEASES.get(key))
        if (
            isinstance(exc, (PoolExhausted, PoolClosed))
            and not final
            and not sent_anything(request.writer)
        ):
            raise self._unavailable() from exc
        if not isinstance(exc, web.HTTPException):
            self._errors += 1
            if final:
                _log.error("electron: %s (%s %s)", exc, request.method, request.path)
                if not sent_anything(request.writer):
                    raise web.HTTPInternalServerError(
                        text="500: the request needs more memory than the server's whole "
                        "budget allows"
                    ) from exc

    def _give_back(
        self, lease: Lease, request: web.Request, resp: web.StreamResponse | None
    ) -> None:
        """The handler is done: give ``lease`` back now if sending the response cannot touch
        pooled memory (nothing sent yet, and no response, one with a ``bytes`` body or a
        PooledResponse that holds no pooled memory any more: a small one, copied), else
        once aiohttp has written the response and the transport flushed it."""
        if not sent_anything(lease.writer) and (
            resp is None
            or (isinstance(resp, PooledResponse) and resp.released)
            or (isinstance(resp, web.Response) and type(resp.body) in _BYTES)
        ):
            lease.release()
            return
        if isinstance(resp, PooledResponse) and not resp.released:
            resp._lease = lease
            lease.response = resp
        self._deferred += 1
        task = asyncio.current_task()
        if task is not None and in_request_task(task):
            task.add_done_callback(lease.release_after_flush)
        else:
            # Run inside a task of someone else's (a middleware wrapping the handler in a
            # new task): the response's end is not observable, so the lease goes back when
            # aiohttp drops the request (a PooledResponse gives it back earlier itself).
            weakref.finalize(request, lease.release_after_flush)

    def _served(self, handler: Handler, route: str) -> Handler:
        """``handler`` run by :meth:`serve` (what :func:`setup` makes the handler of a route
        named ``route``).

        A class-based view (an ``AbstractView`` such as ``web.View``) stays one: its handler
        becomes a subclass whose instances run under :meth:`serve`, since libraries tell
        views by ``route.handler`` and ``match_info.handler`` being a ``web.View`` subclass
        (aiohttp-cors reads a ``CorsViewMixin``'s config from it, aiohttp-apispec a view's
        schemas)."""
        view: object = handler
        if isinstance(view, type) and issubclass(view, AbstractView):
            served: Handler = self._served_view(view, route)
        else:
            served = functools.update_wrapper(
                functools.partial(self._serve, route, handler), handler
            )
        setattr(served, _SERVED_BY, self)
        return served

    def _served_view(self, view: type[AbstractView], route: str) -> Any:
        """A subclass of ``view`` (same name, doc and module, ``__wrapped__`` the view) whose
        instances, awaited by aiohttp, run as ``view``'s would under :meth:`serve`."""
        serve, run = self._serve, view.__await__

        def __await__(instance: AbstractView) -> Generator[Any, None, web.StreamResponse]:
            handler = functools.partial(_RunView, run, instance)
            return serve(route, handler, instance.request).__await__()

        namespace = {
            "__slots__": (),
            "__await__": __await__,
            "__module__": view.__module__,
            "__qualname__": view.__qualname__,
            "__doc__": view.__doc__,
            "__wrapped__": view,
        }
        return types.new_class(view.__name__, (view,), exec_body=lambda ns: ns.update(namespace))

    def __repr__(self) -> str:
        return f"<electron Middleware aop={self.aop!r} in_flight={self._lent - self._released}>"


class _RunView:
    """Awaiting it runs a view instance as its class's own ``__await__`` does."""

    __slots__ = ("_instance", "_run")

    def __init__(
        self,
        run: Callable[[AbstractView], Generator[Any, None, web.StreamResponse]],
        instance: AbstractView,
        request: web.Request,
    ) -> None:
        self._run, self._instance = run, instance

    def __await__(self) -> Generator[Any, None, web.StreamResponse]:
        return self._run(self._instance)


def middleware(*, aop: ArenaOfPools, **options: Unpack[MiddlewareOptions]) -> Middleware:
    """electron's middleware for an app's ``middlewares`` list (put it first).

    See :class:`Middleware` for what it does and for the options; :func:`setup` also
    stores ``aop`` on the app and closes it at cleanup.
    """
    return Middleware(aop=aop, **options)


async def _close_aop(app: web.Application) -> None:
    app[AOP_KEY].close()


def setup(
    app: web.Application,
    aop: ArenaOfPools,
    *,
    as_middleware: bool = False,
    **options: Unpack[MiddlewareOptions],
) -> Middleware:
    """Give every route of ``app`` (and of its sub-apps) request-scoped memory over ``aop``,
    and return the :class:`Middleware` that serves them, for its statistics.

    When the app starts, each route's handler is wrapped (a ``partial`` of ``mw.serve`` that
    also knows the route's name, with the handler's name, doc and ``__wrapped__``): a
    request then costs what a request to
    an app without middlewares costs, since aiohttp runs its middleware machinery only for
    apps that have middlewares. A sub-app with a ``setup`` of its own serves its own routes.
    With ``as_middleware=True`` the middleware is instead the app's outermost one, so that
    your own middlewares can use electron memory too, at aiohttp's cost of running
    middlewares (about a tenth of a hello-world request).

    ``aop`` is stored under :data:`AOP_KEY` (the middleware under :data:`MIDDLEWARE_KEY`),
    trimmed every ``aop.trim_interval`` seconds while the app runs (so that idle memory
    comes back without traffic: :func:`electron.aio.trim_periodically`), and closed when
    the app is cleaned up. Options as for :class:`Middleware`.
    """
    mw = Middleware(aop=aop, **options)
    if as_middleware:
        app.middlewares.insert(0, mw)
    app[AOP_KEY] = aop
    app[MIDDLEWARE_KEY] = mw
    app.cleanup_ctx.append(_trim_while_serving)
    if not as_middleware:
        app.on_startup.append(_serve_routes)
    app.on_cleanup.append(_close_aop)
    return mw


async def _serve_routes(app: web.Application) -> None:
    """Wrap the handler of every route the app's middleware serves: the app's own and
    those of its sub-apps, except sub-apps with a ``setup`` of their own."""
    mw = app[MIDDLEWARE_KEY]
    for route in own_routes(app, skip=lambda subapp: MIDDLEWARE_KEY in subapp):
        if getattr(route.handler, _SERVED_BY, None) is not mw:  # not already (a restart)
            replace_handler(route, functools.partial(mw._served, route=route_name(route)))


async def _trim_while_serving(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(
        trim_periodically(app[AOP_KEY]), name="electron: trim idle memory"
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


#: The app's :class:`~electron.ArenaOfPools`, stored by :func:`setup`.
AOP_KEY: web.AppKey[ArenaOfPools] = web.AppKey("electron.aop", ArenaOfPools)
#: The app's :class:`Middleware` (for its statistics), stored by :func:`setup`.
MIDDLEWARE_KEY: web.AppKey[Middleware] = web.AppKey("electron.middleware", Middleware)
