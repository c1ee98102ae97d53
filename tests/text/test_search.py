"""Buffer.find/count/startswith/endswith: ``bytes`` semantics over the written bytes only."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from electron import Buffer, BufferClosed, BufferPool

# Small alphabets make matches, separators at the edges and repeats likely.
data_st = st.binary(max_size=40) | st.lists(st.sampled_from([b"a", b"b", b"ab", b"\n"])).map(
    b"".join
)
sub_st = st.binary(max_size=3) | st.sampled_from([b"a", b"ab", b"ba", b"aa", b"\n"])
index_st = st.none() | st.integers(-50, 50)
stale_st = st.binary(min_size=0, max_size=30)


def _buffer(data: bytes, stale: bytes = b"") -> Buffer:
    """A buffer holding ``data`` whose memory past it holds other bytes (a reused buffer)."""
    buf = Buffer(8)
    buf.write(data + stale)
    buf.clear()
    buf.write(data)
    return buf


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except (TypeError, ValueError) as exc:
        return type(exc)


@given(data=data_st, sub=sub_st, start=index_st, end=index_st, stale=stale_st)
def test_find_and_count_match_bytes(
    data: bytes, sub: bytes, start: int | None, end: int | None, stale: bytes
) -> None:
    buf = _buffer(data, stale)
    assert buf.find(sub, start, end) == data.find(sub, start, end)
    assert buf.count(sub, start, end) == data.count(sub, start, end)
    assert buf.find(sub) == data.find(sub)
    assert buf.count(sub) == data.count(sub)


@given(data=data_st, byte=st.integers(0, 255), start=index_st, end=index_st, stale=stale_st)
def test_find_and_count_accept_a_byte_value(
    data: bytes, byte: int, start: int | None, end: int | None, stale: bytes
) -> None:
    buf = _buffer(data, stale)
    assert buf.find(byte, start, end) == data.find(byte, start, end)
    assert buf.count(byte, start, end) == data.count(byte, start, end)


@given(data=data_st, sub=sub_st, start=index_st, end=index_st, stale=stale_st)
def test_startswith_endswith_match_bytes(
    data: bytes, sub: bytes, start: int | None, end: int | None, stale: bytes
) -> None:
    buf = _buffer(data, stale)
    assert buf.startswith(sub, start, end) == data.startswith(sub, start, end)
    assert buf.endswith(sub, start, end) == data.endswith(sub, start, end)
    subs = (sub, b"zz", data[-2:])
    assert buf.startswith(subs, start, end) == data.startswith(subs, start, end)
    assert buf.endswith(subs, start, end) == data.endswith(subs, start, end)


def test_bytes_past_the_written_end_are_never_matched() -> None:
    buf = _buffer(b"abc", stale=b"defghi")
    assert buf.find(b"d") == -1
    assert buf.find(b"cd") == -1
    assert buf.count(b"d") == 0
    assert not buf.endswith(b"i", 0, 100)
    assert buf.find(b"", 3) == 3
    assert buf.find(b"", 4) == -1
    assert not buf.startswith(b"", 4)


@pytest.mark.parametrize(
    "sub",
    [bytearray(b"na"), memoryview(b"xnax")[1:3], np.frombuffer(b"na", dtype=np.uint8)],
    ids=["bytearray", "memoryview", "numpy"],
)
def test_any_bytes_like_needle(sub: object) -> None:
    buf = _buffer(b"banana")
    assert buf.find(sub) == 2  # type: ignore[arg-type]
    assert buf.count(sub) == 2  # type: ignore[arg-type]
    assert buf.endswith(sub)  # type: ignore[arg-type]


def test_index_objects_and_bad_arguments_like_bytes() -> None:
    buf = _buffer(b"banana")
    assert buf.find(b"a", np.int64(2)) == 3
    assert buf.count(b"a", None, np.int32(4)) == 2
    bad: Any
    for bad in ("a", 1.5, None, 256, -1):
        assert _outcome(partial(buf.find, bad)) == _outcome(partial(b"banana".find, bad))
    assert _outcome(lambda: buf.find(b"a", 1.5)) is TypeError  # type: ignore[arg-type]
    assert _outcome(lambda: buf.startswith("b")) is TypeError  # type: ignore[arg-type]


def test_search_on_a_returned_buffer_raises() -> None:
    pool = BufferPool()
    buf = pool.get(16)
    buf.write(b"abc")
    pool.put(buf)
    calls: list[Callable[[], object]] = [
        lambda: buf.find(b"a"),
        lambda: buf.count(b"a"),
        lambda: buf.startswith(b"a"),
        lambda: buf.endswith(b"a"),
    ]
    for call in calls:
        with pytest.raises(BufferClosed):
            call()
