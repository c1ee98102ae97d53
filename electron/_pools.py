"""BufferPool (size-classed byte buffers) and ObjectPool (reusable Python objects)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ._buffer import Buffer
from ._errors import DoubleRelease, ForeignObject, InvalidArgument, PoolClosed
from ._memory import check_size

if TYPE_CHECKING:
    from ._arena import Arena

__all__ = ("BufferPool", "BufferPoolStatistics", "ObjectPool", "ObjectPoolStatistics")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BufferPoolStatistics:
    """A snapshot of a :class:`BufferPool`."""

    active: int  #: buffers lent out now
    pooled: int  #: idle buffers kept for reuse
    pooled_bytes: int  #: bytes held by idle buffers
    created: int  #: buffers whose memory was allocated fresh
    reused: int  #: gets served from the pool
    dropped: int  #: buffers not kept on put (too large, pool full, trimmed)
    quarantined: int  #: buffers not reused because something still exported their memory


class BufferPool:
    """Lends :class:`Buffer` objects from power-of-two size classes and takes them back.

    Retention is bounded: at most ``max_pooled_bytes`` in total and ``max_per_class`` idle
    buffers per class; a buffer larger than ``max_size`` is dropped on :meth:`put`, so an
    outlier does not live forever in the pool. :meth:`trim` releases idle buffers that recent
    load did not need. Thread-safe.
    """

    def __init__(
        self,
        *,
        min_size: int = 256,
        max_size: int = 8 << 20,
        max_pooled_bytes: int = 64 << 20,
        max_per_class: int = 64,
    ) -> None:
        min_size = check_size(min_size, "min_size")
        max_size = check_size(max_size, "max_size")
        if min_size < 1 or max_size < min_size:
            raise InvalidArgument("max_size", max_size, f"an int >= min_size ({min_size}) >= 1")
        self._min = 1 << (min_size - 1).bit_length()
        self._max = max_size
        self._max_bytes = check_size(max_pooled_bytes, "max_pooled_bytes")
        self._max_per_class = check_size(max_per_class, "max_per_class")
        self._lock = threading.Lock()
        self._free: dict[int, list[bytearray]] = {}
        self._low: dict[int, int] = {}  # fewest idle buffers per class since the last trim
        self._pooled_bytes = 0
        self._active = 0
        self._created = 0
        self._reused = 0
        self._dropped = 0
        self._quarantined = 0
        self._closed = False

    def _class_of(self, size: int) -> int:
        return self._min if size <= self._min else 1 << (size - 1).bit_length()

    def get(self, size_hint: int = 0) -> Buffer:
        """An empty :class:`Buffer` with ``capacity >= size_hint``."""
        if size_hint.__class__ is not int or size_hint < 0:
            size_hint = check_size(size_hint, "size_hint")
        size = self._class_of(size_hint)
        if size > self._max:
            size = max(size_hint, 1)  # unpooled: exact size, dropped on put
        with self._lock:
            if self._closed:
                raise PoolClosed()
            self._active += 1
            free = self._free.get(size)
            if free:
                region = free.pop()
                self._pooled_bytes -= size
                self._reused += 1
                if len(free) < self._low[size]:
                    self._low[size] = len(free)
                return Buffer._adopt(region, self)
            self._created += 1
        return Buffer._adopt(bytearray(size), self)

    def put(self, buf: Buffer) -> None:
        """Take ``buf`` back: its views are released and the object is dead after this.

        Raises :class:`DoubleRelease` for a buffer already given back and
        :class:`ForeignObject` for one this pool did not lend.
        """
        if not isinstance(buf, Buffer) or buf._owner is not self:
            raise ForeignObject("buffer", self)
        with self._lock:
            if buf._mv is None:
                raise DoubleRelease("buffer")
            clean = buf._detach()
            self._active -= 1
            region = buf._region
            size = len(region)
            if not clean:
                self._quarantined += 1
                return
            if (
                self._closed
                or size > self._max
                or size != self._class_of(size)
                or self._pooled_bytes + size > self._max_bytes
            ):
                self._dropped += 1
                return
            free = self._free.setdefault(size, [])
            if len(free) >= self._max_per_class:
                self._dropped += 1
                return
            if size not in self._low:
                self._low[size] = 0
            free.append(region)
            self._pooled_bytes += size

    def _close_buffer(self, buf: Buffer) -> None:
        self.put(buf)

    def trim(self) -> int:
        """Release idle buffers that went unused since the last trim; return bytes freed."""
        freed = 0
        with self._lock:
            for size, free in self._free.items():
                drop = min(self._low.get(size, 0), len(free))
                if drop:
                    del free[:drop]
                    freed += drop * size
                    self._dropped += drop
                self._low[size] = len(free)
            self._pooled_bytes -= freed
        return freed

    def clear(self) -> None:
        """Release every idle buffer now."""
        with self._lock:
            self._dropped += sum(len(f) for f in self._free.values())
            self._free.clear()
            self._low.clear()
            self._pooled_bytes = 0

    def close(self) -> None:
        """Release idle buffers and refuse new gets; buffers lent out may still be put."""
        self.clear()
        with self._lock:
            self._closed = True

    def statistics(self) -> BufferPoolStatistics:
        """A consistent snapshot of this pool's counters."""
        with self._lock:
            return BufferPoolStatistics(
                active=self._active,
                pooled=sum(len(f) for f in self._free.values()),
                pooled_bytes=self._pooled_bytes,
                created=self._created,
                reused=self._reused,
                dropped=self._dropped,
                quarantined=self._quarantined,
            )

    def __enter__(self) -> BufferPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BufferPool classes={self._min}..{self._max} pooled_bytes={self._pooled_bytes}>"


@dataclass(frozen=True, slots=True)
class ObjectPoolStatistics:
    """A snapshot of an :class:`ObjectPool`."""

    active: int  #: objects lent out now
    pooled: int  #: idle objects kept for reuse
    created: int  #: objects made by the factory
    reused: int  #: gets served from the pool
    generation: int  #: resets of the bound arena seen so far


class ObjectPool(Generic[T]):
    """Reuses objects made by ``factory``: ``put(obj)`` then ``get()`` returns ``obj`` again.

    ``reset(obj)`` runs on every put. Bound to an arena (``arena=``), the pool forgets its
    idle objects whenever that arena is reset and ignores objects from an older generation
    when they come back, so memory from before a reset is never handed out again.
    Thread-safe.
    """

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        reset: Callable[[T], object] | None = None,
        max_size: int | None = None,
        arena: Arena | None = None,
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable, not {type(factory).__name__}")
        self._factory = factory
        self._reset = reset
        self._max = None if max_size is None else check_size(max_size, "max_size")
        self._lock = threading.Lock()
        self._idle: list[T] = []
        self._idle_ids: set[int] = set()
        self._out: dict[int, tuple[T, int]] = {}  # id -> (object, generation)
        self._stale: set[int] = set()  # ids lent before the bound arena's last reset
        self._generation = 0
        self._created = 0
        self._reused = 0
        if arena is not None:
            arena.call_on_reset(self._on_arena_reset)

    def _on_arena_reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._idle.clear()
            self._idle_ids.clear()
            self._stale.update(self._out)
            self._out.clear()

    def get(self) -> T:
        """An idle object if there is one, else a new one from the factory."""
        with self._lock:
            if self._idle:
                obj = self._idle.pop()
                self._idle_ids.discard(id(obj))
                self._reused += 1
            else:
                obj = self._factory()
                self._created += 1
            self._out[id(obj)] = (obj, self._generation)
            return obj

    def put(self, obj: T) -> None:
        """Give ``obj`` back for reuse; refuses an object given back twice or not lent here.

        An object lent before the bound arena's last reset is dropped, not kept.
        """
        with self._lock:
            key = id(obj)
            if key in self._idle_ids:
                raise DoubleRelease(type(obj).__name__)
            entry = self._out.pop(key, None)
            if entry is None:
                if key in self._stale:
                    self._stale.discard(key)
                    return  # lent before the arena reset: forgotten, never reused
                raise ForeignObject(type(obj).__name__, self)
            if entry[0] is not obj:
                self._out[key] = entry
                raise ForeignObject(type(obj).__name__, self)
        if self._reset is not None:
            self._reset(obj)
        with self._lock:
            if entry[1] != self._generation:
                self._stale.discard(key)
                return
            if self._max is not None and len(self._idle) >= self._max:
                return
            self._idle.append(obj)
            self._idle_ids.add(key)

    def discard(self, obj: T) -> None:
        """Forget a lent object without pooling it (it failed, or it is kept elsewhere)."""
        with self._lock:
            self._out.pop(id(obj), None)
            self._stale.discard(id(obj))

    @contextmanager
    def borrow(self) -> Iterator[T]:
        """``with pool.borrow() as obj:`` gets an object and puts it back on exit."""
        obj = self.get()
        try:
            yield obj
        finally:
            self.put(obj)

    def statistics(self) -> ObjectPoolStatistics:
        """A consistent snapshot of this pool's counters."""
        with self._lock:
            return ObjectPoolStatistics(
                active=len(self._out),
                pooled=len(self._idle),
                created=self._created,
                reused=self._reused,
                generation=self._generation,
            )

    def __len__(self) -> int:
        """Number of idle objects."""
        return len(self._idle)
