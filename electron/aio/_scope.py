"""ArenaScope: lends the current task (or thread) an arena for the length of a block."""

from __future__ import annotations

from contextvars import Token
from typing import TYPE_CHECKING

from .._context import current_arena_var
from ._wait import acquire_arena

if TYPE_CHECKING:
    from .._aop import ArenaOfPools
    from .._arena import Arena

__all__ = ("ArenaScope",)


class ArenaScope:
    """What ``aop.arena()`` returns: an async (or plain) context manager lending an arena.

    Entering takes an arena (waiting fairly for the budget, :class:`~electron.PoolExhausted`
    after the timeout) and makes it :func:`~electron.aio.current_arena`; leaving gives it
    back and restores the outer scope's arena, on success, error or cancellation alike.
    Leaving has no ``await``, so a cancellation cannot interrupt the return. A scope object
    is single-use.
    """

    __slots__ = ("_aop", "_arena", "_timeout", "_token", "_used")

    def __init__(self, aop: ArenaOfPools, timeout: float | None) -> None:
        self._aop = aop
        self._timeout = timeout
        self._arena: Arena | None = None
        self._token: Token[Arena] | None = None
        self._used = False

    def _enter(self, arena: Arena) -> Arena:
        self._arena = arena
        self._token = current_arena_var.set(arena)
        return arena

    def _check_fresh(self) -> None:
        if self._used:
            raise RuntimeError("an arena scope can be entered only once; call aop.arena() again")
        self._used = True

    async def __aenter__(self) -> Arena:
        self._check_fresh()
        return self._enter(await acquire_arena(self._aop, self._timeout))

    def __enter__(self) -> Arena:
        self._check_fresh()
        return self._enter(self._aop.get_arena(self._timeout))

    def __exit__(self, *exc_info: object) -> None:
        arena, token = self._arena, self._token
        self._arena = self._token = None
        if arena is None or token is None:
            return
        try:
            current_arena_var.reset(token)
        except ValueError:
            pass  # exited in another context than it was entered in: not ours to restore
        finally:
            self._aop.return_arena(arena)

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)
