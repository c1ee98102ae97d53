"""The options of :class:`~electron.asgi.ElectronMiddleware`, for ``**options`` signatures."""

from __future__ import annotations

from ..aio._request_memory import RequestMemoryOptions

__all__ = ("MiddlewareOptions",)


class MiddlewareOptions(RequestMemoryOptions, total=False):
    """The options :func:`~electron.asgi.setup` passes on to the middleware: those of the
    aiohttp glue."""

    current_arena: bool
