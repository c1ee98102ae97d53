"""electron.aio: task-scoped arenas for asyncio, uvloop and trio (through anyio).

``async with aop.arena() as arena:`` lends the current task an arena until the block ends;
:func:`current_arena` finds it from anywhere in the task. Needs the ``aio`` extra (anyio).
"""

from __future__ import annotations

from .._context import current_arena as current_arena
from ._scope import ArenaScope as ArenaScope
from ._wait import acquire_arena as acquire_arena

__all__ = ("ArenaScope", "acquire_arena", "current_arena")
