"""ArenaScope: lends the current task (or thread) an arena for the length of a block.

It needs no anyio until a task has to wait for the budget: ``electron.aio`` is imported on
that slow path only. This module is never compiled: with the compiled core, the scope is
its C twin in ``electron/_cscope.c`` (see :func:`scope_factory`), which this source
describes and the pure-Python core runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Generic,
    Protocol,
    Self,
    TypeVar,
    cast,
    overload,
)

from ._context import current_arena_var
from ._done import DONE
from ._memory import COMPILED_HERE, REVIVE, check_timeout

if TYPE_CHECKING:
    from contextvars import Token
    from types import TracebackType

    from ._aop import ArenaOfPools
    from ._arena import Arena

__all__ = ("ArenaScope", "scope_factory")

# Bound once: no method lookup per scope.
_set_arena: Final = current_arena_var.set
_reset_arena: Final = current_arena_var.reset
_DONE: Final = DONE

_FRESH: Final = 0
_INSIDE: Final = 1
_SPENT: Final = 2  # entered once (successfully or not): cannot be entered again


class _BoundEnter(Protocol):
    """What type checkers see for ``scope.__aenter__``: no arguments (it is the scope)."""

    def __call__(self) -> Coroutine[Any, Any, Arena]: ...


class _BoundExit(Protocol):
    """What type checkers see for ``scope.__aexit__``: three arguments (it is the scope)."""

    def __call__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Coroutine[Any, Any, None]: ...


_Bound = TypeVar("_Bound", _BoundEnter, _BoundExit)


async def _ready(arena: Arena) -> Arena:
    """What ``__aenter__`` returns when it took the arena at once."""
    return arena


class _Itself(Generic[_Bound]):
    """``ArenaScope.__aenter__``/``__aexit__``: looked up on a scope, the scope itself.

    On the class each can be called as its method would be, with the scope first, as
    ``contextlib.AsyncExitStack`` calls it. ``_Bound`` is what type checkers see on a scope:
    the method's own signature, so that the two names are not confused.
    """

    __slots__ = ()

    @overload
    def __get__(self, scope: None, owner: type[ArenaScope] | None = None) -> Self: ...
    @overload
    def __get__(self, scope: ArenaScope, owner: type[ArenaScope] | None = None) -> _Bound: ...
    def __get__(
        self, scope: ArenaScope | None, owner: type[ArenaScope] | None = None
    ) -> Self | _Bound:
        return self if scope is None else cast(_Bound, scope)


class _Enter(_Itself[_BoundEnter]):
    """``ArenaScope.__aenter__`` (see ``_Itself``)."""

    __slots__ = ()

    def __call__(self, scope: ArenaScope) -> Coroutine[Any, Any, Arena]:
        return scope._aenter()


class _Exit(_Itself[_BoundExit]):
    """``ArenaScope.__aexit__`` (see ``_Itself``)."""

    __slots__ = ()

    def __call__(
        self,
        scope: ArenaScope,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Coroutine[Any, Any, None]:
        scope._leave()
        return _DONE


_ENTER_METHOD: Final = _Enter()
_EXIT_METHOD: Final = _Exit()
_ENTERING: Final = object()  # what ArenaScope.__call__ gets for its first argument when entering


class ArenaScope:
    """What ``aop.arena()`` returns: an async (or plain) context manager lending an arena.

    Entering takes an arena (waiting fairly for the budget, :class:`~electron.PoolExhausted`
    after the timeout) and makes it :func:`~electron.aio.current_arena`; leaving gives it
    back and restores the outer scope's arena, on success, error or cancellation alike.
    Leaving never suspends, so a cancellation cannot interrupt the return. Closing the arena
    early inside the block is allowed (the scope then has nothing left to return). A scope
    object is single-use: entering it a second time raises :class:`RuntimeError`.

    ``scope.__aenter__`` and ``scope.__aexit__`` are the scope itself, called with no
    arguments to enter and with three to leave, so that ``async with`` allocates no bound
    methods (on CPython 3.11 to 3.13; 3.14 binds none anyway). The two names are therefore
    the same object: what a call does depends on its arguments, not on the name it was
    looked up by. On the class they can be called as the methods would be. A scope cannot be
    copied (a copy would leave with the same arena and context token).
    """

    __slots__ = ("_aop", "_arena", "_state", "_timeout", "_token")

    def __init__(self, aop: ArenaOfPools, timeout: float | None = None) -> None:
        self._aop = aop
        self._timeout = None if timeout is None else check_timeout(timeout)
        self._arena: Arena | None = None
        self._token: Token[Arena] | None = None
        self._state = _FRESH

    def _reused(self) -> RuntimeError:
        return RuntimeError("an arena scope can be entered only once; call aop.arena() again")

    # The scope is its own __aenter__ and __aexit__: looked up on a scope, both give the scope
    # itself, which enters when called with no arguments and leaves when called with three.
    # Methods would be bound anew for every ``async with``: two method objects allocated
    # and freed per scope, a tenth of what a scope costs. And since whoever holds one of them
    # holds the scope itself, the pool's check that nothing refers to a scope it reuses
    # (``ScopeFactory`` in electron/_cscope.c) still sees every holder.
    __aenter__: ClassVar[_Enter] = _ENTER_METHOD
    __aexit__: ClassVar[_Exit] = _EXIT_METHOD

    def __call__(
        self, exc_type: object = _ENTERING, exc: object = _ENTERING, tb: object = _ENTERING
    ) -> Coroutine[Any, Any, Any]:
        """What ``scope.__aenter__()`` and ``scope.__aexit__(exc_type, exc, tb)`` call: with no
        arguments, enter; with three, leave. ``async with`` is the way to use it."""
        if exc_type is _ENTERING or exc is _ENTERING or tb is _ENTERING:
            if exc_type is _ENTERING and exc is _ENTERING and tb is _ENTERING:
                return self._aenter()
            raise TypeError("an arena scope is called with no arguments (enter) or three (exit)")
        self._leave()
        return _DONE

    def _aenter(self) -> Coroutine[Any, Any, Arena]:
        # Not a coroutine function: the arena is taken here, in the call, when it can be
        # taken at once. Waiting is left to an interpreted coroutine: compiled code would
        # pass a cancellation on to what it awaits through the three-argument throw(), which
        # CPython 3.12 and later deprecate.
        if self._state != _FRESH:
            raise self._reused()
        self._state = _SPENT  # until inside: a second enter while this one waits must fail
        arena = self._aop._lend_nowait()  # no one queued and the budget allows: no wait
        if arena is None:
            from .aio._wait import enter_when_lent  # anyio is needed from here on only

            return enter_when_lent(self)
        self._enter(arena)
        return _ready(arena)

    def __enter__(self) -> Arena:
        if self._state != _FRESH:
            raise self._reused()
        self._state = _SPENT
        arena = self._aop.get_arena(self._timeout)
        self._enter(arena)
        return arena

    def _enter(self, arena: Arena) -> None:
        self._token = _set_arena(arena)
        self._arena = arena
        self._state = _INSIDE

    def _leave(self) -> None:
        """Restore the outer arena and give this scope's back (unless closed already)."""
        arena = self._arena
        token = self._token
        if self._state != _INSIDE or arena is None or token is None:
            return
        self._state = _SPENT
        self._arena = None
        self._token = None
        try:
            _reset_arena(token)
        except ValueError:
            pass  # left in another context than it was entered in: not ours to restore
        finally:
            if arena._mv is not None:
                self._aop.return_arena(arena)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    def __copy__(self) -> ArenaScope:
        raise TypeError("an arena scope cannot be copied; call aop.arena() for another")

    def __deepcopy__(self, memo: object) -> ArenaScope:
        raise TypeError("an arena scope cannot be copied; call aop.arena() for another")

    def __repr__(self) -> str:
        state = ("fresh", "inside", "spent")[self._state]
        return f"<ArenaScope {state} of {self._aop!r}>"


def _c_scope() -> Any:
    """``electron._cscope`` when the compiled core runs and it was built with it, else None."""
    if not COMPILED_HERE:
        return None
    try:
        from . import _cscope  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - setup.py builds it with the compiled core
        return None
    return _cscope


_C: Final = _c_scope()
_configured = False


def scope_factory(aop: ArenaOfPools) -> Callable[[float | None], ArenaScope]:
    """What ``aop.arena()`` calls with its checked timeout to get a scope.

    With the compiled core, the C ``ScopeFactory``: it hands out the scope it made last
    again once nothing else refers to it (where :data:`~electron._memory.REVIVE` allows), as
    good as new. The pure-Python core makes a new ``ArenaScope`` each time.
    """
    global _configured
    if _C is None:
        return functools.partial(ArenaScope, aop)
    if not _configured:
        from ._aop import ArenaOfPools  # imported by now: aop is one

        _C.configure(
            var=current_arena_var,
            lend_nowait=ArenaOfPools._lend_nowait,
            get_arena=ArenaOfPools.get_arena,
            return_from_scope=ArenaOfPools._return_from_scope,
            done=_DONE,
            check_timeout=check_timeout,
            revive=REVIVE,
        )
        _configured = True
    factory: Callable[[float | None], ArenaScope] = _C.ScopeFactory(aop)
    return factory


if not TYPE_CHECKING and _C is not None:
    ArenaScope = _C.ArenaScope  # the class every scope is an instance of (see above)
