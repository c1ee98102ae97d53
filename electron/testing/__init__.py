"""Helpers for testing code that uses electron (and electron itself).

The reference test plan's utilities, made Pythonic: :func:`make_test_pool`,
:func:`assert_no_leaks`, :func:`measure_throughput`, :func:`run_concurrent` (threads) and
:func:`run_concurrent_tasks` (async tasks, needs anyio). The pytest plugin
(``electron.testing.pytest_plugin``, registered as a ``pytest11`` entry point) adds the
``electron_pool`` fixture, the ``electron_leak_check`` marker and ``--electron-leak-check``.
"""

from __future__ import annotations

from .._exports import fix_module_names as _fix_module_names
from ._helpers import assert_no_leaks as assert_no_leaks
from ._helpers import make_test_pool as make_test_pool
from ._helpers import measure_throughput as measure_throughput
from ._helpers import run_concurrent as run_concurrent
from ._helpers import run_concurrent_tasks as run_concurrent_tasks

__all__ = (
    "assert_no_leaks",
    "make_test_pool",
    "measure_throughput",
    "run_concurrent",
    "run_concurrent_tasks",
)

_fix_module_names(globals(), __name__)
