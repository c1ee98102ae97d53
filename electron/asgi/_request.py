"""Per-request helpers: the request's arena, pooled buffers and a pooled request body.

They take a Starlette/FastAPI ``Request`` (anything with a ``scope``) or the ASGI scope
itself; nothing here imports a framework.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

from .._arena import Arena
from .._buffer import Buffer
from .._checks import check_size
from .._errors import InsufficientCapacity, PoolExhausted
from ..aio._wait import acquire_arena
from ._errors import BodyRefused, ClientDisconnected
from ._middleware import Lease, Receive, Scope, _Request, request_of

__all__ = ("read_body", "request_arena", "request_buffer")


class HasScope(Protocol):
    """A framework's request object (Starlette's ``Request``, ``HTTPConnection``)."""

    @property
    def scope(self) -> Any: ...


class HasReceive(HasScope, Protocol):
    """A request object that can receive its body (Starlette's ``Request``)."""

    @property
    def receive(self) -> Any: ...


def _scope_of(request: HasScope | Scope) -> Scope:
    # Starlette's Request is a Mapping too: ask for its scope first.
    scope: Scope | None = getattr(request, "scope", None)
    return request if scope is None else scope  # type: ignore[return-value]


def _lease(request: HasScope | Scope) -> Lease:
    state = request_of(_scope_of(request))
    return state.lease or state.lend()


def request_arena(request: HasScope | Scope) -> Arena:
    """The arena electron's middleware lends ``request`` (a Starlette/FastAPI ``Request`` or
    the ASGI scope), lent on this first use.

    Valid until the response is complete. Beyond the budget the first use raises
    :class:`~electron.PoolExhausted` at once (the middleware answers 503 for it);
    :class:`LookupError` outside the middleware, :class:`~electron.ArenaClosed` once the
    request's memory went back.
    """
    return _lease(request).arena


def request_buffer(request: HasScope | Scope, size_hint: int = 0) -> Buffer:
    """A pooled :class:`~electron.Buffer` that goes back with ``request``'s memory.

    It stays valid until the response is complete, so it may be the body of a
    :class:`~electron.asgi.PooledResponse`. Raises :class:`~electron.PoolExhausted` at once
    beyond the budget (the middleware answers 503 for it).
    """
    return _lease(request).buffer(size_hint)


async def _lease_waiting(state: _Request) -> Lease:
    """The request's lease; a first use under a spent budget waits for an arena fairly, up
    to the middleware's ``acquire_timeout`` (then PoolExhausted: 503)."""
    lease = state.lease
    if lease is not None:
        return lease
    owner = state.owner
    if not owner._bounded:
        return state.lend()
    return state.lend(await acquire_arena(owner.aop, owner.acquire_timeout))


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


async def _next_part(receive: Receive, idle: float | None) -> tuple[bytes, bool]:
    """The next part of the body and whether more follows; 408 when none comes in time."""
    try:
        async with asyncio.timeout(idle):
            message = await receive()
    except TimeoutError:
        raise BodyRefused(408, "408: the request body stopped arriving") from None
    if message["type"] == "http.disconnect":
        raise ClientDisconnected("the client disconnected before sending the whole body")
    return message.get("body", b""), bool(message.get("more_body", False))


def _refusal(lease: Lease, exc: InsufficientCapacity | PoolExhausted) -> BodyRefused | None:
    """The final 413 for a body the budget can never hold (see
    :meth:`~electron.aio._request_memory.RequestLease.refused_body`); None when the budget
    is only spent by other requests for now (PoolExhausted: 503, retry)."""
    most = lease.refused_body(exc)
    if most is None:
        return None
    if isinstance(exc, InsufficientCapacity):
        return BodyRefused(413, f"413: the request body is larger than {most} bytes")
    return BodyRefused(413, "413: the request body does not fit in the server's memory budget")


async def read_body(
    request: HasReceive | Scope, receive: Receive | None = None, *, limit: int | None = None
) -> Buffer:
    """Read the request's body into a pooled buffer that goes back with the request.

    ``request`` is a Starlette/FastAPI ``Request``, or the ASGI scope with its ``receive``.
    At most ``limit`` bytes (default: the middleware's ``body_limit``) are accepted: a
    declared ``Content-Length`` above it, or above the pool's whole ``max_bytes``, is
    refused with :class:`BodyRefused` (413) before anything is read, and a chunked body as
    soon as it grows past it. Memory is taken as the bytes arrive: nothing before the first
    bytes, then the buffer grows one step at a time. A body whose next part does not arrive
    within the middleware's ``body_timeout`` is refused with 408; a client that disconnects
    raises :class:`ClientDisconnected`. The middleware answers both. If the request has no
    arena yet, it waits for the budget like the middleware does. Read the body once: this
    consumes it.
    """
    scope = _scope_of(request)
    if receive is None:
        receive = getattr(request, "receive", None)
        if receive is None:
            raise TypeError("read_body(scope, receive): give the receive of the ASGI call")
    state = request_of(scope)
    owner = state.owner
    limit = owner.body_limit if limit is None else check_size(limit, "limit")
    length = _declared_length(scope)
    refused = owner._refuses_length(length, limit)
    if refused is not None:
        raise BodyRefused(413, f"413: the request body is larger than {refused} bytes")
    timeout = owner.body_timeout
    chunk, more = await _next_part(receive, timeout)
    while not chunk and more:  # no memory for a request that sent nothing yet
        chunk, more = await _next_part(receive, timeout)
    lease = await _lease_waiting(state)
    buf: Buffer | None = None
    size = 0
    while True:
        if size + len(chunk) > limit:
            owner._too_large += 1
            raise BodyRefused(413, f"413: the request body is larger than {limit} bytes")
        size += len(chunk)
        try:
            if buf is None:
                buf = lease.buffer(len(chunk))
            buf.write(chunk)  # one copy of each part into pooled memory
        except (InsufficientCapacity, PoolExhausted) as exc:
            refusal = _refusal(lease, exc)
            if refusal is None:
                raise  # the budget is spent by other requests for now: 503
            raise refusal from exc
        if not more:
            return buf
        chunk, more = await _next_part(receive, timeout)
