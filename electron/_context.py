"""The context variable that carries the current task's (or thread's) arena."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._arena import Arena

__all__ = ("current_arena", "current_arena_var")

#: The arena of the innermost enclosing ``aop.arena()`` scope; unset outside any scope.
current_arena_var: ContextVar[Arena] = ContextVar("electron.current_arena")


def current_arena() -> Arena:
    """The arena of the innermost enclosing ``aop.arena()`` scope of this task or thread.

    Raises :class:`LookupError` outside any scope.
    """
    try:
        return current_arena_var.get()
    except LookupError:
        raise LookupError(
            "no current arena: call this inside 'async with aop.arena():' (or a request "
            "handled by electron's aiohttp middleware)"
        ) from None
