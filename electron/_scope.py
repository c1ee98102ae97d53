"""ArenaScope: lends the current task (or thread) an arena for the length of a block."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import check_timeout
from ._context import current_arena_var

if TYPE_CHECKING:
    from contextvars import Token
    from types import TracebackType

    from ._arena import Arena
    from ._arena_of_pools import ArenaOfPools

__all__ = ("ArenaScope",)


class ArenaScope:
    """What ``aop.arena()`` returns: an async (or plain) context manager lending an arena.

    Entering takes an arena (waiting fairly for the budget, :class:`~electron.PoolExhausted`
    after the timeout) and makes it :func:`~electron.aio.current_arena`; leaving gives it
    back and restores the outer scope's arena, on success, error or cancellation alike.
    Leaving never suspends, so a cancellation cannot interrupt the return. Closing the arena
    early inside the block is allowed. A scope is single-use: entering it a second time
    raises :class:`RuntimeError`.
    """

    __slots__ = ("_aop", "_arena", "_entered", "_timeout", "_token")

    def __init__(self, aop: ArenaOfPools, timeout: object = None) -> None:
        self._aop = aop
        self._timeout = check_timeout(timeout)
        self._arena: Arena | None = None
        self._token: Token[Arena] | None = None
        self._entered = False

    def _start(self) -> None:
        if self._entered:
            raise RuntimeError("an arena scope can be entered only once; call aop.arena() again")
        self._entered = True

    def _enter(self, arena: Arena) -> Arena:
        self._token = current_arena_var.set(arena)
        self._arena = arena
        return arena

    async def __aenter__(self) -> Arena:
        self._start()
        arena = self._aop._lend_nowait()  # no one queued and the budget allows: no wait
        if arena is None:
            from .aio._wait import wait_for_arena  # anyio is needed from here on only

            arena = await wait_for_arena(self._aop, self._timeout)
        return self._enter(arena)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    def __enter__(self) -> Arena:
        self._start()
        return self._enter(self._aop.get_arena(self._timeout))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    def _leave(self) -> None:
        """Restore the outer arena and give this scope's back (unless closed already)."""
        arena, token = self._arena, self._token
        if arena is None or token is None:
            return
        self._arena = self._token = None
        try:
            current_arena_var.reset(token)
        except ValueError:
            pass  # left in another context than it was entered in: not ours to restore
        finally:
            if not arena.closed:
                self._aop.return_arena(arena)

    def __copy__(self) -> ArenaScope:
        raise TypeError("an arena scope cannot be copied; call aop.arena() for another")

    def __deepcopy__(self, memo: object) -> ArenaScope:
        raise TypeError("an arena scope cannot be copied; call aop.arena() for another")

    def __repr__(self) -> str:
        state = "inside" if self._arena is not None else "spent" if self._entered else "fresh"
        return f"<ArenaScope {state} of {self._aop!r}>"
