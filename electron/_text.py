"""Text utilities: fast encoders (HTML, JSON, numbers) and searches over a bytearray prefix.

Everything here delegates to CPython's C code (``bytes.replace``, ``bytearray.find``,
``json``'s C string encoder, int and float ``repr``) and only decides which of it to call; each
result is byte-for-byte what the obvious standard-library expression gives (see the
docstrings), which the tests check against arbitrary input.
"""

from __future__ import annotations

import json.encoder
import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, SupportsIndex, cast

if TYPE_CHECKING:
    from typing_extensions import Buffer as BytesLike

__all__ = (
    "float_repr",
    "html_escape",
    "int_digits",
    "is_utf8",
    "json_string",
    "split_views",
    "splitlines_views",
    "whitespace_split_views",
)

# json.dumps(s) for a str s is exactly one call of these (the C versions when _json exists).
_JSON_ASCII: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii
_JSON_UTF8: Final[Callable[[str], str]] = json.encoder.encode_basestring

# html_escape replaces in str below this length when ASCII (fewer, cheaper calls there).
_SHORT_TEXT: Final = 64

_SMALL_INTS: Final = 1024
# Digits of 0..1023, ready-made: an index beats formatting for the common small numbers.
_DIGITS: Final[tuple[bytes, ...]] = tuple(str(i).encode() for i in range(_SMALL_INTS))

# Compiled, ``str(n)`` of an int mypyc keeps unboxed (|n| < 2**62) is its own fast formatting
# (faster than ``b"%d" % n``), but for a larger one mypyc's helpers leak a reference to the int
# (and ``b"%d" % n`` crashes when ``str`` fails, over sys.get_int_max_str_digits() digits):
# larger ints are formatted as plain objects, by ``str`` on an ``object``-typed value.
_WORD: Final = 4611686018427387903  # 2**62 - 1, the largest int mypyc keeps unboxed

# bytes.split() with no separator splits on runs of these (Py_ISSPACE on bytes).
_NON_SPACE: Final = re.compile(rb"[^ \t\n\r\x0b\x0c]+")


def html_escape(s: str) -> bytes:
    """``html.escape(s).encode()``, faster: ``& < > " '`` become entities, then UTF-8.

    The five characters are looked for with ``in`` (memchr) and replaced only when present.
    A short ASCII string is replaced as ``str``; anything else as UTF-8 bytes, where each
    of the five is one byte and ``bytes.replace`` beats ``str.replace`` on long or non-ASCII
    text. A lone surrogate raises :class:`UnicodeEncodeError`, like the standard expression.
    """
    amp = "&" in s
    lt = "<" in s
    gt = ">" in s
    dq = '"' in s
    sq = "'" in s
    if not (amp or lt or gt or dq or sq):
        return s.encode()
    if len(s) < _SHORT_TEXT and s.isascii():
        if amp:  # first, or it would escape the other entities' ampersands
            s = s.replace("&", "&amp;")
        if lt:
            s = s.replace("<", "&lt;")
        if gt:
            s = s.replace(">", "&gt;")
        if dq:
            s = s.replace('"', "&quot;")
        if sq:
            s = s.replace("'", "&#x27;")
        return s.encode()
    b = s.encode()
    if amp:
        b = b.replace(b"&", b"&amp;")
    if lt:
        b = b.replace(b"<", b"&lt;")
    if gt:
        b = b.replace(b">", b"&gt;")
    if dq:
        b = b.replace(b'"', b"&quot;")
    if sq:
        b = b.replace(b"'", b"&#x27;")
    return b


def json_string(s: str, ensure_ascii: bool = True) -> bytes:
    """``json.dumps(s, ensure_ascii=ensure_ascii).encode()``: ``s`` as a quoted JSON string.

    With ``ensure_ascii`` (the default) the output is ASCII and every string can be
    written, lone surrogates included (as ``\\udXXX`` escapes). Without it non-ASCII
    characters are written as UTF-8 and a lone surrogate raises
    :class:`UnicodeEncodeError`, as the standard expression does.
    """
    if ensure_ascii:
        return _JSON_ASCII(s).encode()
    return _JSON_UTF8(s).encode()


def int_digits(n: SupportsIndex) -> bytes:
    """The decimal digits of an integer: ``str(n).encode()`` for an ``int``.

    Int subclasses and other integers (``__index__``, e.g. numpy) give the digits of their
    value; ``bool`` is refused with :class:`TypeError` (``str(True)`` is not a number), as
    is anything that is not an integer. Integers over ``sys.get_int_max_str_digits()``
    digits raise :class:`ValueError`, as ``str`` does.
    """
    obj: object = n
    if type(obj) is int:
        if -_WORD <= obj <= _WORD:
            if 0 <= obj < _SMALL_INTS:
                return _DIGITS[obj]
            return str(obj).encode()
        return _digits_of(n)
    if isinstance(obj, bool) or not hasattr(obj, "__index__"):
        raise TypeError(f"expected an int, not {type(obj).__name__}")
    return _digits_of(operator.index(obj))


def _digits_of(n: object) -> bytes:
    """``str(n).encode()`` with ``n`` kept an object (see _WORD)."""
    return str(n).encode()


def float_repr(x: float | int) -> bytes:
    """``repr(x).encode()`` for a ``float`` (shortest round-tripping form, ``inf``, ``nan``).

    An ``int`` gives its digits, as ``repr`` does; subclasses (numpy's ``float64``) give the
    repr of their value, not their own; ``bool`` and anything else raise :class:`TypeError`.
    """
    obj: object = x  # not narrowed to int below: compiled code would unbox True into 1
    if type(obj) is float:
        return repr(obj).encode()
    if isinstance(obj, float):
        return float.__repr__(obj).encode()
    return int_digits(cast(SupportsIndex, obj))


def is_utf8(data: BytesLike) -> bool:
    """True when ``data`` (any bytes-like object, e.g. an arena view) is valid UTF-8.

    Strict UTF-8 as CPython decodes it: no surrogates, no overlong forms, nothing above
    U+10FFFF, no truncated sequence at the end.
    """
    try:
        if isinstance(data, bytes):
            data.decode()
        else:
            str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def split_views(
    region: bytearray, mv: memoryview, n: int, sep: bytes, maxsplit: int
) -> list[memoryview]:
    """``region[:n].split(sep, maxsplit)`` as views of ``mv`` (a view of ``region``).

    ``sep`` is non-empty bytes; each piece is found with ``bytearray.find`` (memchr or
    CPython's fast search) and nothing is copied.
    """
    out: list[memoryview] = []
    m = len(sep)
    pos = 0
    if maxsplit < 0:
        maxsplit = n + 1  # more than there can be separators
    while maxsplit > 0:
        i = region.find(sep, pos, n)
        if i < 0:
            break
        out.append(mv[pos:i])
        pos = i + m
        maxsplit -= 1
    out.append(mv[pos:n])
    return out


def whitespace_split_views(
    region: bytearray, mv: memoryview, n: int, maxsplit: int
) -> list[memoryview]:
    """``region[:n].split(None, maxsplit)`` (runs of ASCII whitespace) as views of ``mv``."""
    out: list[memoryview] = []
    if maxsplit < 0:
        maxsplit = n + 1
    for match in _NON_SPACE.finditer(region, 0, n):
        start, end = match.span()
        if maxsplit == 0:  # the rest, from its first non-space byte, trailing space kept
            out.append(mv[start:n])
            break
        out.append(mv[start:end])
        maxsplit -= 1
    return out


def splitlines_views(region: bytearray, mv: memoryview, n: int, keepends: bool) -> list[memoryview]:
    """``region[:n].splitlines(keepends)`` as views of ``mv``: lines end at LF, CR or CRLF.

    The next LF and the next CR are each found with memchr and merged, so a buffer with
    only LF line ends costs one memchr per line.
    """
    out: list[memoryview] = []
    pos = 0
    lf = region.find(10, 0, n)
    cr = region.find(13, 0, n)
    while pos < n:
        if lf < 0 and cr < 0:
            out.append(mv[pos:n])
            break
        if cr < 0 or 0 <= lf < cr:
            i = lf
            eol = i + 1
        else:
            i = cr
            eol = i + 2 if i + 1 < n and region[i + 1] == 10 else i + 1
        out.append(mv[pos : eol if keepends else i])
        pos = eol
        if 0 <= lf < pos:
            lf = region.find(10, pos, n)
        if 0 <= cr < pos:
            cr = region.find(13, pos, n)
    return out
