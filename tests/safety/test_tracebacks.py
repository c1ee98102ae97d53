"""An exception kept past a buffer's return must not let anyone read the next loan's bytes.

Exceptions live on (a failed task's result, a log record, a debugger) and so do the frames of
their tracebacks, with every local variable of every interpreted function they passed
through. A pooled buffer's memory reachable from such a frame would show the next request's
data once the region is lent again. Found by review: the pure-Python core's frames held the
buffer's base view, which the pool then reused; and a codec written in Python was handed a
raw view of the buffer's memory by ``str(view, encoding)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType

import pytest

from electron import Buffer, BufferPool

SECRET = b"SECRET-of-the-next-request"


def _frame_values(tb: TracebackType | None) -> Iterator[object]:
    while tb is not None:
        yield from tb.tb_frame.f_locals.values()
        tb = tb.tb_next


def _readable(value: object) -> bytes | None:
    """What ``value`` shows of memory, or None if it is no bytes-like object (or released)."""
    if isinstance(value, memoryview | bytearray):
        try:
            return bytes(value)
        except ValueError:  # a released view: nothing to read
            return None
    return None


def _fail_with_invalid_utf8(buf: Buffer) -> None:
    buf.write(b"\xff" * 10)
    buf.decode()


def _fail_with_an_empty_separator(buf: Buffer) -> None:
    buf.write(b"a b c")
    buf.split(b"")


def _fail_with_a_python_codec(buf: Buffer) -> None:
    buf.write(b"a" * 600 + b"\x81")  # 0x81 is undefined in cp1252 (a charmap codec)
    buf.decode("cp1252")


def _fail_reserving_a_negative_size(buf: Buffer) -> None:
    buf.write(b"abc")
    buf.reserve(-1)


@pytest.mark.parametrize(
    "fail",
    [
        _fail_with_invalid_utf8,
        _fail_with_an_empty_separator,
        _fail_with_a_python_codec,
        _fail_reserving_a_negative_size,
    ],
)
def test_a_kept_traceback_never_shows_the_next_loan(fail: Callable[[Buffer], None]) -> None:
    pool = BufferPool()
    buf = pool.get(8192)
    try:
        fail(buf)
    except (ValueError, UnicodeDecodeError) as exc:
        error: BaseException = exc
    else:
        pytest.fail("the buffer operation was expected to fail")
    pool.put(buf)
    again = pool.get(8192)
    again.write(SECRET)
    try:
        seen = [_readable(v) for v in _frame_values(error.__traceback__)]
        assert not [s for s in seen if s is not None and SECRET in s], (
            "a frame of the kept traceback reads the next loan's memory"
        )
    finally:
        pool.put(again)
