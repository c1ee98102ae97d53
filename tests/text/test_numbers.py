"""write_int / write_float: ``str(n).encode()`` and ``repr(x).encode()``, straight in."""

from __future__ import annotations

import enum
import math
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from electron import Buffer, BufferClosed, BufferPool
from electron._text import float_repr, int_digits

ints = (
    st.integers()
    | st.integers(-2000, 2000)
    | st.integers(min_value=-(10**80), max_value=10**80)
    | st.sampled_from([0, 1023, 1024, -1, 2**63, -(2**63), 2**64 - 1])
)


def _appended(write_value: object, method: str) -> bytes:
    buf = Buffer(2)
    buf.write(b"#")
    n = getattr(buf, method)(write_value)
    value = buf.getvalue()
    assert n == len(value) - 1
    return value[1:]


@given(n=ints)
def test_write_int_matches_str(n: int) -> None:
    assert _appended(n, "write_int") == str(n).encode()
    assert int_digits(n) == str(n).encode()


@given(
    x=st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1e16, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3])
)
def test_write_float_matches_repr(x: float) -> None:
    assert _appended(x, "write_float") == repr(x).encode()
    assert float_repr(x) == repr(x).encode()
    if not math.isnan(x):
        assert float(_appended(x, "write_float")) == x  # round-trips


@given(n=ints)
def test_write_float_of_an_int_is_its_repr(n: int) -> None:
    assert _appended(n, "write_float") == repr(n).encode()


def test_huge_ints_raise_like_str() -> None:
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        pytest.skip("the int string conversion limit is disabled in this interpreter")
    big = 10 ** (limit + 1)
    with pytest.raises(ValueError):
        str(big)
    buf = Buffer()
    with pytest.raises(ValueError):
        buf.write_int(big)
    assert len(buf) == 0


class Color(enum.IntEnum):
    RED = 7


class Loud(int):
    def __str__(self) -> str:
        return "LOUD"


@pytest.mark.parametrize(
    ("value", "out"),
    [
        (np.int64(-12), b"-12"),
        (np.uint8(255), b"255"),
        (Color.RED, b"7"),
        (Loud(5), b"5"),  # the digits of the value, not a subclass's __str__
    ],
    ids=["np.int64", "np.uint8", "IntEnum", "int-subclass"],
)
def test_write_int_other_integers_give_their_value(value: object, out: bytes) -> None:
    assert _appended(value, "write_int") == out


@pytest.mark.parametrize("bad", [True, False, 1.0, "1", None, b"1", 1 + 0j])
def test_write_int_refuses_non_integers_and_bool(bad: object) -> None:
    buf = Buffer()
    with pytest.raises(TypeError):
        buf.write_int(bad)  # type: ignore[arg-type]
    assert len(buf) == 0


@pytest.mark.parametrize(
    ("value", "out"),
    [
        (np.float64(0.1), b"0.1"),
        (float("nan"), b"nan"),
        (float("-inf"), b"-inf"),
        (-0.0, b"-0.0"),
        (7, b"7"),
        (Color.RED, b"7"),
    ],
    ids=["np.float64", "nan", "-inf", "-0.0", "int", "IntEnum"],
)
def test_write_float_examples(value: object, out: bytes) -> None:
    assert _appended(value, "write_float") == out


@pytest.mark.parametrize("bad", [True, "1.5", None, b"1", 1 + 0j])
def test_write_float_refuses_non_numbers_and_bool(bad: object) -> None:
    buf = Buffer()
    with pytest.raises(TypeError):
        buf.write_float(bad)  # type: ignore[arg-type]
    assert len(buf) == 0


def test_numbers_on_a_returned_buffer_raise() -> None:
    pool = BufferPool()
    buf = pool.get(16)
    pool.put(buf)
    with pytest.raises(BufferClosed):
        buf.write_int(1)
    with pytest.raises(BufferClosed):
        buf.write_float(1.0)


def test_many_numbers_grow_the_buffer() -> None:
    buf = Buffer(4)
    for i in range(-500, 3000, 7):
        buf.write_int(i)
        buf.write(b",")
        buf.write_float(i / 8)
        buf.write(b";")
    expected = b"".join(b"%d,%r;" % (i, i / 8) for i in range(-500, 3000, 7))
    assert buf.getvalue() == expected


@pytest.mark.parametrize("value", [2**62 - 1, 2**62, -(2**62), 2**64 + 1, -(10**30)])
def test_big_ints_are_not_leaked(value: int) -> None:
    """Compiled, mypyc's own int formatting leaks a reference to ints of 2**62 and more."""
    value = value + 0  # a fresh object, referenced only here
    before = sys.getrefcount(value)
    buf = Buffer()
    for _ in range(100):
        buf.write_int(value)
        buf.write_float(value)
    assert sys.getrefcount(value) == before
    assert buf.getvalue() == str(value).encode() * 200
