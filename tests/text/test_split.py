"""Buffer.split/splitlines: ``bytes`` results, as views of the buffer that die with it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electron import Buffer, BufferClosed, BufferPool

# Pieces chosen so that separators, line ends and whitespace runs sit at the edges and
# next to each other; plus arbitrary bytes (invalid UTF-8 included).
_pieces = [
    b"a",
    b"bc",
    b",",
    b",,",
    b"\n",
    b"\r",
    b"\r\n",
    b" ",
    b"\t",
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\x85",
    b"\xff",
    b"::",
]
data_st = st.binary(max_size=40) | st.lists(st.sampled_from(_pieces), max_size=20).map(b"".join)
sep_st = st.sampled_from([b",", b",,", b"::", b"\n", b"\r\n", b"a", b"\xff"]) | st.binary(
    min_size=1, max_size=3
)
maxsplit_st = st.integers(-2, 6)


def _buffer(data: bytes, stale: bytes = b"") -> Buffer:
    buf = Buffer(8)
    buf.write(data + stale)
    buf.clear()
    buf.write(data)
    return buf


def _as_bytes(views: list[memoryview]) -> list[bytes]:
    assert all(type(v) is memoryview for v in views)
    return [v.tobytes() for v in views]


@given(data=data_st, sep=sep_st, maxsplit=maxsplit_st, stale=st.binary(max_size=8))
def test_split_matches_bytes(data: bytes, sep: bytes, maxsplit: int, stale: bytes) -> None:
    buf = _buffer(data, stale + sep)
    assert _as_bytes(buf.split(sep)) == data.split(sep)
    assert _as_bytes(buf.split(sep, maxsplit)) == data.split(sep, maxsplit)
    assert _as_bytes(buf.split(bytearray(sep), maxsplit=maxsplit)) == data.split(sep, maxsplit)


@given(data=data_st, maxsplit=maxsplit_st, stale=st.binary(max_size=8))
def test_whitespace_split_matches_bytes(data: bytes, maxsplit: int, stale: bytes) -> None:
    buf = _buffer(data, stale + b" x")
    assert _as_bytes(buf.split()) == data.split()
    assert _as_bytes(buf.split(None, maxsplit)) == data.split(None, maxsplit)


@given(data=data_st, keepends=st.booleans(), stale=st.binary(max_size=8))
def test_splitlines_matches_bytes(data: bytes, keepends: bool, stale: bytes) -> None:
    buf = _buffer(data, b"\n" + stale)
    assert _as_bytes(buf.splitlines(keepends)) == data.splitlines(keepends)
    assert _as_bytes(buf.splitlines(keepends=keepends)) == data.splitlines(keepends=keepends)


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"\r", b"\r\n", b"\n\r", b"\r\r\n", b"a", b"a\n", b"\na", b"a\r", b"\r\na\r\n"],
)
def test_splitlines_edges(data: bytes) -> None:
    buf = _buffer(data, stale=b"\nX")
    assert _as_bytes(buf.splitlines()) == data.splitlines()
    assert _as_bytes(buf.splitlines(True)) == data.splitlines(True)


def test_split_argument_errors_like_bytes() -> None:
    buf = _buffer(b"a,b")
    with pytest.raises(ValueError, match="empty separator"):
        buf.split(b"")
    with pytest.raises(TypeError):
        buf.split(",")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        buf.split(44)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        buf.split(b",", 1.0)  # type: ignore[arg-type]
    assert _as_bytes(buf.split(memoryview(b"x,y")[1:2])) == [b"a", b"b"]


def test_pieces_are_views_of_the_buffer_not_copies() -> None:
    buf = Buffer(64)
    buf.write(b"one,two")
    base = buf.view()
    first, second = buf.split(b",")
    assert first.obj is base.obj
    assert second.obj is base.obj
    base[0:3] = b"ONE"  # the buffer's own memory: the piece shows the change
    assert first.tobytes() == b"ONE"
    (line,) = buf.splitlines()
    assert line.obj is base.obj


def test_views_are_released_when_the_buffer_goes_back_and_memory_is_reused() -> None:
    pool = BufferPool(min_size=64)
    buf = pool.get(64)
    buf.write(b"a b\nc,d\r\ne")
    pieces = [*buf.split(b","), *buf.split(), *buf.splitlines(), *buf.splitlines(True)]
    assert len(pieces) == 2 + 4 + 3 + 3
    pool.put(buf)
    for v in pieces:
        with pytest.raises(ValueError, match="released"):
            v.tobytes()
    stats = pool.statistics()
    assert stats.quarantined == 0
    again = pool.get(64)
    assert stats.pooled == 1
    assert pool.statistics().reused == 1
    pool.put(again)


def test_a_kept_derived_view_quarantines_the_memory() -> None:
    pool = BufferPool(min_size=64)
    buf = pool.get(64)
    buf.write(b"a,b")
    kept = memoryview(buf.split(b",")[0])  # derived: survives the release (hazard 3)
    pool.put(buf)
    assert kept.tobytes() == b"a"
    assert pool.statistics().quarantined == 1


def test_the_returned_list_is_the_callers() -> None:
    pool = BufferPool(min_size=64)
    buf = pool.get(64)
    buf.write(b"a,b")
    pieces = buf.split(b",")
    kept = pieces[0]
    pieces.clear()  # does not untrack the views
    pool.put(buf)
    with pytest.raises(ValueError, match="released"):
        kept.tobytes()


def test_split_on_a_returned_buffer_raises() -> None:
    pool = BufferPool()
    buf = pool.get(16)
    pool.put(buf)
    with pytest.raises(BufferClosed):
        buf.split(b",")
    with pytest.raises(BufferClosed):
        buf.split()
    with pytest.raises(BufferClosed):
        buf.splitlines()
