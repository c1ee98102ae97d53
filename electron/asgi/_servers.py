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
  after ``send`` returned: **copied**;
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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

__all__ = ("COPIES_IN_SEND", "DRAINS", "FORWARDS", "JOINS_CHUNKS", "PART", "safe_body", "server_of")

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


def server_of(send: Callable[[Any], Awaitable[None]]) -> str:
    """The module of the server object behind ``send`` ("" if it is not a bound method, or
    one of the :data:`FORWARDS` wrappers around one)."""
    owner = getattr(send, "__self__", None)
    if owner is not None:
        return type(owner).__module__
    code = getattr(send, "__code__", None)
    if code is None or FORWARDS.get(getattr(send, "__module__", "")) != code.co_qualname:
        return ""
    closure = getattr(send, "__closure__", None) or ()
    try:
        inner = closure[code.co_freevars.index("send")].cell_contents
    except (ValueError, IndexError):
        return ""
    return server_of(inner)


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
