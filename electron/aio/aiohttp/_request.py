"""Per-request helpers: the request's arena, pooled buffers and a pooled request body."""

from __future__ import annotations

from aiohttp import web

from ..._arena import Arena
from ..._buffer import Buffer
from ..._checks import check_size
from ..._errors import InsufficientCapacity
from ._lease import lease_of, lease_of_async

__all__ = ("read_body", "request_arena", "request_buffer")


def request_arena(request: web.BaseRequest) -> Arena:
    """The arena electron's middleware lends ``request``, from its handler.

    Call it from the handler (or a middleware inside electron's); when the middleware was
    installed with ``current_arena=True``, :func:`electron.aio.current_arena` returns the
    same arena. The arena stays valid until
    the response has been sent. The first call lends it: beyond the budget that raises
    :class:`~electron.PoolExhausted` at once (the middleware answers 503 for it). Raises
    :class:`LookupError` elsewhere.
    """
    return lease_of(request).arena


def request_buffer(request: web.BaseRequest, size_hint: int = 0) -> Buffer:
    """A pooled :class:`~electron.Buffer` that goes back with ``request``'s arena.

    Call it from the handler. The buffer stays valid until the response has been sent, so
    it may be the body of a :class:`PooledResponse`. Raises :class:`~electron.PoolExhausted`
    at once beyond the budget (the middleware answers 503 for it).
    """
    return lease_of(request).buffer(size_hint)


async def read_body(request: web.BaseRequest, *, limit: int | None = None) -> Buffer:
    """Read ``request``'s body into a pooled buffer that goes back with the request.

    At most ``limit`` bytes (default: the middleware's ``body_limit``) are accepted: a
    declared ``Content-Length`` above it is refused with 413 before anything is read, and a
    chunked body with 413 as soon as it grows past it. If the request has no arena yet, it
    waits for the budget like the middleware does (up to its ``acquire_timeout``).
    """
    lease = await lease_of_async(request)
    owner = lease.owner
    limit = owner.body_limit if limit is None else check_size(limit, "limit")
    length = request.content_length
    if length is not None and length > limit:
        owner._too_large += 1
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
    buf = lease.buffer(length or 0)
    content = request.content
    size = 0
    while True:
        # aiohttp hands the body over as bytes chunks; one copy of each into pooled memory
        # (Buffer.write, which neither zeroes nor registers a view, unlike reserve/commit).
        chunk = await content.readany()
        if not chunk:
            return buf
        size += len(chunk)
        if size > limit:
            owner._too_large += 1
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        try:
            buf.write(chunk)
        except InsufficientCapacity as exc:  # more than the whole budget: final
            owner._too_large += 1
            raise web.HTTPRequestEntityTooLarge(max_size=exc.capacity, actual_size=size) from exc
