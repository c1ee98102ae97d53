"""What each ASGI server does with a response body that is not ``bytes``, and when it is done.

ASGI says a body is ``bytes``; servers take other bytes-like objects too, and differ in when
they stop reading them. A body that is pooled memory may go back to the pool only once the
server no longer references it, so electron hands such a body to a server as it is only where
the server is known to copy it before its ``send`` returns, and copies it to ``bytes`` first
everywhere else (docs/asgi.md has the table and the evidence):

- uvicorn, h11 protocol: ``h11.Connection.send`` joins the head and body into new bytes;
- uvicorn, httptools protocol, chunked response (no ``Content-Length``): the chunk is joined
  with its framing into new bytes;
- uvicorn, httptools protocol, with ``Content-Length``: the body object itself goes to
  ``transport.write()``, which on uvloop and on asyncio from Python 3.12 keeps referencing it
  after ``send`` returned: **copied**, but for its tail only where the transport is known
  (below);
- hypercorn: ``bytes(message["body"])`` inside ``send``;
- granian: copies in ``send``, but takes a ``memoryview`` through a path hundreds of times
  slower than ``bytes()`` and turns a view of another format into an empty body: **copied**;
- any other server, or a ``send`` wrapped by another middleware: **copied**.

The server is recognised by the module of the object whose method ``send`` is, also through
Starlette's error middleware, whose ``send`` hands every message on as it is (:data:`FORWARDS`).

A server's copy outlives its ``send`` where the transport has not written it yet, out of the
pool's budget. Where the server applies backpressure in ``send`` (:data:`DRAINS`), electron
therefore hands it a pooled body in parts of at most :data:`PART` bytes and ends with an
empty final body, and gives the memory back only once that returned: the server's copy is
then at most one part (plus its transport's high-water mark) per request that holds memory,
and its transport's high-water mark once the memory went back.

uvicorn's httptools protocol on a transport of :data:`FIFO_TRANSPORTS` (uvloop's, asyncio's
selector transport) gets a pooled body with Content-Length as it is, in one ``send``, but
for a copy of its last ``high`` bytes in a ``send`` of their own (:func:`fifo_transport`): the
transport references what ``write()`` got only until it wrote it, in order, and pauses
uvicorn while it holds more than its high-water mark ``high``, which uvicorn's next
``send`` waits out. So once an empty final body returned (or the tail itself, sent as the
final body where the transport had written all the rest), the transport holds at most
``high`` bytes, all of them copies, and no view of the pooled memory, or (uvloop, which lets
go of memory in a write's completion callback that libuv may run on the next iteration) none
one loop iteration later; :func:`views_of` tells the two apart. The memory stays lent until
then, so the budget counts what the transport still has to write; only the tail is outside
it. The part sent as it is must be larger than
``high``: uvloop then either hands it to libuv at once or, queued behind earlier writes,
pauses uvicorn until it has, so it never shares one libuv write with the tail (which would
reference it until the tail was written too); a body of at most ``2 * high`` bytes is copied
whole.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

__all__ = (
    "COPIES_IN_SEND",
    "DRAINS",
    "FIFO_TRANSPORTS",
    "FORWARDS",
    "JOINS_CHUNKS",
    "PART",
    "WRITES_AS_IS",
    "fifo_transport",
    "owner_of",
    "safe_body",
    "server_of",
    "views_of",
)

#: Servers (the module of ``send.__self__``) that copy any body before ``send`` returns.
COPIES_IN_SEND: Final = frozenset(
    {
        "uvicorn.protocols.http.h11_impl",
        "hypercorn.protocol.http_stream",
    }
)
#: Servers that copy a chunked body (a response without Content-Length) in ``send``.
JOINS_CHUNKS: Final = frozenset({"uvicorn.protocols.http.httptools_impl"})
#: Servers whose ``send`` waits for the transport while its buffer is above the high-water
#: mark: uvicorn (httptools and h11) before it writes, while the transport is paused;
#: hypercorn after it writes (``StreamWriter.drain``).
DRAINS: Final = frozenset(
    {
        "uvicorn.protocols.http.httptools_impl",
        "uvicorn.protocols.http.h11_impl",
        "hypercorn.protocol.http_stream",
    }
)
#: ``send`` wrappers that hand every message on as it is to the ``send`` they close over (a
#: variable named ``send``), by module and qualified name: Starlette's error middleware,
#: which :func:`~electron.asgi.setup` puts electron's middleware inside.
FORWARDS: Final = {
    "starlette.middleware.errors": "ServerErrorMiddleware.__call__.<locals>._send",
}
#: The largest part of a pooled body handed to a server of :data:`DRAINS` in one ``send``.
PART: Final = 256 << 10
#: Servers whose ``send`` hands a body with Content-Length to ``transport.write()`` as it is.
WRITES_AS_IS: Final = frozenset({"uvicorn.protocols.http.httptools_impl"})
#: Transports (module and qualified name of the class) that reference what ``write()`` got
#: only until they wrote it, in order, and pause their protocol while they hold more than
#: their high-water mark: uvloop's (one loop iteration longer: see the module docstring) and
#: asyncio's selector transport (which on Python 3.11 copies what the socket did not take).
#: Not the TLS transports, whose buffering electron does not rely on.
FIFO_TRANSPORTS: Final = frozenset(
    {
        "uvloop.loop.TCPTransport",
        "uvloop.loop.UnixTransport",
        "asyncio.selector_events._SelectorSocketTransport",
    }
)


def owner_of(send: Callable[[Any], Awaitable[None]]) -> object | None:
    """The server object whose method ``send`` is, also through the :data:`FORWARDS`
    wrappers around one; None if there is none."""
    owner: object | None = getattr(send, "__self__", None)
    if owner is not None:
        return owner
    code = getattr(send, "__code__", None)
    if code is None or FORWARDS.get(getattr(send, "__module__", "")) != code.co_qualname:
        return None
    closure = getattr(send, "__closure__", None) or ()
    try:
        inner = closure[code.co_freevars.index("send")].cell_contents
    except (ValueError, IndexError):
        return None
    return owner_of(inner)


def server_of(send: Callable[[Any], Awaitable[None]]) -> str:
    """The module of the server object behind ``send`` ("" if there is none: see
    :func:`owner_of`)."""
    owner = owner_of(send)
    return "" if owner is None else type(owner).__module__


def fifo_transport(owner: object) -> asyncio.WriteTransport | None:
    """The transport of ``owner`` (a server of :data:`WRITES_AS_IS`) if it is one of
    :data:`FIFO_TRANSPORTS`, else None (a pooled body is then copied whole)."""
    transport: asyncio.WriteTransport | None = getattr(owner, "transport", None)
    kind = type(transport)
    if f"{kind.__module__}.{kind.__qualname__}" not in FIFO_TRANSPORTS:
        return None
    return transport


_getrefcount: Final[Callable[[object], int] | None] = getattr(sys, "getrefcount", None)


def views_of(view: memoryview) -> int | None:
    """A count of the memoryviews of the memory behind ``view`` (on CPython, the references
    to the managed buffer that all views made from one another share), so that a count
    taken before a body went to a transport and one taken after tell whether the transport
    still holds a view of it; None where it cannot be told."""
    referents = gc.get_referents(view)
    if _getrefcount is None or len(referents) != 1:
        return None
    (managed,) = referents
    if type(managed).__name__ != "managedbuffer":
        return None
    del referents
    return _getrefcount(managed)


def safe_body(body: object, server: str, chunked: bool | Callable[[], bool]) -> object:
    """``body`` as it may be handed to ``server``'s ``send`` and given back once ``send``
    returns: as it is when it is ``bytes`` or the server copies it, else a ``bytes`` copy.
    ``chunked`` says whether the response has no Content-Length (or a callable that does,
    asked only when it matters)."""
    if type(body) is bytes:
        return body
    if server in COPIES_IN_SEND or (
        server in JOINS_CHUNKS and (chunked() if callable(chunked) else chunked)
    ):
        if type(body) is bytearray:
            return body
        mv = body
        if isinstance(mv, memoryview) and mv.format == "B" and mv.ndim == 1 and mv.c_contiguous:
            return body  # one byte per item: len() is its size, as servers count it
    return bytes(body)  # type: ignore[call-overload]
