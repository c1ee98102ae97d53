"""Leak detection: which loans to trace, how to say where they came from, how to report.

Levels (``ArenaOfPools(leak_detection=...)`` or ``ELECTRON_LEAK_DETECTION``):

- ``off``: no tracing. A lent arena or buffer that is garbage-collected without being given
  back is still reclaimed and counted (``aop.statistics().leaks_detected``), not reported.
- ``simple``: about 1 in 100 loans records a short stack (where it was taken and, once given
  back, where that happened); a leak of a traced loan is reported.
- ``paranoid``: every loan records a full stack and every leak is reported; memory held back
  because something still exports it is filled with a poison byte so a use after return is
  visible.

A report is a :class:`ResourceWarning` plus a record on the ``electron`` logger.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from collections import deque
from types import FrameType
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from ._arena_of_pools import ArenaOfPools

__all__ = (
    "ENV_VAR",
    "LEVELS",
    "POISON",
    "REPORTS",
    "TRACKER",
    "LeakDetection",
    "Trace",
    "capture",
    "level_from",
    "report_leak",
)

LeakDetection = Literal["off", "simple", "paranoid"]
LEVELS: Final[dict[str, int]] = {"off": 0, "simple": 1, "paranoid": 2}
ENV_VAR: Final = "ELECTRON_LEAK_DETECTION"
#: In ``simple`` mode, one loan in this many is traced.
SAMPLE_EVERY: Final = 100
#: The byte quarantined memory is filled with in ``paranoid`` mode (like jemalloc's junk fill).
POISON: Final = 0xDB

logger: Final = logging.getLogger("electron")

#: The most recent leak reports, newest last (read by ``electron.testing``).
REPORTS: Final[deque[str]] = deque(maxlen=1000)


class _Tracker:
    """Pools created while ``enabled`` is set are remembered (the pytest plugin's leak check)."""

    enabled = False
    pools: list[ArenaOfPools] = []  # noqa: RUF012 - one process-wide list, on purpose


TRACKER: Final = _Tracker()


def level_from(value: str | None) -> int:
    """The numeric level for ``value``, or for ``$ELECTRON_LEAK_DETECTION`` when None."""
    from ._errors import InvalidArgument

    name = value if value is not None else os.environ.get(ENV_VAR, "off")
    try:
        return LEVELS[name.strip().lower()]
    except (KeyError, AttributeError):
        source = "leak_detection" if value is not None else ENV_VAR
        raise InvalidArgument(source, name, "one of 'off', 'simple', 'paranoid'") from None


_PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__))


_SHORT: Final = 4  # frames kept in simple mode
_LONG: Final = 64  # frames kept in paranoid mode


class Trace:
    """Where a loan was taken or given back: raw frames, formatted only when shown.

    Capturing costs a walk over a few frame objects; reading source lines (the expensive
    part of :mod:`traceback`) waits until a leak is reported or an error raised.
    """

    __slots__ = ("frames",)

    def __init__(self, frames: list[tuple[str, int, str]]) -> None:
        self.frames = frames

    def __str__(self) -> str:
        summaries = [
            traceback.FrameSummary(filename, lineno, name)
            for filename, lineno, name in reversed(self.frames)
        ]
        return "".join(traceback.format_list(summaries)).rstrip()


def capture(level: int) -> Trace:
    """The caller's stack without electron's own frames; short unless ``paranoid``."""
    limit = _LONG if level >= 2 else _SHORT
    frames: list[tuple[str, int, str]] = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and len(frames) < limit:
        code = frame.f_code
        if not code.co_filename.startswith(_PACKAGE_DIR):
            frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return Trace(frames)


def report_leak(kind: str, taken_at: Trace | None) -> None:
    """Say that a lent ``kind`` was garbage-collected without being given back."""
    where = f"; it was taken at:\n{taken_at}" if taken_at else ""
    msg = (
        f"electron: a lent {kind} was garbage-collected without being given back (its memory "
        f"was reclaimed){where}"
    )
    REPORTS.append(msg)
    logger.warning(msg)
    warnings.warn(msg, ResourceWarning, stacklevel=2)
