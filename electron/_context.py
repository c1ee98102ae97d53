"""The context variable that carries the current task's (or thread's) arena.

Its value is normally an :class:`~electron.Arena` (set by ``aop.arena()`` scopes). An
integration may instead set a *lazy marker*, an object that is not an Arena and stands for
"an arena will be lent on first use" (electron's aiohttp middleware sets the request); it
registers a resolver with :func:`set_lazy_resolver` that lends the arena when
:func:`current_arena` first meets the marker. Read the variable through
:func:`current_arena`, never with ``current_arena_var.get()`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from ._arena import Arena

__all__ = ("current_arena", "current_arena_var", "set_lazy_resolver")

#: The arena of the innermost enclosing ``aop.arena()`` scope (or a lazy marker, see the
#: module docstring); unset outside any scope.
current_arena_var: ContextVar[Arena] = ContextVar("electron.current_arena")

_NO_ARENA = (
    "no current arena: call this inside 'async with aop.arena():'; in an aiohttp handler "
    "use electron.aio.aiohttp.request_arena(request), or install the middleware with "
    "setup(app, aop, current_arena=True)"
)


def _no_resolver(marker: object) -> Arena:
    raise LookupError(_NO_ARENA)


_resolve_lazy: Callable[[object], Arena] = _no_resolver


def set_lazy_resolver(resolver: Callable[[object], Arena]) -> None:
    """Make ``resolver(marker)`` the way a lazy marker found in the variable becomes an arena.

    The resolver lends the arena (raising :class:`LookupError`, :class:`~electron.PoolExhausted`
    or :class:`~electron.ArenaClosed` as fits) and may set the variable to it so that the
    next lookup in the same context is direct. One resolver serves every marker kind.
    """
    global _resolve_lazy
    _resolve_lazy = resolver


def current_arena() -> Arena:
    """The arena of the innermost enclosing ``aop.arena()`` scope of this task or thread.

    Inside a request handled by electron's aiohttp middleware installed with
    ``current_arena=True`` it is the request's arena, lent on this first use. Raises
    :class:`LookupError` outside any scope.
    """
    try:
        value: object = current_arena_var.get()
    except LookupError:
        raise LookupError(_NO_ARENA) from None
    if isinstance(value, Arena):
        return value
    return _resolve_lazy(value)
