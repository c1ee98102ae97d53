"""Regression tests for the bugs a second review found (scripts in review_cases/).

Each script reproduces one bug and prints what happened; it runs in a subprocess because
several of them set process-wide limits (RLIMIT_AS, gc thresholds) or would deadlock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "review_cases"

# (script, args, a line that must be printed when the bug is fixed)
EXPECTED = [
    ("gc_finalizer_deadlock", ["cycle", "stats"], "no deadlock"),
    ("gc_finalizer_deadlock", ["cycle", "get_arena"], "no deadlock"),
    ("gc_finalizer_deadlock", ["arena", "stats"], "no deadlock"),
    ("gc_finalizer_deadlock", ["arena", "get_arena"], "no deadlock"),
    ("reset_stale_cap", [], "active_arenas 0 bytes_in_use 0"),
    ("reset_memoryerror", [], "lent"),
    ("grant_memoryerror", [], "active_arenas 0 waiting 0 wait_timeouts 0"),
    ("leak_queue_missed_wakeup", [], "lent after"),
    ("leak_queue_missed_wakeup_threads", [], "lent"),
    ("reset_spilled_no_grant", [], "got it after"),
    ("chunk_memoryerror", [], "alloc raised InsufficientCapacity"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "expected"),
    EXPECTED,
    ids=[f"{s}-{'-'.join(a) or 'default'}" for s, a, _ in EXPECTED],
)
def test_review_finding_stays_fixed(script: str, args: list[str], expected: str) -> None:
    # A script still running after 90 s dumps every thread's stack (faulthandler) and exits,
    # so that a hang fails with where it hung instead of a bare timeout.
    dump = "import faulthandler, runpy, sys; faulthandler.dump_traceback_later(90, exit=True); "
    run = "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    # The scripts run at the default leak detection level, as the bugs were reported: not at
    # the "paranoid" level our pytest plugin sets in this process's environment while a test
    # runs. There, capturing a stack per loan slows the threaded race script's loop so much
    # that it could take all of its 20,000 rounds and come near the 90 s limit.
    env = {k: v for k, v in os.environ.items() if k != "ELECTRON_LEAK_DETECTION"}
    proc = subprocess.run(
        [sys.executable, "-c", dump + run, str(CASES / f"{script}.py"), *args],
        capture_output=True,
        text=True,
        timeout=150,
        env={**env, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert "BUG" not in out, out
    assert "DEADLOCK" not in out, out
    assert expected in out, out
