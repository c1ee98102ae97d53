"""Per-request helpers: the request's arena, pooled buffers and a pooled request body."""

from __future__ import annotations

import asyncio

from aiohttp import StreamReader, web

from ..._arena import Arena
from ..._buffer import Buffer
from ..._checks import check_size
from ..._errors import InsufficientCapacity, PoolExhausted
from ._aiohttp_internals import next_part
from ._lease import Lease, lease_of, lease_of_async, owner_of

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
    declared ``Content-Length`` above it, or above the pool's whole ``max_bytes``, is
    refused with 413 before anything is read, and a chunked body with 413 as soon as it
    grows past it. Memory is taken as the bytes arrive, never for a declared length alone:
    nothing before the first bytes, then at most about twice what arrived. Without a
    ``max_bytes`` budget, a declared body is copied once into a buffer of its length, taken
    when half of it has arrived (until then its parts stay as aiohttp handed them over);
    under one, and for a chunked body, the buffer grows as the bytes arrive, every byte
    counted. A body whose next part does not arrive within the middleware's
    ``body_timeout`` is answered 408. If the request has no arena yet, it waits for the
    budget like the middleware does.
    """
    owner = owner_of(request)
    limit = owner.body_limit if limit is None else check_size(limit, "limit")
    length = request.content_length
    refused = owner._refuses_length(length, limit)
    if refused is not None and length is not None:
        raise web.HTTPRequestEntityTooLarge(max_size=refused, actual_size=length)
    content = request.content
    timeout = owner.body_timeout
    chunk = await _next_chunk(content, timeout)  # no memory for a request that sent nothing
    lease = await lease_of_async(request)
    # A pooled buffer of the declared length: one region and one copy of each part, where
    # growing would copy what arrived at each step and leave a region of every size
    # behind in the pool. Under max_bytes the parts kept meanwhile would not be counted.
    whole = length if length is not None and owner.aop.max_bytes is None else None
    parts: list[bytes] = []
    buf: Buffer | None = None
    size = 0
    while chunk:
        size += len(chunk)
        if size > limit:
            owner._too_large += 1
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        parts.append(chunk)
        if whole is None or 2 * size >= whole:  # else: no memory for the rest yet
            buf = _copy_in(lease, buf, parts, size if whole is None else whole, size)
        chunk = await _next_chunk(content, timeout)
    return _copy_in(lease, buf, parts, size, size)


def _copy_in(
    lease: Lease, buf: Buffer | None, parts: list[bytes], capacity: int, size: int
) -> Buffer:
    """Copy ``parts`` of a body into ``buf`` (a pooled buffer of ``capacity`` bytes taken
    first when None) and forget them: aiohttp hands a body over as ``bytes`` parts, and each
    is copied once into pooled memory (``Buffer.write``: it neither zeroes nor registers a
    view). 413 for a body that can never fit (``size``: the bytes that arrived)."""
    try:
        if buf is None:
            buf = lease.buffer(capacity)
        for part in parts:
            buf.write(part)
    except (InsufficientCapacity, PoolExhausted) as exc:
        most = lease.refused_body(exc)
        if most is None:
            raise  # the budget is spent by other requests for now: 503, retry
        raise web.HTTPRequestEntityTooLarge(max_size=most, actual_size=size) from exc
    parts.clear()
    return buf


async def _next_chunk(content: StreamReader, idle: float | None) -> bytes:
    """The next part of a body (``b""`` at its end); 408 when none comes within ``idle`` s.

    What already arrived is taken part by part, as aiohttp handed it over, without a timer:
    a deadline costs a timer handle made and cancelled, only worth it when there is
    something to wait for."""
    chunk = next_part(content)
    while not chunk and not content.at_eof():
        try:
            async with asyncio.timeout(idle):
                chunk, _ = await content.readchunk()  # b"" at the end of an HTTP chunk
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="408: the request body stopped arriving") from None
    return chunk
