"""The options of :class:`~electron.asgi.ElectronMiddleware`, for ``**options`` signatures."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

__all__ = ("MiddlewareOptions",)


class MiddlewareOptions(TypedDict, total=False):
    """The options :func:`~electron.asgi.setup` passes on to the middleware."""

    acquire_timeout: float | None
    retry_after: int
    body_limit: int
    body_timeout: float | None
    exclude: Iterable[str]
    max_routes: int
