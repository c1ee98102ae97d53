"""The compiled core's ArenaScope, written in C (``electron/_cscope.c``).

``electron/_scope.py`` is the reference and every scope test runs against both (CI runs the
suite on the compiled and the pure core). These pin what is particular to the C one: that it
is the one in use, and that the finished awaitable it reuses between scopes is never shared
with anyone still holding it.
"""

from __future__ import annotations

import sysconfig

import pytest

import electron
from electron import ArenaOfPools
from electron.aio import ArenaScope, current_arena

pytestmark = pytest.mark.anyio

C_SCOPE = electron.COMPILED and not sysconfig.get_config_var("Py_GIL_DISABLED")
needs_c = pytest.mark.skipif(not C_SCOPE, reason="the C scope comes with the compiled core")


def test_the_compiled_core_uses_the_c_scope() -> None:
    from electron import _scope

    assert (_scope._C is not None) == C_SCOPE
    with ArenaOfPools() as aop:
        assert type(aop.arena()) is ArenaScope
        assert ArenaScope.__module__ == "electron._scope"
        assert ArenaScope.__doc__


@needs_c
async def test_an_unawaited_enter_is_never_handed_to_a_later_scope(aop: ArenaOfPools) -> None:
    scope = aop.arena()
    held = scope.__aenter__()  # entered; its awaitable kept, not awaited
    first = current_arena()
    await scope.__aexit__(None, None, None)
    del scope
    async with aop.arena() as second:  # may reuse the scope, never the held awaitable
        assert second is not first
        assert current_arena() is second
    assert await held is first  # what it was made with, the first scope's (dead) arena
    assert first.closed
    assert aop.stats().active_arenas == 0


@needs_c
async def test_the_enter_awaitable_is_a_finished_coroutine_lookalike(aop: ArenaOfPools) -> None:
    scope = aop.arena()
    ready = scope.__aenter__()
    with pytest.raises(StopIteration) as stop:
        ready.send(None)
    arena = stop.value.value
    assert arena is current_arena()
    with pytest.raises(StopIteration) as again:
        ready.send(None)  # finished: it gives nothing more
    assert again.value.value is None
    ready.close()
    with pytest.raises(KeyError):
        ready.throw(KeyError("passed through"))
    await scope.__aexit__(None, None, None)
    assert aop.stats().active_arenas == 0


@needs_c
def test_on_the_class_only_a_scope_is_accepted() -> None:
    with pytest.raises(TypeError, match="takes an ArenaScope"):
        ArenaScope.__aenter__(object())  # type: ignore[arg-type,unused-coroutine]
    with pytest.raises(TypeError, match="takes an ArenaScope"):
        ArenaScope.__aexit__(object(), None, None, None)  # type: ignore[arg-type,unused-coroutine]


@needs_c
async def test_enter_is_only_for_a_scope_waiting_for_its_arena(aop: ArenaOfPools) -> None:
    # ``_enter`` is what the waiting path (electron.aio._wait) calls; anything else is refused
    # without touching the scope (overwriting an entered scope's arena would lose it).
    scope = aop.arena()
    arena = aop.get_arena()
    with pytest.raises(RuntimeError, match="waiting for its arena"):
        scope._enter(arena)  # fresh: not waiting
    async with scope as inside:
        with pytest.raises(RuntimeError, match="waiting for its arena"):
            scope._enter(arena)
        assert current_arena() is inside
    aop.return_arena(arena)
    assert aop.stats().active_arenas == 0
