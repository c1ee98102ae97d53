"""Low-level helpers on ``bytearray`` regions shared by arenas and buffers."""

from __future__ import annotations

import math
import operator

from ._errors import InvalidArgument

__all__ = ("ZERO_CHUNK", "check_size", "check_timeout", "is_exported", "release_all", "zero")

ZERO_CHUNK = 1 << 16
_ZEROS = memoryview(bytes(ZERO_CHUNK))
#: Largest size accepted anywhere; larger requests are input errors, not allocation attempts.
MAX_SIZE = 1 << 40


def check_size(value: object, name: str = "n") -> int:
    """Return ``value`` as a non-negative ``int`` or raise a typed error."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    n = operator.index(value)  # type: ignore[arg-type]  # raises TypeError for non-ints
    if n < 0 or n > MAX_SIZE:
        raise InvalidArgument(name, value, f"an int in [0, {MAX_SIZE}]")
    return n


def check_timeout(timeout: object) -> float | None:
    """Return ``timeout`` as a finite non-negative float, or ``None`` for 'wait forever'."""
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

    A bytearray with live exports refuses to resize; shrinking and regrowing by one byte
    never reallocates, so this costs well under a microsecond.
    """
    try:
        del region[-1]
    except BufferError:
        return True
    region.append(0)
    return False


def release_all(views: list[memoryview]) -> bool:
    """Release every view in ``views`` (and clear the list); False if one is still exported."""
    clean = True
    for v in views:
        try:
            v.release()
        except BufferError:  # something (numpy, a C extension) holds a buffer of this view
            clean = False
    views.clear()
    return clean


def zero(mv: memoryview, n: int) -> None:
    """Fill the first ``n`` bytes of the writable byte view ``mv`` with zeros."""
    if n <= ZERO_CHUNK:
        mv[:n] = _ZEROS[:n]
        return
    for start in range(0, n, ZERO_CHUNK):
        end = min(start + ZERO_CHUNK, n)
        mv[start:end] = _ZEROS[: end - start]
