"""Child tasks inherit the scope's arena through the context, and cannot outlive it safely.

A child task started inside a scope gets a copy of the parent's context, so it sees the
parent's arena. Once the parent's scope has ended, that arena is dead for the child too
(ArenaClosed, views ValueError), and memory the child still reaches through a derived view
or a numpy array is never handed to another request.
"""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from electron import Arena, ArenaClosed, ArenaOfPools
from electron.aio import current_arena
from tests.support import JOIN

pytestmark = pytest.mark.anyio


async def test_a_child_task_sees_the_parents_arena(aop: ArenaOfPools) -> None:
    seen = []
    child_done = anyio.Event()

    async def child() -> None:
        seen.append(current_arena())
        async with aop.arena() as own:  # its own scope: its own arena, parent untouched
            seen.append(own)
        seen.append(current_arena())
        child_done.set()

    async with anyio.create_task_group() as tg, aop.arena() as parent:
        tg.start_soon(child)
        with anyio.fail_after(JOIN):
            await child_done.wait()
        assert current_arena() is parent
    assert seen[0] is parent
    assert seen[1] is not parent
    assert seen[2] is parent
    assert aop.statistics().active_arenas == 0


async def test_a_child_outliving_the_scope_gets_arena_closed_and_dead_views(
    aop: ArenaOfPools,
) -> None:
    parent_done = anyio.Event()
    child_ready = anyio.Event()
    results: dict[str, object] = {}

    async def child() -> None:
        arena = current_arena()
        view = arena.alloc(32)
        view[:4] = b"abcd"
        child_ready.set()
        await parent_done.wait()
        results["same"] = current_arena() is arena  # the copied context still names it
        with pytest.raises(ArenaClosed):
            arena.alloc(8)
        with pytest.raises(ArenaClosed):
            arena.new(bytearray, 4)
        with pytest.raises(ValueError, match="released"):
            view[0]
        with pytest.raises(ValueError, match="released"):
            view[:4] = b"wxyz"
        results["checked"] = True

    async with anyio.create_task_group() as tg:
        async with aop.arena():
            tg.start_soon(child)
            with anyio.fail_after(JOIN):
                await child_ready.wait()
        parent_done.set()
    assert results == {"same": True, "checked": True}
    assert aop.statistics().active_arenas == 0


async def test_a_child_reaching_a_dead_arena_only_through_its_context_never_sees_it_lent(
    aop: ArenaOfPools,
) -> None:
    # A child task's copied context refers to the parent's dead handle, so no later scope
    # may get that object (every loan is a new Arena): the child would be handed someone
    # else's live arena. The child keeps no reference of its own between its looks.
    steps = 8  # several loans of the same memory after the parent's scope ended
    go = [anyio.Event() for _ in range(steps)]
    looked = [anyio.Event() for _ in range(steps)]
    child_ready = anyio.Event()
    lent: list[Arena] = []
    seen: list[tuple[bool, bool]] = []

    async def child() -> None:
        child_ready.set()
        for i in range(steps):
            await go[i].wait()
            arena = current_arena()
            seen.append((arena.closed, arena is lent[i]))
            del arena
            looked[i].set()

    async with anyio.create_task_group() as tg:
        async with aop.arena():
            tg.start_soon(child)
            with anyio.fail_after(JOIN):
                await child_ready.wait()
        for i in range(steps):
            async with aop.arena() as other:
                lent.append(other)
                del other
                go[i].set()
                with anyio.fail_after(JOIN):
                    await looked[i].wait()
    assert seen == [(True, False)] * steps
    assert aop.statistics().active_arenas == 0


@pytest.mark.parametrize("holder", ["derived memoryview", "numpy array"])
async def test_memory_a_child_still_reaches_is_never_lent_again(holder: str) -> None:
    size = 4096
    with ArenaOfPools(arena_size=size, pool_size=1, max_arenas=1) as aop:
        parent_done = anyio.Event()
        child_ready = anyio.Event()
        child_wrote = anyio.Event()
        kept: list[object] = []

        async def child() -> None:
            view = current_arena().alloc(size)
            # A derived view (hazard 3: release() of the original does not revoke it) or a
            # numpy array keeps the region exported after the scope ends.
            kept.append(memoryview(view) if holder == "derived memoryview" else np.asarray(view))
            child_ready.set()
            await parent_done.wait()
            # Scribble over all of it after the owner's scope ended.
            if isinstance(kept[0], memoryview):
                kept[0][:] = b"\x55" * size
            else:
                kept[0][:] = 0x55  # type: ignore[index]
            child_wrote.set()

        async with anyio.create_task_group() as tg:
            async with aop.arena():
                tg.start_soon(child)
                with anyio.fail_after(JOIN):
                    await child_ready.wait()
            assert aop.statistics().quarantined == 1  # held back, not pooled
            parent_done.set()
            # The next request: its memory reads zero and nothing the child does reaches it.
            async with aop.arena() as arena:
                mine = arena.alloc(size)
                assert mine.tobytes() == bytes(size)
                mine[:] = b"\xaa" * size
                await child_wrote.wait()
                assert mine.tobytes() == b"\xaa" * size
        kept.clear()
        stats = aop.statistics()
        assert stats.active_arenas == 0
        assert stats.quarantine_events >= 1


async def test_a_task_started_outside_a_scope_does_not_see_it(aop: ArenaOfPools) -> None:
    started = anyio.Event()
    release = anyio.Event()
    checked = anyio.Event()
    seen: list[BaseException] = []

    async def other() -> None:
        started.set()
        await release.wait()
        try:
            current_arena()
        except LookupError as exc:
            seen.append(exc)
        checked.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await started.wait()
        async with aop.arena() as arena:
            release.set()
            with anyio.fail_after(JOIN):
                await checked.wait()  # it looked while this scope was open
            assert current_arena() is arena
    assert len(seen) == 1
