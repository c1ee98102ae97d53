"""ElectronMiddleware: request-scoped pooled memory for any ASGI application.

Pure ASGI: nothing here imports a web framework. Every HTTP request gets a :class:`_Request`
in its scope (under :data:`SCOPE_KEY`) while the application runs; the helpers of
``electron.asgi`` find it there and make the request's one lease (an
:class:`~electron.aio._request_memory.RequestLease`) on first use. The lease goes back in one
step once the final ``http.response.body`` was handed to the server (pooled bodies are given
to the server only where it copies them in ``send``, or where its transport lets go of them in
order, with a copy of their tail, else as a ``bytes`` copy; where its ``send`` waits for its
transport, followed by an empty final body: see ``_servers``), or when the application
returns or fails, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final, Unpack

from .._arena import Arena
from .._arena_of_pools import ArenaOfPools
from .._context import current_arena_var, register_lazy_marker
from .._errors import PoolClosed, PoolExhausted
from ..aio._request_memory import (
    LENDING,
    RequestLease,
    RequestMemoryOptions,
    RequestMemoryOwner,
    ended,
    never_fits,
)
from ..aio._trim import trim_periodically
from ..aio._wait import acquire_arena
from ._errors import BodyRefused, ClientDisconnected
from ._servers import (
    DRAINS,
    PART,
    WRITES_AS_IS,
    fifo_transport,
    owner_of,
    safe_body,
    views_of,
)

__all__ = ("SCOPE_KEY", "ElectronMiddleware", "Message", "Receive", "Scope", "Send")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key under which the middleware keeps a request's state while it is served.
SCOPE_KEY: Final = "electron.request"
UNMATCHED: Final = "(unmatched)"
_log = logging.getLogger("electron.asgi")
_set_arena = current_arena_var.set
_reset_arena = current_arena_var.reset
#: The scope of a request that ended (whose scope the request no longer refers to).
_ENDED: Final[Scope] = {}
_UNKNOWN: Final = object()


def route_of(scope: Scope) -> str:
    """The path template of the route the framework matched (Starlette and FastAPI put the
    route in ``scope["route"]``), else ``"(unmatched)"``: never the raw path, whose
    cardinality the client chooses."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class Lease(RequestLease):
    """One ASGI request's electron memory; its route is read from the scope at release."""

    __slots__ = ("scope",)

    def __init__(self, owner: RequestMemoryOwner, scope: Scope, arena: Arena | None = None):
        super().__init__(owner, arena)
        self.scope = scope

    def _route(self) -> str:
        """Asked once, at the release, which then also drops the scope: no cycle remains."""
        scope, self.scope = self.scope, _ENDED
        return route_of(scope)


class _Request:
    """One HTTP request served under the middleware: its lease (made on first use), whether
    the application still runs, and the ``send`` that sees the response go out.

    Most requests never use electron memory: for them this is a few attribute writes and
    the ``send`` wrapper's two dictionary reads per message, nothing more.
    """

    __slots__ = (
        "_send",
        "_server",
        "active",
        "complete",
        "headers",
        "in_transport",
        "lease",
        "owner",
        "scope",
        "started",
    )

    def __init__(self, owner: ElectronMiddleware, scope: Scope, send: Send) -> None:
        self.owner = owner
        self.scope = scope
        self._send = send
        self._server: object = _UNKNOWN  # the server object behind send, once asked
        self.lease: Lease | None = None
        self.active = True  # the application runs and the response is not complete
        self.started = False  # the response's start (its status) was sent
        self.complete = False  # the final body was handed to the server
        self.headers: Iterable[tuple[bytes, bytes]] = ()  # the response's
        self.in_transport = False  # pooled memory went to the server's transport as it is

    def lend(self, arena: Arena | None = None) -> Lease:
        """The request's lease, made now if it has none: with ``arena`` if given, else,
        under a budget, with one lent now (or PoolExhausted), else with none yet. Raises
        ArenaClosed once the request's memory went back."""
        with LENDING:
            lease = self.lease
            if lease is None and self.active:
                owner = self.owner
                if arena is None and owner._bounded:
                    # Under a budget the request's arena is what admission counts and waits for.
                    arena = owner.aop.get_arena(0)  # PoolExhausted beyond the budget
                lease = self.lease = Lease(owner, self.scope, arena)
                arena = None
        if arena is not None:
            arena.close()  # another of the request's tasks made the lease first, or it ended
        if lease is None:
            raise ended()
        if not self.active:
            # The request ended (in another thread) while this one lent: whoever claims the
            # lease, this thread or finish(), gives it back.
            self._give_back()
            raise ended()
        return lease

    def arena(self) -> Arena:
        """``electron.aio.current_arena()`` while this request is the context's lazy marker
        (``current_arena=True``): the request's arena, lent on first use. Raises
        ArenaClosed once the request's memory went back (a task that outlived it)."""
        if not self.active:
            raise ended()
        return (self.lease or self.lend()).arena

    def finish(self) -> None:
        """Give the request's memory back now: the response is complete or the application
        is done. Helpers called later raise ArenaClosed."""
        self.active = False
        if self.lease is not None:
            self._give_back()

    def _give_back(self) -> None:
        with LENDING:  # claim it: a racing lend() may give it back too
            lease = self.lease
            if lease is None or lease.released:
                return
        lease.release()

    def server_object(self) -> object | None:
        """The server object behind the ``send`` the middleware was given (``_servers``)."""
        owner = self._server
        if owner is _UNKNOWN:
            owner = self._server = owner_of(self._send)
        return owner

    def chunked(self) -> bool:
        """True when the response has no ``Content-Length``: servers send it chunked."""
        return not any(name.lower() == b"content-length" for name, _ in self.headers)

    def send(self, message: Message) -> Awaitable[None]:
        """The application's ``send``: pooled bodies go to the server only in a form it is
        done with once ``send`` returns; after the final body the memory goes back.

        A plain function returning the server's awaitable, so that a request that uses no
        memory adds no coroutine of its own to its messages."""
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body", b"")
            if type(body) is not bytes:
                owner = self.server_object()
                server = "" if owner is None else type(owner).__module__
                if (
                    server in DRAINS
                    and self.lease is not None
                    and type(body) is memoryview
                    and body.c_contiguous
                ):
                    return self._send_pooled(message, body, server)
                message = {**message, "body": safe_body(body, server, self.chunked)}
            if not message.get("more_body", False):
                self.complete = True
                if self.lease is not None:
                    return self._send_final(message)
                # A lease made from here on (another thread) is given back by lend() or
                # by the middleware when the application returns.
                self.active = False
        elif kind == "http.response.start":
            self.started = True
            headers = message.get("headers", ())
            if type(headers) is not list and type(headers) is not tuple:
                # Any iterable: the server consumes an iterator, and chunked() reads it later.
                headers = list(headers)
                message = {**message, "headers": headers}
            self.headers = headers
        return self._send(message)

    def _fifo_transport(self, server: str) -> asyncio.WriteTransport | None:
        """The transport a pooled body may reach as it is, but for a copy of its tail
        (``_servers.fifo_transport``); None if all of it must be copied."""
        if server not in WRITES_AS_IS or self.chunked():
            return None
        return fifo_transport(self.server_object())

    async def _send_pooled(self, message: Message, body: memoryview, server: str) -> None:
        """A pooled body to a server whose ``send`` waits for its transport (``DRAINS``).

        Where the transport lets go of what it wrote in order (``_servers``), as it is but
        for a copy of its last ``high`` bytes (the transport's high-water mark): no copy of
        the rest exists, out of the budget or not. Elsewhere in parts of at most ``PART``
        bytes, each as ``safe_body`` makes it, so that the server's copies (out of the
        pool's budget) are one part at a time. A final body ends with an empty final
        message, which the server writes once its transport drained below its high-water
        mark (or with the copied tail, where the transport had written all the rest), and
        the memory goes back once that returned and the transport holds no view of it (one
        loop iteration later where it still does: ``_send_final``)."""
        final = not message.get("more_body", False)
        if final:
            self.complete = True
        empty_final = final  # the body ends with an empty final message
        shared: int | None = None  # views of the body's memory before it went out
        view = body if body.ndim == 1 and body.format == "B" else body.cast("B")
        try:
            transport = self._fifo_transport(server)
            high = 0 if transport is None else transport.get_write_buffer_limits()[1]
            if transport is not None and view.nbytes > 2 * high:
                cut = view.nbytes - high
                if not self.in_transport:  # else earlier bodies may be held too
                    shared = views_of(view)
                self.in_transport = True
                # Not released afterwards: the transport may still hold this very view.
                await self._send({**message, "body": view[:cut], "more_body": True})
                # The tail ends the response if the transport holds none of the rest.
                last = final and not transport.get_write_buffer_size()
                tail = bytes(view[cut:])
                await self._send({**message, "body": tail, "more_body": not last})
                empty_final = final and not last
            else:
                for start in range(0, view.nbytes, PART):
                    part = view[start : start + PART]
                    try:
                        safe = safe_body(part, server, self.chunked)
                        await self._send({**message, "body": safe, "more_body": True})
                    finally:
                        _release(part)
            if empty_final:
                await self._send({"type": "http.response.body", "body": b""})
            if final and self.in_transport and (shared is None or views_of(view) != shared):
                # The transport still holds a view: uvloop's, until the write's completion
                # callback, which libuv may run on the next loop iteration (_send_final).
                await asyncio.sleep(0)
        finally:
            if view is not body:
                _release(view)
            if final:
                self.finish()

    async def _send_final(self, message: Message) -> None:
        """The final body of a request that used memory: the memory goes back once the
        server has it (copied in ``send``, or a copy of ours), and where pooled memory went
        to the transport as it is, one loop iteration later: the transport holds none of it
        any more (``_servers``), but uvloop lets go of memory in a write's completion
        callback, which libuv may run on the next loop iteration."""
        try:
            await self._send(message)
            if self.in_transport:
                await asyncio.sleep(0)
        finally:
            self.finish()


def _release(view: memoryview) -> None:
    """Release a view of pooled memory now, so that the memory can go back; one a server
    still holds stays exported, and the pool quarantines its region instead of reusing it."""
    with contextlib.suppress(BufferError):
        view.release()


async def _ended(message: Message) -> None:
    """The ``send`` of a request whose application returned."""
    raise RuntimeError("electron: this request has ended; its send cannot be used any more")


class ElectronMiddleware(RequestMemoryOwner):
    """electron's ASGI middleware: request-scoped pooled memory for every HTTP request.

    Wrap the application (``ElectronMiddleware(app, aop=aop)``) or, in Starlette and FastAPI,
    ``app.add_middleware(ElectronMiddleware, aop=aop)``. In the application,
    :func:`~electron.asgi.request_arena`, :func:`~electron.asgi.request_buffer` and
    :func:`~electron.asgi.read_body` give the request's arena and pooled buffers, lent on
    first use: a request that never calls them costs next to nothing. Everything goes back
    in one step as soon as the final ``http.response.body`` was handed to the server, or
    when the application returns, fails or is cancelled. Response bodies that are not
    ``bytes`` (a :class:`~electron.asgi.PooledResponse`, a ``memoryview`` of pooled memory)
    are handed to the server as they are only where the server copies them before its
    ``send`` returns, else as a ``bytes`` copy, so that no server ever reads memory that
    went back (docs/asgi.md).

    Under a budget (``max_arenas`` or ``max_bytes``), a request that arrives while the budget
    is spent (or others queue for it) waits up to ``acquire_timeout`` seconds for its arena
    before the application runs, and is answered ``503`` with ``Retry-After: retry_after``
    if none comes; a :class:`~electron.PoolExhausted` the application raises before it
    started its response is answered the same way, and an
    :class:`~electron.InsufficientCapacity` for more than the whole budget with a final
    ``500``. :func:`~electron.asgi.read_body` refuses a declared ``Content-Length`` over
    its limit with ``413`` before it asks the server for the body (so before the client
    sends it, under a server that answers ``Expect: 100-continue`` on the application's
    first ``receive``, as uvicorn does). ``exclude``: paths that get no
    memory. While the server runs (ASGI lifespan), the pool is trimmed every
    ``aop.trim_interval`` seconds so that idle memory comes back without traffic.
    With ``current_arena=True``, :func:`electron.aio.current_arena` is the request's arena
    (lent on first use) in the application and in the tasks and threads it starts; it is
    off by default, as it sets and resets a context variable per request. Statistics:
    :meth:`statistics`, :meth:`route_usage` (routes as the framework's path template),
    :meth:`add_usage_listener`; ``electron.metrics.Metrics(aop, middleware)`` exports them.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        aop: ArenaOfPools,
        current_arena: bool = False,
        **options: Unpack[RequestMemoryOptions],
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application, not {type(app).__name__}")
        super().__init__(aop=aop, **options)
        self.app = app
        self.current_arena = bool(current_arena)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if SCOPE_KEY in scope or (self.exclude and scope["path"] in self.exclude):
            # An outer electron middleware serves it, or it is excluded.
            await self.app(scope, receive, send)
            return
        request = _Request(self, scope, send)
        if self._bounded and not self.aop.can_lend_now():
            try:
                arena = await acquire_arena(self.aop, self.acquire_timeout)
            except (PoolExhausted, PoolClosed):
                self._rejected += 1
                await self._unavailable(send)
                return
            request.lease = Lease(self, scope, arena)
        scope[SCOPE_KEY] = request
        # The request is current_arena()'s lazy marker until first use (opt-in).
        token = _set_arena(request) if self.current_arena else None  # type: ignore[arg-type]
        try:
            await self.app(scope, receive, request.send)
        except BaseException as exc:
            if not await self._answered(exc, request, send):
                raise
        finally:
            if token is not None:
                _reset_arena(token)
            request.finish()
            # The scope refers to the request, and the server's objects behind ``send`` (and
            # the one the request found there) to the scope: without them, the request refers
            # to nothing that refers back, and it all goes with the server's last reference,
            # not at the next garbage collection.
            request.scope = _ENDED
            request._send = _ended
            request._server = None

    async def _answered(self, exc: BaseException, request: _Request, send: Send) -> bool:
        """Count what the application raised; answer it when nothing was sent yet and
        waiting could help (503) or retrying cannot (500 for more than the whole budget).
        True if it was answered (the error then stops here)."""
        if isinstance(exc, asyncio.CancelledError):
            self._cancelled += 1
            return False
        started = request.started
        if isinstance(exc, ClientDisconnected):
            self._cancelled += 1  # nobody is left to answer
            return True
        if isinstance(exc, BodyRefused) and not started:
            # The server discards the rest of the body (it does not hand it to anyone).
            await self._answer(send, exc.status, exc.text)
            return True
        lease = request.lease
        final = never_fits(exc, lease)
        if isinstance(exc, (PoolExhausted, PoolClosed)) and not started and not final:
            self._rejected += 1
            await self._unavailable(send)
            return True
        self._errors += 1
        if final:
            scope = request.scope
            _log.error("electron: %s (%s %s)", exc, scope.get("method"), scope.get("path"))
            if not started:
                await self._answer(
                    send,
                    500,
                    "500: the request needs more memory than the server's whole budget allows",
                )
                return True
        return False

    async def _unavailable(self, send: Send) -> None:
        await self._answer(
            send,
            503,
            "503: the server's memory budget is exhausted; retry later",
            [(b"retry-after", str(self.retry_after).encode())],
        )

    @staticmethod
    async def _answer(
        send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or ()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Trim the pool periodically from the server's startup to its shutdown."""
        task: asyncio.Task[None] | None = None

        async def receive_and_trim() -> Message:
            nonlocal task
            message = await receive()
            if message["type"] == "lifespan.startup" and task is None:
                task = asyncio.get_running_loop().create_task(
                    trim_periodically(self.aop), name="electron: trim idle memory"
                )
            elif message["type"] == "lifespan.shutdown" and task is not None:
                task.cancel()
            return message

        try:
            await self.app(scope, receive_and_trim, send)
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def __repr__(self) -> str:
        return (
            f"<electron ElectronMiddleware aop={self.aop!r} "
            f"in_flight={self._lent - self._released}>"
        )


register_lazy_marker(_Request, _Request.arena)


def request_of(scope: Scope) -> _Request:
    """The middleware's state of the request whose scope this is; LookupError if none."""
    request = scope.get(SCOPE_KEY)
    if request is None:
        raise LookupError(
            "this request has no electron memory: wrap the application in "
            "electron.asgi.ElectronMiddleware(app, aop=...) (Starlette, FastAPI: "
            "app.add_middleware(ElectronMiddleware, aop=...)) and use the helpers while the "
            "request is served; excluded paths get none"
        )
    return request  # type: ignore[no-any-return]
