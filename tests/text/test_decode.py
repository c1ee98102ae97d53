"""is_utf8 and decode: the written bytes as ``bytes(buf).decode(...)`` sees them."""

from __future__ import annotations

import codecs
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electron import Arena, Buffer, BufferClosed, BufferPool
from electron._text import is_utf8

# Valid UTF-8 of any text (surrogates excluded by hypothesis), arbitrary bytes, and the
# classic invalid forms mixed into valid text.
_bad = [
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xff",
    b"\x80",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xef\xbb\xbf",
    b"\x00",
]
data_st = (
    st.text(max_size=30).map(str.encode)
    | st.binary(max_size=30)
    | st.lists(st.sampled_from([*_bad, b"a", "é".encode(), "☃".encode()]), max_size=10).map(
        b"".join
    )
)
encodings = st.sampled_from(
    [
        "utf-8",
        "UTF8",
        "ascii",
        "latin-1",
        "utf-16",
        "utf-16-le",
        "utf-32",
        "cp1252",
        "shift_jis",
        "idna",
    ]
)
errors = st.sampled_from(["strict", "replace", "ignore", "surrogateescape", "backslashreplace"])


def _buffer(data: bytes, stale: bytes = b"") -> Buffer:
    buf = Buffer(8)
    buf.write(data + stale)
    buf.clear()
    buf.write(data)
    return buf


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except (UnicodeError, LookupError) as exc:
        return type(exc)


def _strict_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(data=data_st, stale=st.sampled_from([b"", b"\xff", b"\x80\x80", b"\xe2"]))
def test_is_utf8_matches_strict_decoding(data: bytes, stale: bytes) -> None:
    buf = _buffer(data, stale)
    assert buf.is_utf8() == _strict_utf8(data)
    assert is_utf8(data) == _strict_utf8(data)


@given(data=data_st, encoding=encodings, errors=errors)
def test_decode_matches_bytes_decode(data: bytes, encoding: str, errors: str) -> None:
    buf = _buffer(data, stale=b"\xff\xfe")
    assert _outcome(lambda: buf.decode(encoding, errors)) == _outcome(
        lambda: data.decode(encoding, errors)
    )
    assert _outcome(buf.decode) == _outcome(data.decode)


@given(data=data_st, encoding=encodings, errors=errors, side=st.booleans())
def test_large_contents_decode_like_bytes(
    data: bytes, encoding: str, errors: str, side: bool
) -> None:
    """Over 512 bytes, decoding reads the buffer's memory through a view."""
    filler = b"ascii text " * 60
    big = filler + data if side else data + filler
    buf = _buffer(big, stale=b"\xff")
    assert buf.is_utf8() == _strict_utf8(big)
    assert _outcome(lambda: buf.decode(encoding, errors)) == _outcome(
        lambda: big.decode(encoding, errors)
    )


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        (b"", True),
        (b"plain ascii", True),
        ("\U0010ffff".encode(), True),
        (b"\xed\xa0\x80", False),  # a surrogate
        (b"\xc0\x80", False),  # overlong NUL
        (b"\xf4\x90\x80\x80", False),  # above U+10FFFF
        (b"ok\xe2\x82", False),  # truncated at the end
    ],
)
def test_is_utf8_examples(data: bytes, valid: bool) -> None:
    assert _buffer(data).is_utf8() is valid


def test_decode_errors_like_bytes() -> None:
    buf = _buffer(b"caf\xc3\xa9 \xff")
    with pytest.raises(UnicodeDecodeError) as info:
        buf.decode()
    assert info.value.start == 6
    assert buf.decode(errors="replace") == "café \ufffd"
    with pytest.raises(LookupError):
        buf.decode("no-such-codec")
    with pytest.raises(LookupError):
        buf.decode("hex")  # a bytes-to-bytes codec, refused as by bytes.decode
    with pytest.raises(TypeError):
        buf.decode(b"utf-8")  # type: ignore[arg-type]


def test_custom_error_handler_sees_the_same_bytes() -> None:
    seen: list[bytes] = []

    def record(exc: UnicodeError) -> tuple[str, int]:
        assert isinstance(exc, UnicodeDecodeError)
        seen.append(bytes(exc.object))
        return ("?", exc.end)

    codecs.register_error("electron-test-record", record)
    buf = _buffer(b"a\xffb")
    assert buf.decode(errors="electron-test-record") == "a?b"
    assert seen == [b"a\xffb"]


def test_is_utf8_on_arena_views() -> None:
    arena = Arena(64)
    v = arena.alloc(4)
    v[:] = "é!".encode() + b"\x00"
    assert is_utf8(v)
    v[0] = 0xFF
    assert not is_utf8(v)
    arena.close()


def test_decoding_a_returned_buffer_raises() -> None:
    pool = BufferPool()
    buf = pool.get(16)
    pool.put(buf)
    with pytest.raises(BufferClosed):
        buf.is_utf8()
    with pytest.raises(BufferClosed):
        buf.decode()
