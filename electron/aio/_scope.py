"""ArenaScope: lends the current task (or thread) an arena for the length of a block."""

from __future__ import annotations

from contextvars import Token
from typing import TYPE_CHECKING, Any, Final

from .._context import current_arena_var
from .._memory import check_timeout
from ._wait import wait_for_arena

if TYPE_CHECKING:
    from types import TracebackType

    from .._aop import ArenaOfPools
    from .._arena import Arena

__all__ = ("ArenaScope",)

# Bound once: the fast path runs for every request, and attribute look-ups add up.
_set_current: Final = current_arena_var.set
_reset_current: Final = current_arena_var.reset


class _Spent:
    """Marks a scope that was entered once (successfully or not): it cannot be reused."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<spent>"


# Typed Any so that ``_arena`` can stay ``Arena | None`` for the checker: after the
# ``is None or is _SPENT`` test it is an Arena, with no cast on the fast path.
_SPENT: Final[Any] = _Spent()


class ArenaScope:
    """What ``aop.arena()`` returns: an async (or plain) context manager lending an arena.

    Entering takes an arena (waiting fairly for the budget, :class:`~electron.PoolExhausted`
    after the timeout) and makes it :func:`~electron.aio.current_arena`; leaving gives it
    back and restores the outer scope's arena, on success, error or cancellation alike.
    Leaving never suspends, so a cancellation cannot interrupt the return. Closing the arena
    early inside the block is allowed (the scope then has nothing left to return). A scope
    object is single-use: entering it a second time raises :class:`RuntimeError`.
    """

    # _arena: None before entering, the Arena while inside, _SPENT once entered and left.
    __slots__ = ("_aop", "_arena", "_timeout", "_token")

    _arena: Arena | None
    _token: Token[Arena]

    def __init__(self, aop: ArenaOfPools, timeout: float | None = None) -> None:
        self._aop = aop
        self._timeout = None if timeout is None else check_timeout(timeout)
        self._arena = None

    def _reused(self) -> RuntimeError:
        return RuntimeError("an arena scope can be entered only once; call aop.arena() again")

    async def __aenter__(self) -> Arena:
        if self._arena is not None:
            raise self._reused()
        aop = self._aop
        # Fast path, inline and without awaiting: no one is queued and the budget allows.
        arena = aop._lend_nowait()
        if arena is None:
            self._arena = _SPENT  # taken while it waits: a second enter must fail
            arena = await wait_for_arena(aop, self._timeout)
        self._token = _set_current(arena)
        self._arena = arena
        return arena

    def __enter__(self) -> Arena:
        if self._arena is not None:
            raise self._reused()
        self._arena = _SPENT
        arena = self._aop.get_arena(self._timeout)
        self._token = _set_current(arena)
        self._arena = arena
        return arena

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        arena = self._arena
        if arena is None or arena is _SPENT:
            return
        self._arena = _SPENT
        try:
            _reset_current(self._token)
        except ValueError:
            pass  # left in another context than it was entered in: not ours to restore
        finally:
            if arena._mv is not None:
                self._aop.return_arena(arena)

    # A copy of __exit__ rather than a call to it: one Python call less on every request.
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        arena = self._arena
        if arena is None or arena is _SPENT:
            return
        self._arena = _SPENT
        try:
            _reset_current(self._token)
        except ValueError:
            pass  # left in another context than it was entered in: not ours to restore
        finally:
            if arena._mv is not None:
                self._aop.return_arena(arena)

    def __repr__(self) -> str:
        arena = self._arena
        state = "fresh" if arena is None else "spent" if arena is _SPENT else "inside"
        return f"<ArenaScope {state} of {self._aop!r}>"
