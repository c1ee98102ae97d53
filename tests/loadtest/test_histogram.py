"""The HDR latency histogram: percentiles within its precision, merging across processes."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bench._lt._hist import HIGHEST_US, LatencyHistogram


def _exact(values: list[int], p: float) -> int:
    """The sample of rank round(p% of n) (at least 1), HDR's definition, from a sorted list."""
    s = sorted(values)
    return s[max(1, math.floor(p / 100 * len(s) + 0.5)) - 1]


def test_uniform_percentiles() -> None:
    h = LatencyHistogram()
    for us in range(1, 10_001):
        h.record(us)
    assert h.count == 10_000
    for p, want in ((50, 5000), (90, 9000), (99, 9900), (99.9, 9990)):
        assert abs(h.percentile(p) - want) <= want * 1e-3 + 1, p
    assert abs(h.max_us - 10_000) <= 10
    assert h.min_us == 1
    assert abs(h.mean_us - 5000.5) < 10


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(min_value=1, max_value=50_000_000), min_size=1, max_size=300),
    p=st.sampled_from([50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentile_within_precision(values: list[int], p: float) -> None:
    h = LatencyHistogram(3)
    for v in values:
        h.record(v)
    want = _exact(values, p)
    # Three significant digits: the answer is within 0.1% of the exact sample (HDR buckets).
    assert abs(h.percentile(p) - want) <= want * 2e-3 + 1


def test_merge_of_encodings_equals_recording_everything_in_one() -> None:
    rng = random.Random(7)
    parts = [[rng.randint(50, 200_000) for _ in range(2000)] for _ in range(3)]
    one = LatencyHistogram()
    merged = LatencyHistogram()
    for part in parts:
        worker = LatencyHistogram()  # what one client process records and ships
        for v in part:
            worker.record(v)
            one.record(v)
        merged.merge(worker.encode())
    assert merged.count == one.count == 6000
    for p in (50, 90, 99, 99.9, 100):
        assert merged.percentile(p) == one.percentile(p)
    assert merged.max_us == one.max_us


def test_merge_histogram_object_and_decode() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record(100, count=5)
    b.record(1000, count=5)
    a.merge(b)
    assert a.count == 10
    assert a.percentile(50) == 100
    assert 999 <= a.percentile(100) <= 1001
    c = LatencyHistogram.decode(a.encode())
    assert c.count == 10
    assert c.percentile(100) == a.percentile(100)


def test_empty_histogram_reports_zeros_and_merges_as_nothing() -> None:
    e = LatencyHistogram()
    assert e.count == 0
    assert e.summary_ms() == {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0,
                              "p99_9": 0.0, "max": 0.0}
    h = LatencyHistogram()
    h.record(42)
    h.merge(e.encode())
    h.merge(e)
    h.merge(b"")
    assert h.count == 1


def test_out_of_range_values_are_clamped_not_lost() -> None:
    h = LatencyHistogram()
    h.record(0)
    h.record(-5)
    h.record(HIGHEST_US * 10)
    assert h.count == 3
    assert h.min_us == 1
    assert h.max_us >= HIGHEST_US * 0.999


def test_record_ns_rounds_to_microseconds_and_summary_is_in_ms() -> None:
    h = LatencyHistogram()
    h.record_ns(2_499_400)  # 2499.4 us -> 2499
    h.record_ns(2_500_600)  # 2500.6 us -> 2501
    s = h.summary_ms()
    assert s["count"] == 2
    assert 2.49 <= s["p50"] <= 2.501
    assert 2.5 <= s["max"] <= 2.503
