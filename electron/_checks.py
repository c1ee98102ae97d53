"""Argument checks shared by every entry point: sizes and timeouts become typed errors."""

from __future__ import annotations

import math
import operator
from typing import Final

from ._errors import InvalidArgument

__all__ = ("MAX_SIZE", "check_size", "check_timeout")

#: Largest size accepted anywhere; larger requests are input errors, not allocation attempts.
MAX_SIZE: Final = 1 << 40


def check_size(value: object, name: str = "n") -> int:
    """Return ``value`` as an ``int`` in ``[0, MAX_SIZE]``, or raise a typed error.

    Integers and objects with ``__index__`` (numpy integers) are accepted; ``bool``, floats,
    strings and None raise :class:`TypeError`; negative or huge values raise
    :class:`~electron.InvalidArgument`.
    """
    n: int
    if type(value) is int:  # the usual case: no attribute lookup, no call
        n = value
    elif isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    else:
        n = operator.index(value)  # type: ignore[call-overload,unused-ignore]
    if n < 0 or n > MAX_SIZE:
        raise InvalidArgument(name, value, f"an int in [0, {MAX_SIZE}]")
    return n


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """Return ``timeout`` as a finite float >= 0, or ``None`` for 'wait forever'.

    ``None``, ``math.inf`` and integers too large for a float (``10**400``) all mean forever;
    ``bool``, strings and other types raise :class:`TypeError`; negative numbers and NaN
    raise :class:`~electron.InvalidArgument`.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} must be a number or None, not {type(timeout).__name__}")
    if isinstance(timeout, int) and timeout > 0 and timeout.bit_length() > 1023:
        return None  # beyond any float: as good as forever
    t = float(timeout)
    if math.isnan(t) or t < 0:
        raise InvalidArgument(name, timeout, "a number >= 0 or None")
    return None if math.isinf(t) else t
