"""electron.aio: task-scoped arenas and a job scheduler for asyncio, uvloop and trio.

``async with aop.arena() as arena:`` lends the current task an arena until the block ends;
:func:`current_arena` finds it from anywhere in the task. :class:`Scheduler` runs submitted
jobs on a fixed set of tasks, each job in its own arena. Waiting and task handling go
through anyio, so everything works unchanged on asyncio, uvloop and trio. Needs the ``aio``
extra (anyio).
"""

from __future__ import annotations

from .._context import current_arena as current_arena
from .._exports import fix_module_names as _fix_module_names
from .._scope import ArenaScope as ArenaScope
from ._scheduler import Job as Job
from ._scheduler import JobCancelled as JobCancelled
from ._scheduler import Scheduler as Scheduler
from ._scheduler import SchedulerClosed as SchedulerClosed
from ._scheduler import SchedulerFull as SchedulerFull
from ._scheduler import SchedulerStatistics as SchedulerStatistics
from ._trim import trim_periodically as trim_periodically
from ._wait import acquire_arena as acquire_arena

__all__ = (
    "ArenaScope",
    "Job",
    "JobCancelled",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerFull",
    "SchedulerStatistics",
    "acquire_arena",
    "current_arena",
    "trim_periodically",
)

_fix_module_names(globals(), __name__)
