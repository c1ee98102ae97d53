"""electron.aio.aiohttp: an arena per aiohttp request, and pooled bodies sent without copying.

``setup(app, aop)`` gives every route request-scoped memory. Inside a handler
:func:`request_arena` (and, with ``setup(app, aop, current_arena=True)``,
``electron.aio.current_arena()``) is the request's arena (lent on first use),
:func:`request_buffer` and :func:`read_body` give pooled buffers that go back with it, and
:class:`PooledResponse` sends pooled memory without copying; a route that reads its body
with :func:`read_body` refuses an oversized one before it is sent with
``expect_handler=refuse_oversized()``. Everything goes back only once
the transport no longer references it. Needs the ``aiohttp`` extra.
"""

from __future__ import annotations

from ..._exports import fix_module_names as _fix_module_names
from ._expect import refuse_oversized as refuse_oversized
from ._flush import wait_flushed as wait_flushed
from ._middleware import AOP_KEY as AOP_KEY
from ._middleware import MIDDLEWARE_KEY as MIDDLEWARE_KEY
from ._middleware import Middleware as Middleware
from ._middleware import MiddlewareOptions as MiddlewareOptions
from ._middleware import middleware as middleware
from ._middleware import setup as setup
from ._request import read_body as read_body
from ._request import request_arena as request_arena
from ._request import request_buffer as request_buffer
from ._response import PooledResponse as PooledResponse
from ._stats import MiddlewareStatistics as MiddlewareStatistics
from ._stats import RouteUsage as RouteUsage

__all__ = (
    "AOP_KEY",
    "MIDDLEWARE_KEY",
    "Middleware",
    "MiddlewareOptions",
    "MiddlewareStatistics",
    "PooledResponse",
    "RouteUsage",
    "middleware",
    "read_body",
    "refuse_oversized",
    "request_arena",
    "request_buffer",
    "setup",
    "wait_flushed",
)

_fix_module_names(globals(), __name__)
