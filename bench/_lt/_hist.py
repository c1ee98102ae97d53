"""An HDR latency histogram in microseconds, mergeable across processes.

Wraps ``hdrh.histogram.HdrHistogram``: constant memory whatever the sample count, values kept
to ``digits`` significant digits, and a compact encoding so each client process can ship its
histogram to the parent, which merges them (percentiles cannot be averaged; counts can).
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ("HIGHEST_US", "PERCENTILES", "LatencyHistogram")

HIGHEST_US = 600_000_000  # 10 minutes: longer than any bounded request
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
)


class LatencyHistogram:
    """Latencies in microseconds (1 µs .. 10 min), ``digits`` significant digits (2 or 3).

    ``percentile`` and ``max_us`` are exact to within the precision; an empty histogram
    reports 0 everywhere and ``count == 0``.
    """

    __slots__ = ("_h", "digits")

    def __init__(self, digits: int = 3) -> None:
        self.digits = digits
        self._h: Any = HdrHistogram(1, HIGHEST_US, digits)

    def record(self, us: int, count: int = 1) -> None:
        """Add ``count`` samples of ``us`` microseconds (clamped into the trackable range)."""
        self._h.record_value(min(max(us, 1), HIGHEST_US), count)

    def record_ns(self, ns: int) -> None:
        """Add one sample given in nanoseconds (rounded to the nearest microsecond)."""
        self.record((ns + 500) // 1000)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile(self, p: float) -> int:
        """The latency (µs) at or below which ``p`` percent of the samples fall."""
        return int(self._h.get_value_at_percentile(p)) if self.count else 0

    @property
    def max_us(self) -> int:
        return int(self._h.get_max_value()) if self.count else 0

    @property
    def min_us(self) -> int:
        return int(self._h.get_min_value()) if self.count else 0

    @property
    def mean_us(self) -> float:
        # hdrh's get_mean_value walks a pure-Python iterator (~0.4 s per call); the same
        # figure from the non-zero counts only takes a millisecond.
        total = self.count
        if not total:
            return 0.0
        h = self._h
        acc = 0
        for i, c in enumerate(h.counts):
            if c:
                acc += c * h._hdr_median_equiv_value(h.get_value_from_index(i))
        return acc / total

    def encode(self) -> bytes:
        """The compressed HdrHistogram encoding (what client processes send to the parent)."""
        return bytes(self._h.encode())

    @classmethod
    def decode(cls, data: bytes, digits: int = 3) -> LatencyHistogram:
        """A histogram from ``encode()`` output."""
        h = cls(digits)
        h.merge(data)
        return h

    def merge(self, other: LatencyHistogram | bytes) -> None:
        """Add every sample of ``other`` (a histogram, or its encoding) into this one."""
        if isinstance(other, LatencyHistogram):
            if other.count:
                self._h.add(other._h)
        elif other:
            self._h.decode_and_add(other)

    def summary_ms(self) -> dict[str, float | int]:
        """``count``, ``mean``, ``p50`` .. ``p99_9`` and ``max`` in milliseconds (3 decimals)."""
        out: dict[str, float | int] = {"count": self.count, "mean": round(self.mean_us / 1e3, 3)}
        values = (self._h.get_percentile_to_value_dict([p for _, p in PERCENTILES])
                  if self.count else {})
        for name, p in PERCENTILES:
            out[name] = round(int(values.get(p, 0)) / 1e3, 3)
        out["max"] = round(self.max_us / 1e3, 3)
        return out
