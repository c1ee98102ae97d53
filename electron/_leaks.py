"""Leak detection: which loans to trace, how to say where they came from, how to report.

Levels (``ArenaOfPools(leak_detection=...)`` or ``ELECTRON_LEAK_DETECTION``):

- ``off``: no tracing. A lent arena or buffer that is garbage-collected without being given
  back is still reclaimed and counted in ``Stats.leaks_detected``, but not reported.
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
import traceback
import warnings
from collections import deque
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from ._aop import ArenaOfPools

__all__ = (
    "ENV_VAR",
    "LEVELS",
    "POISON",
    "REPORTS",
    "TRACKER",
    "LeakDetection",
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


def capture(level: int) -> str:
    """The caller's stack without electron's own frames; short unless ``paranoid``."""
    frames = [f for f in traceback.extract_stack() if not f.filename.startswith(_PACKAGE_DIR)]
    if level < 2:
        frames = frames[-4:]
    return "".join(traceback.format_list(frames)).rstrip()


def report_leak(kind: str, taken_at: str | None) -> None:
    """Say that a lent ``kind`` was garbage-collected without being given back."""
    where = f"; it was taken at:\n{taken_at}" if taken_at else ""
    msg = (
        f"electron: a lent {kind} was garbage-collected without being given back (its memory "
        f"was reclaimed){where}"
    )
    REPORTS.append(msg)
    logger.warning(msg)
    warnings.warn(msg, ResourceWarning, stacklevel=2)
