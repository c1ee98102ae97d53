"""The pytest plugin fails tests that leak, and only those."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.electron_leaks_expected

TESTS = """
import gc
import pytest
import electron

def test_returns_everything():
    aop = electron.ArenaOfPools()
    aop.return_arena(aop.get_arena())

def test_keeps_an_arena():
    test_keeps_an_arena.kept = electron.ArenaOfPools().get_arena()

def test_drops_an_arena():
    electron.ArenaOfPools().get_arena()
    gc.collect()

@pytest.mark.electron_leaks_expected
def test_allowed_to_leak():
    electron.ArenaOfPools().get_arena()

def test_fixture(electron_pool):
    electron_pool.return_arena(electron_pool.get_arena())
"""


def test_option_fails_leaking_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("--electron-leak-check", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_keeps_an_arena*",
            "*1 arena(s) and 0 buffer(s) still lent when the test ended",
            "*ERROR at teardown of test_drops_an_arena*",
            "*garbage-collected without being given back*",
        ]
    )


def test_without_option_or_marker_nothing_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=5)


def test_marker_checks_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, electron

        @pytest.mark.electron_leak_check
        def test_checked():
            test_checked.kept = electron.ArenaOfPools().get_arena()

        def test_unchecked():
            test_unchecked.kept = electron.ArenaOfPools().get_arena()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
