"""Buffer.replace_into: appends ``bytes(src).replace(old, new, count)`` to another buffer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electron import Buffer, BufferClosed, BufferPool, InvalidArgument

_pieces = [b"a", b"b", b"ab", b"ba", b"aa", b"\xff", b"\x00", b"xyz"]
data_st = st.binary(max_size=60) | st.lists(st.sampled_from(_pieces), max_size=40).map(b"".join)
old_st = st.sampled_from([b"a", b"ab", b"aa", b"\xff", b"", b"q"]) | st.binary(max_size=3)
new_st = st.sampled_from([b"", b"a", b"XYZW", b"&amp;"]) | st.binary(max_size=4)
count_st = st.integers(-2, 5)


def _buffer(data: bytes, stale: bytes = b"") -> Buffer:
    buf = Buffer(8)
    buf.write(data + stale)
    buf.clear()
    buf.write(data)
    return buf


@given(data=data_st, old=old_st, new=new_st, count=count_st, prefix=st.binary(max_size=5))
def test_replace_into_matches_bytes_replace(
    data: bytes, old: bytes, new: bytes, count: int, prefix: bytes
) -> None:
    src = _buffer(data, stale=old + b"tail")
    dest = Buffer(4)
    dest.write(prefix)
    expected = data.replace(old, new, count)
    assert src.replace_into(old, new, dest, count) == len(expected)
    assert dest.getvalue() == prefix + expected
    assert src.getvalue() == data  # the source is left alone
    dest2 = Buffer()
    assert src.replace_into(old, new, dest2) == len(data.replace(old, new))
    assert dest2.getvalue() == data.replace(old, new)


@given(
    data=data_st,
    old=old_st.filter(bool),
    new=new_st,
    count=st.integers(-1, 40),
    gap=st.sampled_from([b".", b"ab", b"a.", b"\xff."]),
    reps=st.integers(1, 5),
)
def test_large_sources_are_replaced_in_pieces_like_bytes(
    data: bytes, old: bytes, new: bytes, count: int, gap: bytes, reps: int
) -> None:
    """Sources over 2 KiB take the one-pass piecewise path (and switch when matches crowd)."""
    big = (data + gap * (2100 // len(gap)) + data) * reps
    src = _buffer(big, stale=old)
    dest = Buffer(4)
    dest.write(b"#")
    expected = big.replace(old, new, count)
    assert src.replace_into(old, new, dest, count) == len(expected)
    assert dest.getvalue() == b"#" + expected


@pytest.mark.parametrize("density", [0, 1, 10, 100, 1000, 5000])
def test_sparse_and_dense_replacing(density: int) -> None:
    """Both strategies (piecewise copies, bytes.replace on a copy) give the same bytes."""
    data = bytearray(b"x" * 10_000)
    for i in range(density):
        data[(i * 7919) % 9_990 : (i * 7919) % 9_990 + 2] = b"<>"
    data_b = bytes(data)
    src = _buffer(data_b)
    for old, new in [(b"<>", b"&lt;&gt;"), (b"<>", b""), (b"<", b"["), (b"x<", b"")]:
        dest = Buffer(16)
        src.replace_into(old, new, dest)
        assert dest.getvalue() == data_b.replace(old, new)


def test_bytes_like_arguments() -> None:
    src = _buffer(b"a-b-c")
    dest = Buffer()
    src.replace_into(bytearray(b"-"), memoryview(b"[+]")[1:2], dest)
    assert dest.getvalue() == b"a+b+c"


def test_destination_must_be_another_live_buffer() -> None:
    pool = BufferPool()
    src = pool.get(16)
    src.write(b"abc")
    with pytest.raises(InvalidArgument):
        src.replace_into(b"a", b"b", src)
    with pytest.raises(TypeError):
        src.replace_into(b"a", b"b", bytearray())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        src.replace_into("a", b"b", Buffer())  # type: ignore[arg-type]
    dead = pool.get(16)
    pool.put(dead)
    with pytest.raises(BufferClosed):
        src.replace_into(b"a", b"b", dead)
    pool.put(src)
    with pytest.raises(BufferClosed):
        src.replace_into(b"a", b"b", Buffer())


def test_pooled_destination_grows_and_goes_back() -> None:
    pool = BufferPool(min_size=64)
    src = pool.get(64)
    src.write(b"<>" * 30)
    dest = pool.get(64)
    n = src.replace_into(b"<>", b"&lt;&gt;", dest)
    assert n == 8 * 30
    assert dest.getvalue() == b"&lt;&gt;" * 30
    assert dest.capacity >= n
    pool.put(dest)
    pool.put(src)
    assert pool.statistics().active == 0
