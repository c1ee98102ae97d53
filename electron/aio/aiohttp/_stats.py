"""MiddlewareStatistics and RouteUsage: what the aiohttp middleware has done.

Framework-free, shared with ``electron.asgi``: defined in ``electron.aio._request_memory``.
"""

from __future__ import annotations

from .._request_memory import OTHER_ROUTES as OTHER_ROUTES
from .._request_memory import MiddlewareStatistics as MiddlewareStatistics
from .._request_memory import RouteUsage as RouteUsage

__all__ = ("OTHER_ROUTES", "MiddlewareStatistics", "RouteUsage")
