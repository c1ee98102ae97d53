"""Every detail of aiohttp that electron relies on and aiohttp does not document, in one place.

pyproject promises ``aiohttp>=3.10``. Each entry says what it is for and the first aiohttp
release that has it (read from aiohttp's history; the tests pass on 3.10.0 and the latest).
If aiohttp changes one of them, this module is the only one to change.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from aiohttp import StreamReader, http_writer, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_urldispatcher import (
    AbstractRoute,
    PrefixedSubAppResource,
    _default_expect_handler,
)

__all__ = (
    "HEADERS_JOIN_BODY",
    "ExpectHandler",
    "continue_expected",
    "in_request_task",
    "is_uvloop",
    "key_of",
    "must_be_empty_body",
    "next_part",
    "own_routes",
    "replace_handler",
    "send_headers_with_body",
    "sent_anything",
    "transport_of",
    "write_joined",
    "writing_paused",
)

#: The key of a request in electron's registries: its response writer. aiohttp makes one
#: writer per HTTP exchange and hands it to every ``request.clone()``, so a clone (a
#: middleware may pass one on) finds the same arena. ``BaseRequest._payload_writer`` (since
#: 3.0) is the public ``request.writer`` without the property's call. ``Middleware.__call__``
#: reads the attribute inline (the one use outside this module): there, for a request that
#: uses no electron memory, calling the property would double the middleware's cost (about
#: 1,000 CPU instructions on 3.11) and calling this function would add a quarter (350).
key_of: Callable[[web.BaseRequest], AbstractStreamWriter] = operator.attrgetter("_payload_writer")

# RequestHandler._handle_request (since 3.7): the coroutine of the task in which aiohttp runs a
# request's middlewares, its handler *and* the writing of its response, so the end of that
# task is the moment the response has been handed to the transport.
_REQUEST_TASK_CODE = RequestHandler._handle_request.__code__


def in_request_task(task: asyncio.Task[object]) -> bool:
    """True if ``task`` is aiohttp's task for one request (it ends once the response is written)."""
    return getattr(task.get_coro(), "cr_code", None) is _REQUEST_TASK_CODE


def sent_anything(writer: AbstractStreamWriter) -> bool:
    """True once ``writer`` has handed any byte of the response to the transport.

    ``AbstractStreamWriter.output_size`` (since 3.5; declared on the ABC but not documented).
    """
    return writer.output_size > 0


def next_part(content: StreamReader) -> bytes:
    """The first part of a request body that aiohttp holds now, as it was handed over
    (``b""`` when it holds none); raises the body's error (a broken or cut-short body).

    ``StreamReader.read_nowait()`` joins every part held into new ``bytes``: a copy, and for
    a large body a fresh mapping whose pages fault in, which a reader that copies each part
    anyway does not need. ``StreamReader._buffer`` and ``_read_nowait_chunk`` (since 3.0;
    ``EmptyStreamReader``, a request without a body, has no ``_buffer``).
    """
    exc = content.exception()
    if exc is not None:
        raise exc
    if not getattr(content, "_buffer", None):  # EmptyStreamReader (no body) has none
        return b""
    return content._read_nowait_chunk(-1)


def transport_of(writer: AbstractStreamWriter) -> asyncio.Transport | None:
    """The transport behind ``writer``, or None once the connection is lost.

    ``StreamWriter.transport`` (since 3.0; not part of ``AbstractStreamWriter``).
    """
    return getattr(writer, "transport", None)


def is_uvloop(transport: object) -> bool:
    """True for a uvloop transport: its ``write``/``writelines`` send memory as it is (no
    copy), and it lets go of it only in the write's completion callback."""
    return type(transport).__module__.startswith("uvloop")


def writing_paused(writer: AbstractStreamWriter) -> bool:
    """True while the transport behind ``writer`` has paused the protocol's writing, which
    ``writer.drain()`` then waits out. False for a writer that is not aiohttp's.

    ``StreamWriter.protocol`` (since 3.0) and ``BaseProtocol._paused`` (since 3.3; the
    public ``writing_paused`` property only exists since 3.11).
    """
    protocol = getattr(writer, "protocol", None)
    return bool(getattr(protocol, "_paused", False))


def must_be_empty_body(response: web.StreamResponse) -> bool:
    """True if ``response`` (prepared) may not have a body: a HEAD request, 1xx, 204 or 304.

    ``StreamResponse._must_be_empty_body`` (since 3.9, set by ``prepare()``).
    """
    return bool(response._must_be_empty_body)


def send_headers_with_body(response: web.StreamResponse, joined: bool) -> None:
    """Have aiohttp send ``response``'s headers in the same write as the body (``joined``)
    or on their own as soon as it is prepared.

    ``StreamResponse._send_headers_immediately`` (since 3.12; aiohttp before 3.12 always
    sends the headers on their own, and setting it there changes nothing).
    """
    response._send_headers_immediately = not joined


#: True where aiohttp sends a response's headers and its first body write joined into new
#: bytes, a copy of the body: ``http_writer.SKIP_WRITELINES`` (since 3.11.12: true on Python
#: < 3.12.9 and 3.13.0-3.13.1, where aiohttp avoids ``transport.writelines()``) with headers
#: held back until the body (``_send_headers_immediately``, since 3.12).
HEADERS_JOIN_BODY: bool = bool(getattr(http_writer, "SKIP_WRITELINES", False)) and hasattr(
    web.StreamResponse, "_send_headers_immediately"
)


def write_joined(writer: AbstractStreamWriter, body: memoryview) -> bool:
    """Hand a response's held-back headers and all of its ``body`` to the transport in one
    ``writelines()`` call: one system call, and on uvloop no copy of ``body`` (its
    ``writelines`` sends the buffers as they are, with ``writev``). Returns False, having
    done nothing, unless this is aiohttp's plain case (headers held back and not sent,
    ``body`` the whole declared length, no compression, chunking or trace signal): the
    caller then writes through aiohttp.

    For transports other than uvloop's aiohttp decides itself (``http_writer.SKIP_WRITELINES``:
    CPython's own ``writelines`` is avoided before 3.12.9 and in 3.13.0-3.13.1).
    ``StreamWriter._headers_buf`` and ``_headers_written`` (since 3.12), ``_compress``,
    ``_on_chunk_sent``, ``chunked``, ``length``, ``buffer_size`` and ``output_size`` (since
    3.0), ``on_body_write`` (since 3.14), as ``StreamWriter.write()`` updates them.
    """
    transport = transport_of(writer)
    headers = getattr(writer, "_headers_buf", None)
    if (
        transport is None
        or not headers
        or getattr(writer, "_headers_written", True)
        or not is_uvloop(transport)
        or getattr(writer, "_compress", None) is not None
        or getattr(writer, "_on_chunk_sent", None) is not None
        or getattr(writer, "on_body_write", None) is not None
        or getattr(writer, "chunked", True)
        or getattr(writer, "length", None) != body.nbytes
        or transport.is_closing()
    ):
        return False
    size = len(headers) + body.nbytes
    writer._headers_buf = None  # type: ignore[attr-defined]
    writer._headers_written = True  # type: ignore[attr-defined]
    writer.length = 0
    writer.buffer_size += size
    writer.output_size += size
    transport.writelines((headers, body))
    return True


#: What aiohttp calls for a request with an ``Expect`` header (a route's ``expect_handler``).
ExpectHandler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse | None]]


def own_routes(
    app: web.Application, skip: Callable[[web.Application], bool]
) -> Iterator[AbstractRoute]:
    """Every route of ``app`` and of its sub-apps (at any depth), except those of a sub-app
    for which ``skip(subapp)`` is true (and of that sub-app's own sub-apps).

    ``PrefixedSubAppResource._app`` (since 3.0; ``MatchedSubAppResource`` is one too): the
    sub-app behind a resource, which aiohttp does not expose.
    """
    for resource in app.router.resources():
        subapp = getattr(resource, "_app", None)
        if isinstance(resource, PrefixedSubAppResource) and isinstance(subapp, web.Application):
            if not skip(subapp):
                yield from own_routes(subapp, skip)
        else:
            yield from resource


def replace_handler(route: AbstractRoute, wrap: Callable[[Handler], Handler]) -> None:
    """Make ``wrap(h)`` the handler of ``route``, whose handler was ``h``.

    aiohttp calls ``route.handler`` for the requests the route matches (through
    ``match_info.handler``). Routes keep it in ``AbstractRoute._handler`` (since 0.x; the
    public ``handler`` property reads it).
    """
    route._handler = wrap(route._handler)  # type: ignore[assignment]


async def continue_expected(request: web.Request) -> None:
    """Answer ``Expect`` as a route does by default: ``100 Continue`` (417 for another
    expectation). aiohttp's ``web_urldispatcher._default_expect_handler`` (since 1.x)."""
    await _default_expect_handler(request)
