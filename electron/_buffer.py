"""Buffer: a growable byte buffer whose memory is meant to be pooled and reused."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Final, Protocol, SupportsIndex, cast

from ._checks import check_size
from ._errors import BufferClosed, InvalidArgument
from ._handle import Handle
from ._regions import UNMAPPED, RegionHolder, release_all, zero
from ._text import (
    float_repr,
    html_escape,
    int_digits,
    is_utf8,
    json_string,
    split_views,
    splitlines_views,
    whitespace_split_views,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer as BytesLike

__all__ = ("Buffer", "BufferOwner")


class BufferOwner(Protocol):
    """What a buffer needs from the pool that lent it (:class:`~electron.BufferPool`)."""

    def put(self, buf: Buffer) -> None:
        """Take ``buf`` back (its ``close()``)."""

    def _buffer_grow(self, capacity: int, need: int) -> tuple[int, bytearray | None]:
        """A lent buffer of ``capacity`` bytes needs ``need``: its new capacity, counted (or
        the budget's error), and an idle region to grow into (None: allocate one)."""

    def _buffer_grow_undone(self, delta: int, region: bytearray | None) -> None:
        """A growth counted by ``_buffer_grow`` did not happen; ``region`` goes back."""

    def _buffer_outgrown(self, old: RegionHolder) -> None:
        """The buffer grew out of ``old``'s region: the pool may keep it for reuse."""

    def _buffer_leaked(self, buf: Buffer, mv: memoryview) -> None:
        """``buf`` is being garbage-collected while lent (``mv``: its base view)."""


def _as_bytes(data: BytesLike) -> memoryview:
    """A flat unsigned-byte view of any bytes-like object."""
    v = memoryview(data)
    if v.format == "B" and v.ndim == 1 and v.c_contiguous:
        return v
    if v.c_contiguous:
        return v.cast("B")
    return memoryview(v.tobytes())


def _to_bytes(data: BytesLike) -> bytes:
    """``data`` as ``bytes`` (a copy unless it is one): for short arguments like separators."""
    if type(data) is bytes:
        return data
    return _as_bytes(data).tobytes()


# replace_into copies the pieces between matches straight from the source into ``dest``: one
# search pass, no temporary copy, but a few Python-level steps per match. Replacing is left
# to ``bytes.replace`` on a copy (two searches and two copies, all in C) for sources under
# _REPLACE_IN_PIECES bytes, and for the rest of a source once more than _DENSE_AFTER matches
# came at more than one per _DENSE bytes.
_REPLACE_IN_PIECES: Final = 2048

# Decoding a few hundred bytes is faster from a bytes copy than through a view (``str(view,
# ...)`` pays for keyword parsing and a buffer export; ``bytes.decode`` has fast paths).
_DECODE_VIA_COPY: Final = 512
# The encodings CPython decodes in C straight from the memory (PyUnicode_Decode's shortcuts,
# after its normalisation); any other goes through a codec that may be Python code.
_C_DECODERS: Final = frozenset(
    (
        "utf_8",
        "utf8",
        "utf_16",
        "utf16",
        "utf_32",
        "utf32",
        "ascii",
        "us_ascii",
        "latin1",
        "latin_1",
        "iso_8859_1",
        "iso8859_1",
    )
)


def _decodes_in_c(encoding: object) -> bool:
    if type(encoding) is not str:  # not even a str subclass: its lower() could lie
        return False  # bytes.decode then raises the usual TypeError
    return encoding.lower().replace("-", "_").replace(" ", "_") in _C_DECODERS


_DENSE_AFTER: Final = 4
_DENSE: Final = 512


class Buffer(Handle):
    """A growable byte buffer that keeps its capacity across uses.

    Writes append; :meth:`view` exposes the written bytes without copying. A buffer from a
    pool goes back with ``pool.put(buf)``: every view it handed out is then released and
    the object is dead (its next use raises :class:`BufferClosed`); the memory goes to the
    next caller under a new ``Buffer``. Bytes beyond what was written are never exposed.
    """

    __slots__ = ("_len", "_owner", "_ready", "_views")

    def __init__(self, capacity: SupportsIndex = 0) -> None:
        self._init(bytearray(check_size(capacity, "capacity")), None)

    def _init(self, region: bytearray, owner: BufferOwner | None) -> None:
        Handle.__init__(self, region)  # the base view is made on first need: see _base
        self._len = 0
        self._ready = 0  # end of the bytes reserve() zeroed: commit() may not go past it
        self._views: list[memoryview] | None = None
        self._owner: BufferOwner | None = owner

    def _closed_error(self) -> BufferClosed:
        return BufferClosed(where=self._trace)

    def _base(self) -> memoryview:
        """The view of the whole region, made on first need; raises once the buffer is dead.

        It never leaves the buffer: what callers get are slices of it, kept in ``_views``.
        """
        mv = self._mv
        if mv is None:
            raise self._closed_error()
        if mv is UNMAPPED:
            mv = memoryview(self._region)
            self._check_alive(UNMAPPED, mv)
            self._mv = mv
        return mv

    def _check_alive(self, mv: memoryview, made: memoryview | None = None) -> None:
        """Raise the closed error, releasing ``made``, if the buffer's base view is no longer
        ``mv``: it was given back while this method ran (a finalizer run by a collection, an
        argument's ``__index__`` or ``__buffer__``). Called after every step that may run
        such code, so that a returned buffer never writes to, nor hands out, memory that
        may be lent again."""
        if self._mv is not mv:
            if made is not None:
                made.release()
            raise self._closed_error()

    def _track(self, mv: memoryview, v: memoryview) -> memoryview:
        """Remember the view ``v`` of the base view ``mv`` (released on return) and give it."""
        views = self._views
        if views is None:
            self._views = [v]
        else:
            views.append(v)
        self._check_alive(mv, v)
        return v

    def _grow(self, old: memoryview, need: int) -> memoryview:
        capacity = len(self._region)
        owner = self._owner
        given: bytearray | None = None
        if owner is None:
            new_cap = max(need, 2 * capacity, 64)
            new_cap = 1 << (new_cap - 1).bit_length()
        else:
            new_cap, given = owner._buffer_grow(capacity, need)  # counted, or the budget's error
        try:
            region = bytearray(new_cap) if given is None else given
            mv = memoryview(region)
            mv[: self._len] = old[: self._len]  # a pooled region's bytes beyond stay unexposed
            self._check_alive(old, mv)
        except BaseException:  # MemoryError, or the buffer was given back meanwhile
            if owner is not None:
                owner._buffer_grow_undone(new_cap - capacity, given)
            raise
        outgrown = RegionHolder(self._region)
        self._region = region
        self._mv = mv
        old.release()
        del region, given
        # The old region stays alive only through the views this buffer handed out (released
        # when it goes back); with none, the pool can reuse it now.
        if owner is not None and self._views is None:
            owner._buffer_outgrown(outgrown)
        return mv

    def write(self, data: BytesLike) -> int:
        """Append the bytes of ``data`` (any bytes-like object); return how many."""
        cls = type(data)
        if cls is bytes or cls is bytearray:  # exactly: a subclass may define __buffer__
            return self._append(cast("bytes | bytearray", data))
        return self._append(_as_bytes(data))  # may run the argument's own code (__buffer__)

    def write_str(self, s: str, encoding: str = "utf-8") -> int:
        """Append ``s`` encoded with ``encoding``; return the number of bytes written."""
        if type(s) is not str and not isinstance(s, str):
            raise TypeError(f"write_str() takes a str, not {type(s).__name__}")
        return self.write(s.encode(encoding))

    def reserve(self, n: SupportsIndex) -> memoryview:
        """Return a zeroed writable view of ``n`` bytes past the end, for ``readinto``.

        Nothing counts as written until :meth:`commit`; the view is released when the buffer
        goes back to its pool.
        """
        n = check_size(n)
        mv = self._base()
        start = self._len
        if start + n > len(mv):
            mv = self._grow(mv, start + n)
        v = mv[start : start + n]
        self._check_alive(mv, v)
        zero(v, n)
        self._ready = start + n
        return self._track(mv, v)

    def commit(self, n: SupportsIndex) -> None:
        """Count ``n`` more bytes, filled through a :meth:`reserve` view, as written.

        Only reserved bytes can be committed: anything else could expose memory from an
        earlier use of the buffer's region.
        """
        n = check_size(n)
        if self._mv is None:
            raise self._closed_error()
        if self._len + n > self._ready:
            room = max(0, self._ready - self._len)
            raise InvalidArgument("n", n, f"at most {room}: the bytes reserved and not committed")
        self._len += n

    def getvalue(self) -> bytes:
        """A copy of the written bytes."""
        mv = self._base()
        data = mv[: self._len].tobytes()
        self._check_alive(mv)
        return data

    def view(self) -> memoryview:
        """The written bytes, without copying; released when the buffer goes back."""
        mv = self._base()
        v = mv[: self._len]
        self._check_alive(mv, v)
        return self._track(mv, v)

    def clear(self) -> None:
        """Forget the written bytes, keeping the capacity."""
        if self._mv is None:
            raise self._closed_error()
        self._len = 0

    def close(self) -> None:
        """Give a pooled buffer back to its pool, or drop a standalone one. Idempotent."""
        if self._mv is None:
            return
        owner = self._owner
        if owner is not None:
            owner.put(self)
        else:
            self._detach(self._mv)

    def _detach(self, mv: memoryview) -> bool:
        """Kill this handle (``mv`` is its base view); True when its region can be reused."""
        self._mv = None
        if mv is UNMAPPED:  # no view was ever made: nothing can reach the region
            return True
        views = self._views
        self._views = None
        clean = True if views is None else release_all(views)
        try:
            mv.release()
        except BufferError:
            return False
        return clean and self._region_free()

    # -- text: searching (bytearray methods on the written prefix: memchr, fast search) --------

    def _bounds(self, start: SupportsIndex | None, end: SupportsIndex | None) -> tuple[int, int]:
        """``start`` and ``end`` resolved like slice indices of the written bytes."""
        n = self._len
        if end is None:
            e = n
        else:
            e = operator.index(end)
            if e < 0:
                e = max(e + n, 0)
            elif e > n:
                e = n
        if start is None:
            return 0, e
        s = operator.index(start)
        if s < 0:
            s = max(s + n, 0)
        return s, e

    def find(
        self,
        sub: BytesLike | SupportsIndex,
        start: SupportsIndex | None = None,
        end: SupportsIndex | None = None,
    ) -> int:
        """Lowest index of ``sub`` in the written bytes, or -1: ``bytes.find`` semantics.

        ``sub`` is bytes-like or a byte value (int); ``start``/``end`` are slice indices. Runs
        CPython's search (memchr for one byte) on the buffer's memory, without a copy.
        """
        s, e = (0, self._len) if start is None and end is None else self._bounds(start, end)
        if self._mv is None:  # checked after the bounds: their __index__ may give it back
            raise self._closed_error()
        return self._region.find(sub, s, e)

    def count(
        self,
        sub: BytesLike | SupportsIndex,
        start: SupportsIndex | None = None,
        end: SupportsIndex | None = None,
    ) -> int:
        """Non-overlapping occurrences of ``sub`` in the written bytes: ``bytes.count``."""
        s, e = (0, self._len) if start is None and end is None else self._bounds(start, end)
        if self._mv is None:  # checked after the bounds: their __index__ may give it back
            raise self._closed_error()
        return self._region.count(sub, s, e)

    def startswith(
        self,
        prefix: BytesLike | tuple[BytesLike, ...],
        start: SupportsIndex | None = None,
        end: SupportsIndex | None = None,
    ) -> bool:
        """True when the written bytes start with ``prefix`` (or one of a tuple of them)."""
        s, e = self._bounds(start, end)
        if self._mv is None:  # checked after the bounds: their __index__ may give it back
            raise self._closed_error()
        return self._region.startswith(prefix, s, e)

    def endswith(
        self,
        suffix: BytesLike | tuple[BytesLike, ...],
        start: SupportsIndex | None = None,
        end: SupportsIndex | None = None,
    ) -> bool:
        """True when the written bytes end with ``suffix`` (or one of a tuple of them)."""
        s, e = self._bounds(start, end)
        if self._mv is None:  # checked after the bounds: their __index__ may give it back
            raise self._closed_error()
        return self._region.endswith(suffix, s, e)

    # -- text: splitting into views ------------------------------------------------------

    def _track_all(self, mv: memoryview, views: list[memoryview]) -> list[memoryview]:
        tracked = self._views
        if tracked is None:
            self._views = views.copy()
        else:
            tracked.extend(views)
        if self._mv is not mv:  # given back meanwhile (see _check_alive)
            release_all(views)
            raise self._closed_error()
        return views

    def split(self, sep: BytesLike | None = None, maxsplit: SupportsIndex = -1) -> list[memoryview]:
        """``bytes.split`` of the written bytes, as views instead of copies.

        With ``sep`` the pieces between its occurrences (empty ones included); without, the
        runs of ASCII-whitespace-separated bytes. The views are released when the buffer
        goes back to its pool; writing to the buffer may change what they show.
        """
        limit = operator.index(maxsplit)
        needle = None if sep is None else _to_bytes(sep)
        if needle is not None and not needle:
            raise ValueError("empty separator")
        mv = self._base()
        if needle is None:
            views = whitespace_split_views(self._region, mv, self._len, limit)
        else:
            views = split_views(self._region, mv, self._len, needle, limit)
        return self._track_all(mv, views)

    def splitlines(self, keepends: bool = False) -> list[memoryview]:
        """``bytes.splitlines`` of the written bytes (LF, CR, CRLF), as views, not copies.

        The views are released when the buffer goes back to its pool.
        """
        keep = bool(keepends)
        mv = self._base()
        return self._track_all(mv, splitlines_views(self._region, mv, self._len, keep))

    # -- text: writing -------------------------------------------------------------------

    def _append(self, data: bytes | bytearray | memoryview) -> int:
        """Append a flat run of bytes. The base view is written through only while it is
        still this buffer's: a return meanwhile raises (or released it: ``ValueError``)."""
        mv = self._base()
        n = len(data)
        start = self._len
        end = start + n
        if end > len(mv):
            mv = self._grow(mv, end)
        mv[start:end] = data
        self._len = end
        return n

    def replace_into(
        self, old: BytesLike, new: BytesLike, dest: Buffer, count: SupportsIndex = -1
    ) -> int:
        """Append to ``dest`` the written bytes with ``old`` replaced by ``new``.

        Writes what ``bytes(self).replace(old, new, count)`` would give, without building
        it when matches are sparse (the pieces go straight from this buffer's memory into
        ``dest``, in one search pass); returns the number of bytes written. ``dest`` must be
        another buffer.
        """
        mv = self._base()
        if not isinstance(dest, Buffer):
            raise TypeError(f"dest must be a Buffer, not {type(dest).__name__}")
        if dest is self:
            raise InvalidArgument("dest", dest, "a Buffer other than the source")
        if dest._mv is None:
            raise dest._closed_error()
        old_b = _to_bytes(old)
        new_b = _to_bytes(new)
        limit = operator.index(count)
        n = self._len
        m = len(old_b)
        if m == 0 or n < _REPLACE_IN_PIECES:
            return dest._append(mv[:n].tobytes().replace(old_b, new_b, limit))
        # One search pass; the pieces between matches go straight into dest.
        region = self._region
        written = 0
        pos = 0
        hits = 0
        while hits != limit:
            i = region.find(old_b, pos, n)
            if i < 0:
                break
            written += dest._append_view(mv, pos, i)
            written += dest._append(new_b)
            pos = i + m
            hits += 1
            if hits >= _DENSE_AFTER and hits * _DENSE > pos:
                rest = mv[pos:n].tobytes().replace(old_b, new_b, limit - hits if limit > 0 else -1)
                return written + dest._append(rest)
        return written + dest._append_view(mv, pos, n)

    def _append_view(self, src: memoryview, start: int, end: int) -> int:
        """Append ``src[start:end]`` (a flat byte view)."""
        mv = self._base()
        k = end - start
        at = self._len
        if at + k > len(mv):
            mv = self._grow(mv, at + k)
        mv[at : at + k] = src[start:end]
        self._len = at + k
        return k

    def write_html_escaped(self, s: str) -> int:
        """Append ``html.escape(s).encode()``: ``& < > " '`` as entities, then UTF-8.

        Safe for HTML text and quoted attribute values. Returns the number of bytes written;
        a lone surrogate in ``s`` raises :class:`UnicodeEncodeError` and writes nothing.
        """
        return self._append(html_escape(s))

    def write_json_string(self, s: str, ensure_ascii: bool = True) -> int:
        """Append ``s`` as a quoted JSON string, exactly ``json.dumps(s, ensure_ascii=...)``.

        With ``ensure_ascii`` (the default) the output is ASCII (``\\uXXXX`` escapes) and
        any string can be written; without it, UTF-8, and a lone surrogate raises
        :class:`UnicodeEncodeError`. Returns the number of bytes written.
        """
        return self._append(json_string(s, ensure_ascii))

    def write_int(self, n: SupportsIndex) -> int:
        """Append the decimal digits of ``n``, exactly ``str(n).encode()`` for an ``int``.

        Integers of other types (numpy) give the digits of their value; ``bool`` raises
        :class:`TypeError`. Returns the number of bytes written.
        """
        return self._append(int_digits(n))

    def write_float(self, x: float | int) -> int:
        """Append ``repr(x).encode()``: the shortest form that reads back as ``x``.

        ``inf`` and ``nan`` are written as such (not valid JSON); an ``int`` is written as
        its digits; ``bool`` raises :class:`TypeError`. Returns the number of bytes written.
        """
        return self._append(float_repr(x))

    # -- text: decoding ------------------------------------------------------------------

    def is_utf8(self) -> bool:
        """True when the written bytes are valid (strict) UTF-8."""
        mv = self._base()
        n = self._len
        if n < _DECODE_VIA_COPY:
            return is_utf8(mv[:n].tobytes())
        return is_utf8(mv[:n])

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The written bytes decoded, exactly ``bytes(buf).decode(encoding, errors)``.

        Large contents are decoded from the buffer's memory, without a copy into ``bytes``.
        """
        mv = self._base()
        n = self._len
        if n < _DECODE_VIA_COPY or not _decodes_in_c(encoding):
            # A codec written in Python gets a raw view of the memory, which its frame (kept
            # by a decoding error's traceback) could hold past the buffer's return: copy.
            return mv[:n].tobytes().decode(encoding, errors)
        return str(mv[:n], encoding, errors)

    def __len__(self) -> int:
        if self._mv is None:
            raise self._closed_error()
        return self._len

    @property
    def capacity(self) -> int:
        """Bytes the buffer can hold before it grows."""
        return len(self._region)

    @property
    def closed(self) -> bool:
        """True once the buffer went back to its pool."""
        return self._mv is None

    def __enter__(self) -> Buffer:
        if self._mv is None:
            raise self._closed_error()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._mv is None else f"len={self._len}"
        return f"<Buffer capacity={len(self._region)} {state}>"


class _LentBuffer(Buffer):
    """A buffer over a region lent by a pool: one object per loan, dead once given back."""

    __slots__ = ()

    def __init__(self, region: bytearray, owner: BufferOwner) -> None:
        self._init(region, owner)

    def __del__(self) -> None:
        mv = self._mv
        owner = self._owner
        if mv is not None and owner is not None:
            owner._buffer_leaked(self, mv)
