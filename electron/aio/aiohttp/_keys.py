"""Typed keys under which :func:`setup` stores the pool and the middleware on the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..._arena_of_pools import ArenaOfPools

if TYPE_CHECKING:
    from ._middleware import Middleware

__all__ = ("AOP_KEY", "MIDDLEWARE_KEY")

#: The app's :class:`~electron.ArenaOfPools`, stored by :func:`setup`.
AOP_KEY: web.AppKey[ArenaOfPools] = web.AppKey("electron.aop", ArenaOfPools)
#: The app's :class:`Middleware` (for its statistics), stored by :func:`setup`.
MIDDLEWARE_KEY: web.AppKey[Middleware] = web.AppKey("electron.middleware")
