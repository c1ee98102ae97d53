"""Buffer: appending writes, zero-copy views, reserve/commit, growth and death on return."""

from __future__ import annotations

import array
import io
from collections.abc import Callable

import numpy as np
import pytest

from electron import Buffer, BufferClosed, BufferPool, InvalidArgument

# -- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"hello", b"hello"),
        (bytearray(b"abc"), b"abc"),
        (memoryview(b"xyz"), b"xyz"),
        (memoryview(b"0123456789")[2:5], b"234"),
        (memoryview(b"abcdef")[::2], b"ace"),  # not contiguous
        (array.array("i", [1, 2, 3]), array.array("i", [1, 2, 3]).tobytes()),
        (array.array("d", [0.5]), array.array("d", [0.5]).tobytes()),
        (memoryview(bytes(range(12))).cast("B", (3, 4)), bytes(range(12))),  # 2-D
        (np.arange(4, dtype=np.uint16), np.arange(4, dtype=np.uint16).tobytes()),
        (b"", b""),
    ],
    ids=lambda x: type(x).__name__,
)
def test_write_accepts_any_bytes_like_and_counts_bytes(data: object, expected: bytes) -> None:
    buf = Buffer()
    buf.write(b"<")
    n = buf.write(data)  # type: ignore[arg-type]
    assert n == len(expected)
    assert buf.getvalue() == b"<" + expected
    assert len(buf) == 1 + len(expected)


def test_write_refuses_str_and_non_buffers() -> None:
    buf = Buffer(16)
    with pytest.raises(TypeError):
        buf.write("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        buf.write(123)  # type: ignore[arg-type]
    assert len(buf) == 0
    assert buf.write(b"ok") == 2


def test_write_str_counts_encoded_bytes() -> None:
    buf = Buffer()
    assert buf.write_str("héllo") == 6
    assert buf.write_str("é", encoding="latin-1") == 1
    assert buf.getvalue() == "héllo".encode() + b"\xe9"
    with pytest.raises(UnicodeEncodeError):
        buf.write_str("€", encoding="ascii")
    assert len(buf) == 7


def test_writes_append_in_order() -> None:
    buf = Buffer(8)
    parts = [bytes([i]) * i for i in range(1, 50)]
    for p in parts:
        buf.write(p)
    assert buf.getvalue() == b"".join(parts)
    assert len(buf) == sum(map(len, parts))


# -- growth and capacity ----------------------------------------------------------------------


def test_growth_keeps_content() -> None:
    buf = Buffer(4)
    assert buf.capacity == 4
    data = bytes(range(256)) * 40  # 10 KiB
    for i in range(0, len(data), 1000):
        buf.write(data[i : i + 1000])
    assert buf.capacity >= len(data)
    assert buf.getvalue() == data


def test_clear_keeps_capacity() -> None:
    buf = Buffer()
    buf.write(b"x" * 5000)
    cap = buf.capacity
    buf.clear()
    assert len(buf) == 0
    assert buf.getvalue() == b""
    assert buf.capacity == cap
    buf.write(b"abc")
    assert buf.getvalue() == b"abc"
    assert buf.capacity == cap


def test_bytes_beyond_what_was_written_are_never_exposed() -> None:
    buf = Buffer()
    buf.write(b"secret" * 100)
    buf.clear()
    buf.write(b"ab")
    assert buf.getvalue() == b"ab"
    assert buf.view().tobytes() == b"ab"
    assert buf.reserve(100) == bytes(100)


# -- view -------------------------------------------------------------------------------------


def test_view_is_the_written_bytes_without_copy() -> None:
    buf = Buffer(64)
    buf.write(b"hello world")
    v = buf.view()
    assert v.tobytes() == b"hello world"
    assert not v.readonly
    v[0] = ord("J")
    assert buf.getvalue() == b"Jello world"
    # numpy sees the same memory too
    arr = np.frombuffer(buf.view(), dtype=np.uint8)
    arr[1] = ord("E")
    assert buf.getvalue() == b"JEllo world"
    del arr


def test_view_taken_before_growth_stays_a_valid_snapshot() -> None:
    buf = Buffer(8)
    buf.write(b"abcd")
    v = buf.view()
    buf.write(b"z" * 1000)
    assert v.tobytes() == b"abcd"
    assert buf.getvalue() == b"abcd" + b"z" * 1000


def test_views_are_released_when_the_buffer_goes_back() -> None:
    pool = BufferPool()
    buf = pool.get(100)
    buf.write(b"data")
    v = buf.view()
    r = buf.reserve(10)
    pool.put(buf)
    for stale in (v, r):
        with pytest.raises(ValueError):
            stale[0]
        with pytest.raises(ValueError):
            bytes(stale)


def test_views_are_released_when_a_standalone_buffer_closes() -> None:
    buf = Buffer(16)
    buf.write(b"abc")
    v = buf.view()
    buf.close()
    with pytest.raises(ValueError):
        v[0]


# -- reserve / commit -------------------------------------------------------------------------


def test_reserve_commit_for_readinto() -> None:
    buf = Buffer()
    buf.write(b"head:")
    src = io.BytesIO(b"payload-bytes")
    v = buf.reserve(64)
    assert len(v) == 64
    assert v == bytes(64)
    got = src.readinto(v)
    assert got == 13
    assert len(buf) == 5, "nothing counts as written before commit"
    buf.commit(got)
    assert len(buf) == 18
    assert buf.getvalue() == b"head:payload-bytes"
    assert buf.capacity >= 5 + 64


def test_reserve_is_zeroed_over_dirty_memory() -> None:
    buf = Buffer(128)
    buf.write(b"\xff" * 128)
    buf.clear()
    assert buf.reserve(128) == bytes(128)


def test_commit_past_capacity_is_refused() -> None:
    buf = Buffer(16)
    buf.reserve(8)
    with pytest.raises(ValueError):
        buf.commit(buf.capacity + 1)
    assert len(buf) == 0
    buf.commit(8)
    assert len(buf) == 8


@pytest.mark.parametrize(
    ("n", "error"), [(-1, InvalidArgument), (1.0, TypeError), (True, TypeError)]
)
def test_reserve_and_commit_refuse_bad_sizes(n: object, error: type[Exception]) -> None:
    buf = Buffer(16)
    with pytest.raises(error):
        buf.reserve(n)  # type: ignore[arg-type]
    with pytest.raises(error):
        buf.commit(n)  # type: ignore[arg-type]
    assert len(buf) == 0


# -- death --------------------------------------------------------------------------------------

DEAD_CALLS: list[tuple[str, Callable[[Buffer], object]]] = [
    ("write", lambda b: b.write(b"x")),
    ("write_str", lambda b: b.write_str("x")),
    ("getvalue", lambda b: b.getvalue()),
    ("view", lambda b: b.view()),
    ("reserve", lambda b: b.reserve(1)),
    ("commit", lambda b: b.commit(0)),
    ("clear", lambda b: b.clear()),
    ("len", len),
    ("enter", lambda b: b.__enter__()),
]


@pytest.mark.parametrize(("name", "call"), DEAD_CALLS, ids=[n for n, _ in DEAD_CALLS])
def test_returned_buffer_is_dead(name: str, call: Callable[[Buffer], object]) -> None:
    pool = BufferPool()
    buf = pool.get(10)
    buf.write(b"abc")
    pool.put(buf)
    assert buf.closed
    with pytest.raises(BufferClosed):
        call(buf)
    buf.close()  # idempotent, and does not go back a second time
    assert pool.statistics().active == 0


@pytest.mark.parametrize(("name", "call"), DEAD_CALLS, ids=[n for n, _ in DEAD_CALLS])
def test_closed_standalone_buffer_is_dead(name: str, call: Callable[[Buffer], object]) -> None:
    buf = Buffer(10)
    buf.close()
    with pytest.raises(BufferClosed):
        call(buf)


def test_context_manager_returns_a_pooled_buffer() -> None:
    pool = BufferPool()
    with pool.get(100) as buf:
        buf.write(b"abc")
        assert pool.statistics().active == 1
    assert buf.closed
    stats = pool.statistics()
    assert (stats.active, stats.pooled) == (0, 1)


def test_bad_capacity_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        Buffer(-1)
    with pytest.raises(TypeError):
        Buffer(2.0)  # type: ignore[arg-type]


def test_repr_mentions_capacity_and_state() -> None:
    buf = Buffer(32)
    buf.write(b"ab")
    assert "32" in repr(buf)
    assert "len=2" in repr(buf)
    buf.close()
    assert "closed" in repr(buf)
