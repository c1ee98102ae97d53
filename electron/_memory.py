"""Low-level helpers on ``bytearray`` regions shared by arenas and buffers."""

from __future__ import annotations

import math
import operator
import sys
from typing import Final

from ._errors import InvalidArgument

__all__ = (
    "MAX_SIZE",
    "check_size",
    "check_timeout",
    "is_exported",
    "local_refs",
    "poison",
    "refcount",
    "release_all",
    "zero",
)

_ZERO_CHUNK: Final = 1 << 16
_ZEROS: Final = memoryview(bytes(_ZERO_CHUNK))
#: Largest size accepted anywhere; larger requests are input errors, not allocation attempts.
MAX_SIZE: Final = 1 << 40


def check_size(value: object, name: str = "n") -> int:
    """Return ``value`` as an ``int`` in ``[0, MAX_SIZE]``, or raise a typed error.

    Integers and objects with ``__index__`` (numpy integers) are accepted; ``bool``, floats,
    strings and None raise :class:`TypeError`; negative or huge values raise
    :class:`~electron.InvalidArgument`.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    n: int = operator.index(value)  # type: ignore[call-overload,unused-ignore]
    if n < 0 or n > MAX_SIZE:
        raise InvalidArgument(name, value, f"an int in [0, {MAX_SIZE}]")
    return n


def check_timeout(timeout: object) -> float | None:
    """Return ``timeout`` as a finite float >= 0, or ``None`` for 'wait forever' (or inf)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    t = float(timeout)
    if math.isnan(t) or t < 0:
        raise InvalidArgument("timeout", timeout, "a number >= 0 or None")
    return None if math.isinf(t) else t


def is_exported(region: bytearray) -> bool:
    """True when something still holds a buffer export of ``region`` (a view, numpy, ctypes).

    A bytearray with live exports refuses to resize; shrinking and regrowing it by one byte
    never reallocates, so the probe costs well under a microsecond.
    """
    try:
        del region[-1]
    except BufferError:
        return True
    region.append(0)
    return False


def refcount(obj: object) -> int:
    """``sys.getrefcount(obj)``: compared against a count calibrated at import time.

    A ``memoryview``'s ``.obj`` hands out the whole backing ``bytearray`` without creating
    a buffer export, so the export probe cannot see it; an extra reference can.
    """
    return sys.getrefcount(obj)


def local_refs() -> int:
    """The reference count of a region held by one local variable (the calibration)."""
    region = bytearray(1)
    return refcount(region)


def release_all(views: list[memoryview]) -> bool:
    """Release every view in ``views``; False if one is still exported (numpy, C code)."""
    clean = True
    for v in views:
        try:
            v.release()
        except BufferError:
            clean = False
    return clean


_POISON_CHUNK: Final = memoryview(bytes((0xDB,)) * _ZERO_CHUNK)


def poison(mv: memoryview, n: int) -> None:
    """Fill the first ``n`` bytes of ``mv`` with the poison byte 0xDB, allocating nothing."""
    start = 0
    while start < n:
        end = min(start + _ZERO_CHUNK, n)
        mv[start:end] = _POISON_CHUNK[: end - start]
        start = end


def zero(mv: memoryview, n: int) -> None:
    """Fill the first ``n`` bytes of the writable byte view ``mv`` with zeros."""
    start = 0
    while start < n:
        end = min(start + _ZERO_CHUNK, n)
        mv[start:end] = _ZEROS[: end - start]
        start = end
