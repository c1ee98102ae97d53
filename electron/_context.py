"""The context variable that carries the current task's (or thread's) arena.

Its value is normally an :class:`~electron.Arena` (set by ``aop.arena()`` scopes). A web
integration may instead set a *lazy marker*, an object that is not an Arena and stands for
"the request's arena, lent on first use": electron's aiohttp middleware sets the request,
its ASGI middleware its per-request state. Each integration registers how its marker class
becomes an arena with :func:`register_lazy_marker`, so several can serve in one process.
Read the variable through :func:`current_arena`, never with ``current_arena_var.get()``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from ._arena import Arena

__all__ = ("current_arena", "current_arena_var", "register_lazy_marker")

_M = TypeVar("_M")

#: The arena of the innermost enclosing ``aop.arena()`` scope (or a lazy marker, see the
#: module docstring); unset outside any scope.
current_arena_var: ContextVar[Arena] = ContextVar("electron.current_arena")

_NO_ARENA = (
    "no current arena: call this inside 'async with aop.arena():'; in a request handler use "
    "request_arena(request) of electron.aio.aiohttp or electron.asgi, or install their "
    "middleware with setup(app, aop, current_arena=True)"
)

#: A lazy marker's class -> the function that lends the arena it stands for.
_resolvers: dict[type, Callable[[Any], Arena]] = {}


def register_lazy_marker(marker_type: type[_M], resolver: Callable[[_M], Arena]) -> None:
    """Make ``resolver(marker)`` what :func:`current_arena` returns when the variable holds
    an instance of ``marker_type`` (or of a subclass).

    The resolver lends the arena (raising :class:`~electron.ArenaClosed` once its request
    ended, :class:`~electron.PoolExhausted` beyond the budget) and may set the variable to
    it so that the next lookup in the same context is direct.
    """
    _resolvers[marker_type] = resolver


def current_arena() -> Arena:
    """The arena of the innermost enclosing ``aop.arena()`` scope of this task or thread.

    Inside a request served by electron's aiohttp or ASGI middleware installed with
    ``current_arena=True`` it is the request's arena, lent on this first use. Raises
    :class:`LookupError` outside any scope.
    """
    try:
        value: object = current_arena_var.get()
    except LookupError:
        raise LookupError(_NO_ARENA) from None
    if isinstance(value, Arena):
        return value
    for cls in type(value).__mro__:
        resolver = _resolvers.get(cls)
        if resolver is not None:
            return resolver(value)
    raise LookupError(f"no current arena: the context holds {value!r}")
