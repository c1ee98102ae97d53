"""Buffer: a growable byte buffer whose memory is meant to be pooled and reused."""

from __future__ import annotations

from typing import TYPE_CHECKING, SupportsIndex

from ._errors import BufferClosed
from ._memory import check_size, is_exported, release_all, zero

if TYPE_CHECKING:
    from typing_extensions import Buffer as BytesLike

    from ._pools import BufferPool

__all__ = ("Buffer",)


def _as_bytes(data: BytesLike) -> memoryview:
    """A flat unsigned-byte view of any bytes-like object."""
    v = memoryview(data)
    if v.format == "B" and v.ndim == 1 and v.c_contiguous:
        return v
    if v.c_contiguous:
        return v.cast("B")
    return memoryview(v.tobytes())


class Buffer:
    """A growable byte buffer that keeps its capacity across uses.

    Writes append; :meth:`view` exposes the written bytes without copying. A buffer from a
    pool goes back with ``pool.put(buf)``: every view it handed out is then released and
    the object is dead (its next use raises :class:`BufferClosed`); the memory goes to the
    next caller under a new ``Buffer``. Bytes beyond what was written are never exposed.
    """

    __slots__ = ("_len", "_mv", "_owner", "_region", "_trace", "_views")

    def __init__(self, capacity: SupportsIndex = 0) -> None:
        region = bytearray(check_size(capacity, "capacity"))
        self._region = region
        self._mv: memoryview | None = memoryview(region)
        self._len = 0
        self._views: list[memoryview] | None = None
        self._owner: BufferPool | None = None
        self._trace: str | None = None  # where it was taken, then where given back (tracing)

    def _closed_error(self) -> BufferClosed:
        return BufferClosed(where=self._trace)

    def _track(self, v: memoryview) -> None:
        views = self._views
        if views is None:
            self._views = [v]
        else:
            views.append(v)

    def _grow(self, need: int) -> memoryview:
        old = self._mv
        assert old is not None
        new_cap = max(need, 2 * len(self._region), 64)
        new_cap = 1 << (new_cap - 1).bit_length()
        owner = self._owner
        if owner is not None:
            owner._grew(new_cap - len(self._region))
        region = bytearray(new_cap)
        mv = memoryview(region)
        mv[: self._len] = old[: self._len]
        # The old region stays alive (unexported once ``old`` is released) only through the
        # views this buffer handed out; those are released when the buffer goes back.
        old.release()
        self._region = region
        self._mv = mv
        return mv

    def write(self, data: BytesLike) -> int:
        """Append the bytes of ``data`` (any bytes-like object); return how many."""
        mv = self._mv
        if mv is None:
            raise self._closed_error()
        cls = type(data)
        if cls is not bytes and cls is not bytearray:
            data = _as_bytes(data)
        n = len(data)  # type: ignore[arg-type]
        start = self._len
        end = start + n
        if end > len(mv):
            mv = self._grow(end)
        mv[start:end] = data
        self._len = end
        return n

    def write_str(self, s: str, encoding: str = "utf-8") -> int:
        """Append ``s`` encoded with ``encoding``; return the number of bytes written."""
        return self.write(s.encode(encoding))

    def reserve(self, n: SupportsIndex) -> memoryview:
        """Return a zeroed writable view of ``n`` bytes past the end, for ``readinto``.

        Nothing counts as written until :meth:`commit`; the view is released when the buffer
        goes back to its pool.
        """
        mv = self._mv
        if mv is None:
            raise self._closed_error()
        n = check_size(n)
        start = self._len
        if start + n > len(mv):
            mv = self._grow(start + n)
        v = mv[start : start + n]
        zero(v, n)
        self._track(v)
        return v

    def commit(self, n: SupportsIndex) -> None:
        """Count ``n`` more bytes, filled through a :meth:`reserve` view, as written."""
        if self._mv is None:
            raise self._closed_error()
        n = check_size(n)
        if self._len + n > len(self._region):
            raise ValueError(f"commit({n}) goes past the capacity {len(self._region)}")
        self._len += n

    def getvalue(self) -> bytes:
        """A copy of the written bytes."""
        mv = self._mv
        if mv is None:
            raise self._closed_error()
        return mv[: self._len].tobytes()

    def view(self) -> memoryview:
        """The written bytes, without copying; released when the buffer goes back."""
        mv = self._mv
        if mv is None:
            raise self._closed_error()
        v = mv[: self._len]
        self._track(v)
        return v

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
        clean = True
        views = self._views
        if views is not None:
            clean = release_all(views)
            self._views = None
        mv.release()
        self._mv = None
        return clean and not is_exported(self._region)

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
    """A buffer over a region lent by a :class:`BufferPool` (a new object per loan)."""

    __slots__ = ()

    def __init__(self, region: bytearray, owner: BufferPool) -> None:
        self._region = region
        self._mv = memoryview(region)
        self._len = 0
        self._views = None
        self._owner = owner
        self._trace = None

    def __del__(self) -> None:
        mv = self._mv
        owner = self._owner
        if mv is not None and owner is not None:
            owner._collect_leaked(self, mv)
