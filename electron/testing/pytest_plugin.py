"""pytest plugin: fail tests that leak electron arenas or buffers.

Registered as the ``electron`` ``pytest11`` entry point, so it is active wherever electron is
installed. It adds:

- ``--electron-leak-check``: check every test;
- ``@pytest.mark.electron_leak_check``: check one test (or a module, via ``pytestmark``);
- ``@pytest.mark.electron_leaks_expected``: exempt a test that leaks on purpose;
- the ``electron_pool`` fixture: a paranoid test :class:`~electron.ArenaOfPools` that must
  have everything back when the test ends.

A checked test runs with leak detection ``paranoid`` for pools it creates; afterwards every
such pool must have no arena or buffer lent out, and no leak may have been reported.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from .._arena_of_pools import ArenaOfPools
from .._leaks import ENV_VAR, REPORTS, TRACKER
from ._helpers import assert_no_leaks, make_test_pool


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("electron")
    group.addoption(
        "--electron-leak-check",
        action="store_true",
        help="fail every test that leaks an electron arena or buffer (paranoid leak detection)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "electron_leak_check: fail this test if it leaks an electron arena or buffer"
    )
    config.addinivalue_line(
        "markers", "electron_leaks_expected: this test leaks electron resources on purpose"
    )


def _wants_check(item: pytest.Item) -> bool:
    if item.get_closest_marker("electron_leaks_expected") is not None:
        return False
    return bool(
        item.config.getoption("--electron-leak-check")
        or item.get_closest_marker("electron_leak_check") is not None
    )


_STATE = pytest.StashKey[tuple[str | None, int]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if _wants_check(item):
        item.stash[_STATE] = (os.environ.get(ENV_VAR), len(REPORTS))
        os.environ[ENV_VAR] = "paranoid"
        TRACKER.enabled = True
        TRACKER.pools.clear()
        # What exists now is not the test's: frozen (for the rest of the session), it is left
        # out of every later collection, so the one after the test scans only what the tests
        # made since (a full collection of a large test session costs ~0.2 s a test).
        gc.collect()
        gc.freeze()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    state = item.stash.get(_STATE, None)
    try:
        result = yield
    finally:
        if state is not None:
            saved_env = state[0]
            if saved_env is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = saved_env
            TRACKER.enabled = False
    if state is None:
        return result
    gc.collect()
    problems = []
    for pool in TRACKER.pools:
        stats = pool.statistics()
        if stats.active_arenas or stats.active_buffers:
            problems.append(
                f"{pool!r}: {stats.active_arenas} arena(s) and {stats.active_buffers} "
                "buffer(s) still lent when the test ended"
            )
    TRACKER.pools.clear()
    problems.extend(list(REPORTS)[state[1] :])
    if problems:
        pytest.fail("electron leak check:\n" + "\n".join(problems), pytrace=False)
    return result


@pytest.fixture
def electron_pool() -> Iterator[ArenaOfPools]:
    """A paranoid test :class:`~electron.ArenaOfPools`; the test fails if it leaked."""
    pool = make_test_pool()
    yield pool
    try:
        assert_no_leaks(pool)
    finally:
        pool.close()
