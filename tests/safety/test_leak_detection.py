"""Leak detection: levels, reports, reclaiming, and where-returned in errors."""

from __future__ import annotations

import gc
import logging
import warnings

import pytest

import electron
from electron.testing import assert_no_leaks, make_test_pool

pytestmark = pytest.mark.electron_leaks_expected  # these tests leak on purpose


def _leak_one(aop: electron.ArenaOfPools) -> None:
    arena = aop.get_arena()
    arena.alloc(64)[:3] = b"abc"
    aop.get_buffer(100).write(b"xyz")


def _leak_one_and_collect(aop: electron.ArenaOfPools) -> None:
    _leak_one(aop)
    gc.collect()


def _drop_arenas_and_collect(aop: electron.ArenaOfPools, n: int) -> None:
    for _ in range(n):
        aop.get_arena()  # dropped at once: a leak
    gc.collect()


@pytest.mark.parametrize("level", ["off", "simple", "paranoid"])
def test_leaked_loans_are_reclaimed_and_counted_at_every_level(level: str) -> None:
    aop = electron.ArenaOfPools(
        arena_size=4096,
        max_arenas=1,
        leak_detection=level,  # type: ignore[arg-type]
    )
    if level == "paranoid":
        with pytest.warns(ResourceWarning):
            _leak_one_and_collect(aop)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)  # untraced leaks are not reported
            _leak_one_and_collect(aop)
    stats = aop.statistics()
    assert stats.active_arenas == 0
    assert stats.active_buffers == 0
    assert stats.leaks_detected == 2
    # The budget slot came back: with max_arenas=1 this would otherwise time out.
    arena = aop.get_arena(timeout=0)
    assert bytes(arena.alloc(64)[:3]) == b"\0\0\0", "reclaimed memory must be zeroed"
    aop.return_arena(arena)


def test_paranoid_report_names_where_the_loan_was_taken(caplog: pytest.LogCaptureFixture) -> None:
    aop = electron.ArenaOfPools(leak_detection="paranoid")
    with caplog.at_level(logging.WARNING, logger="electron"), pytest.warns(ResourceWarning) as rec:
        _leak_one_and_collect(aop)
    messages = [str(w.message) for w in rec]
    assert any("arena" in m and "_leak_one" in m for m in messages), messages
    assert any("buffer" in m and "_leak_one" in m for m in messages), messages
    assert any("_leak_one" in r.getMessage() for r in caplog.records)


def test_simple_mode_samples_about_one_in_a_hundred() -> None:
    aop = electron.ArenaOfPools(leak_detection="simple")
    with pytest.warns(ResourceWarning) as rec:
        _drop_arenas_and_collect(aop, 300)
    arena_reports = [w for w in rec if "arena" in str(w.message)]
    assert len(arena_reports) == 3
    assert aop.statistics().leaks_detected == 300


def test_environment_variable_sets_the_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTRON_LEAK_DETECTION", "paranoid")
    assert electron.ArenaOfPools().leak_detection == "paranoid"
    monkeypatch.setenv("ELECTRON_LEAK_DETECTION", "bogus")
    with pytest.raises(electron.InvalidArgument, match="ELECTRON_LEAK_DETECTION"):
        electron.ArenaOfPools()
    with pytest.raises(electron.InvalidArgument, match="leak_detection"):
        electron.ArenaOfPools(leak_detection="loud")  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["simple", "paranoid"])
def test_double_release_says_where_it_was_first_returned(level: str) -> None:
    aop = electron.ArenaOfPools(leak_detection=level)  # type: ignore[arg-type]
    # In simple mode only sampled loans are traced: take 100 so the last one is.
    arenas = [aop.get_arena() for _ in range(100)]
    for a in arenas:
        aop.return_arena(a)
    traced = arenas[-1]
    with pytest.raises(electron.DoubleRelease, match="first given back at") as info:
        aop.return_arena(traced)
    assert "test_double_release_says_where_it_was_first_returned" in str(info.value)
    with pytest.raises(electron.ArenaClosed, match="given back at"):
        traced.alloc(1)
    buffers = [aop.get_buffer(10) for _ in range(100)]
    for b in buffers:
        aop.return_buffer(b)
    with pytest.raises(electron.DoubleRelease, match="first given back at"):
        aop.return_buffer(buffers[-1])
    with pytest.raises(electron.BufferClosed, match="given back at"):
        buffers[-1].write(b"x")


def test_paranoid_poisons_quarantined_memory() -> None:
    aop = electron.ArenaOfPools(arena_size=4096, leak_detection="paranoid")
    arena = aop.get_arena()
    view = arena.alloc(16)
    view[:] = b"secret-secret-00"
    kept = memoryview(view)  # a derived view survives release: the region is quarantined
    aop.return_arena(arena)
    assert aop.statistics().quarantined == 1
    assert bytes(kept) == bytes([0xDB]) * 16, "use after return must see poison, not data"
    del kept
    assert_no_leaks(aop)


def test_assert_no_leaks_fails_on_a_lent_arena() -> None:
    aop = make_test_pool()
    arena = aop.get_arena()
    with pytest.raises(AssertionError, match="1 arena"):
        assert_no_leaks(aop)
    aop.return_arena(arena)
    assert_no_leaks(aop)
