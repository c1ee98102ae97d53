"""BufferPool: lends byte buffers from power-of-two size classes and takes them back."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, SupportsIndex

from ._buffer import Buffer, _LentBuffer
from ._checks import check_size
from ._errors import DoubleRelease, ForeignObject, InvalidArgument, PoolClosed, PoolExhausted
from ._leaks import SAMPLE_EVERY, LeakDetection, capture, level_from, report_leak
from ._lock import PoolLock
from ._regions import IdleRegions, RegionHolder

#: What ``max_pooled_bytes`` is unless given (halved to fit a smaller budget).
_DEFAULT_POOLED = 64 << 20

if TYPE_CHECKING:
    from ._arena_of_pools import ArenaOfPools

__all__ = ("BufferPool", "BufferPoolStatistics")

_NO_REGION = bytearray()


@dataclass(frozen=True, slots=True)
class BufferPoolStatistics:
    """A snapshot of a :class:`BufferPool`."""

    active: int  #: buffers lent out now
    active_bytes: int  #: capacity of the buffers lent out now
    pooled: int  #: idle buffers kept for reuse
    pooled_bytes: int  #: bytes held by idle buffers
    created: int  #: buffers whose memory was allocated fresh
    reused: int  #: gets served from the pool
    dropped: int  #: buffers not kept on put (too large, pool full, trimmed)
    quarantined: int  #: buffers not reused because something still exported their memory
    leaks_detected: int  #: buffers garbage-collected without being given back (reclaimed)
    pooled_by_size: tuple[tuple[int, int], ...] = ()  #: (size class, idle buffers), by size


class BufferPool:
    """Lends :class:`Buffer` objects from size classes and takes them back.

    Sizes round up to a class: four per power of two (256, 320, 384, 448, 512, 640 ...), as
    jemalloc's and Netty's, so a buffer wastes less than a quarter of its capacity.
    Retention is bounded: at most ``max_pooled_bytes`` in total (by default 64 MiB, and at
    most half the ``max_bytes`` of the :class:`ArenaOfPools` it serves) and
    ``max_per_class`` idle buffers per class; a buffer larger than ``max_size`` is dropped
    on :meth:`put`, so an outlier does not live forever in the pool. :meth:`trim` releases
    idle buffers that recent load did not need. Thread-safe.
    """

    def __init__(
        self,
        *,
        min_size: SupportsIndex = 256,
        max_size: SupportsIndex = 8 << 20,
        max_pooled_bytes: SupportsIndex | None = None,
        max_per_class: SupportsIndex = 64,
        leak_detection: LeakDetection | None = None,
    ) -> None:
        min_size = check_size(min_size, "min_size")
        max_size = check_size(max_size, "max_size")
        if min_size < 1 or max_size < min_size:
            raise InvalidArgument("max_size", max_size, f"an int >= min_size ({min_size}) >= 1")
        self._min = 1 << (min_size - 1).bit_length()
        self._max = max_size
        self._max_bytes_given = max_pooled_bytes is not None
        self._max_bytes = (
            _DEFAULT_POOLED if max_pooled_bytes is None
            else check_size(max_pooled_bytes, "max_pooled_bytes")
        )
        self._max_per_class = check_size(max_per_class, "max_per_class")
        self._lock = PoolLock()  # shared with the ArenaOfPools this pool is bound to, if any
        self._classes: dict[int, IdleRegions] = {}  # idle regions by size class
        self._pooled_bytes = 0
        self._active = 0
        self._active_bytes = 0
        self._budget: ArenaOfPools | None = None
        self._created = 0
        self._reused = 0
        self._dropped = 0
        self._quarantined = 0
        self._closed = False
        self._leak_level = level_from(leak_detection)
        self._loans = 0
        self._leaks_detected = 0
        # (region, clean) of buffers collected without a put: their __del__ cannot take the
        # lock (it may run while this very thread holds it), so whoever holds it next drains.
        self._leaks: list[tuple[bytearray, bool]] = []

    def _class_of(self, size: int) -> int:
        """The size class ``size`` rounds up to: four classes per power of two."""
        if size <= self._min:
            return self._min
        step = max(1, (1 << ((size - 1).bit_length() - 1)) >> 2)
        return -(-size // step) * step

    def size_class(self, size_hint: SupportsIndex) -> int:
        """The capacity of the buffer :meth:`get` lends for ``size_hint`` bytes."""
        return self._capacity_for(check_size(size_hint, "size_hint"))

    def _capacity_for(self, hint: int) -> int:
        size = self._class_of(hint)
        budget = self._budget
        limit = None if budget is None else budget._max_bytes
        if size > self._max or (limit is not None and size > limit >= hint):
            return max(hint, 1)  # unpooled (or the class would not fit): exact, dropped on put
        return size

    def _bind(self, budget: ArenaOfPools) -> None:
        """Share ``budget``'s lock and count lent bytes against its ``max_bytes``."""
        if self._budget is not None:
            raise InvalidArgument("buffer_pool", self, "a BufferPool not used by another pool")
        self._budget = budget
        self._lock = budget._lock
        self._leak_level = budget._leak_level
        if not self._max_bytes_given and budget._max_bytes is not None:
            self._max_bytes = min(self._max_bytes, budget._max_bytes // 2)

    def get(self, size_hint: SupportsIndex = 0) -> Buffer:
        """An empty :class:`Buffer` with ``capacity >= size_hint``.

        Bound to an :class:`ArenaOfPools` with ``max_bytes``, raises :class:`PoolExhausted`
        at once when the buffer would not fit in the budget now (idle memory is released
        first to make room), and :class:`InsufficientCapacity` when it never could.
        """
        hint = check_size(size_hint, "size_hint")
        size = self._capacity_for(hint)
        budget = self._budget
        lock = self._lock
        if lock.held():
            raise RuntimeError("a buffer cannot be taken from a finalizer run inside the pool")
        with lock:
            if self._leaks:
                self._drain_leaks_locked()
            if self._closed:
                raise PoolClosed()
            idle = self._classes.get(size)
            region: bytearray | None = None
            if idle is not None and len(idle):
                region = idle.pop()
                self._pooled_bytes -= size
                self._reused += 1
            elif budget is not None and not budget._make_room_locked(size):
                too_large = budget._too_large(size)
                raise too_large or PoolExhausted("buffer", 0, budget._limit_text(), size)
            else:
                self._created += 1
            self._active += 1
            self._active_bytes += size
            if region is None and budget is not None:
                budget._note_reserved_locked()
        try:
            buf = _LentBuffer(bytearray(size) if region is None else region, self)
        except MemoryError:
            with lock:  # counted above: uncount, and a pooled region goes back
                self._active -= 1
                self._active_bytes -= size
                if region is None:
                    self._created -= 1
                else:
                    self._keep_locked(region, True)
                self._grant_waiters_locked()
            raise
        if self._leak_level:
            self._loans += 1
            if self._leak_level == 2 or self._loans % SAMPLE_EVERY == 0:
                buf._trace = capture(self._leak_level)
        return buf

    def put(self, buf: Buffer) -> None:
        """Take ``buf`` back: its views are released and the object is dead after this.

        Raises :class:`DoubleRelease` for a buffer already given back and
        :class:`ForeignObject` for one this pool did not lend.
        """
        if not isinstance(buf, Buffer):
            raise TypeError(f"expected a Buffer, not {type(buf).__name__}")
        if buf._owner is not self:
            raise ForeignObject("buffer", self)
        lock = self._lock
        if lock.held():  # a finalizer run inside one of our locked sections: later
            lock.defer(functools.partial(self.put, buf))
            return
        with lock:  # one section: claiming the handle, killing it and taking it back
            mv = buf._mv
            if mv is None:
                raise DoubleRelease("buffer", buf._trace)
            clean = buf._detach(mv)  # the handle is dead (ours alone) from here
            region = buf._region
            buf._region = _NO_REGION  # the dead handle must not keep the memory reachable
            self._take_back_locked(region, clean)
            # Interpreted, this frame's reference would outlive the lock: whoever is lent
            # the region next would count it as someone still holding the memory.
            del region
            self._grant_waiters_locked()
        if self._leaks:
            self._drain_leaks()
        if buf._trace is not None or self._leak_level == 2:
            buf._trace = capture(self._leak_level)

    def _take_back_locked(self, region: bytearray, clean: bool) -> None:
        """Uncount a lent ``region`` that came back, and keep it if it may be reused."""
        self._active -= 1
        self._active_bytes -= len(region)
        self._keep_locked(region, clean)

    def _grant_waiters_locked(self) -> None:
        """Memory came back: hand arenas to the pool's waiters while the budget allows."""
        budget = self._budget
        if budget is not None and budget._waiters:
            budget._grant_locked()

    def _keep_locked(self, region: bytearray, clean: bool) -> None:
        """Pool a region that came back if it may be reused and there is room; else drop it."""
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
        idle = self._classes.get(size)
        if idle is None:
            idle = self._classes[size] = IdleRegions()
        if len(idle) >= self._max_per_class:
            self._dropped += 1
            return
        idle.push(region)
        self._pooled_bytes += size

    def _buffer_leaked(self, buf: Buffer, mv: memoryview) -> None:
        """``buf`` is being garbage-collected without a put: reclaim it, report it if traced."""
        clean = buf._detach(mv)
        entry = (buf._region, clean)
        buf._region = _NO_REGION  # see ArenaOfPools._arena_leaked
        self._leaks.append(entry)
        del entry
        self._lock.run_if_free(self._drain_leaks_locked)
        if buf._trace is not None or self._leak_level == 2:
            report_leak("buffer", buf._trace)

    def _drain_leaks_locked(self) -> None:
        leaks = self._leaks
        while leaks:
            region, clean = leaks.pop(0)
            self._leaks_detected += 1
            self._take_back_locked(region, clean)
            del region
        self._grant_waiters_locked()

    def _drain_leaks(self) -> None:
        """Settle leaked buffers (never inside the lock)."""
        if self._lock.held():
            return
        with self._lock:
            self._drain_leaks_locked()

    def _buffer_grow(self, capacity: int, need: int) -> tuple[int, bytearray | None]:
        """A lent buffer of ``capacity`` bytes needs ``need``: its new capacity, counted, and
        an idle region of that class to grow into (None: the buffer allocates one).

        At least double, rounded up to a size class; within ``max_bytes`` (idle memory is
        released first to make room), else :class:`PoolExhausted`, or
        :class:`InsufficientCapacity` when ``need`` is more than the whole budget.
        """
        new = self._class_of(max(need, 2 * capacity, 64))
        with self._lock:
            budget = self._budget
            if budget is not None:
                limit = budget._max_bytes
                if limit is not None and new > limit >= need:
                    new = need  # the class would not fit; the exact size may
                too_large = budget._too_large(need)
                if too_large is not None:
                    raise too_large
            idle = self._classes.get(new)
            region: bytearray | None = None
            if idle is not None and len(idle):
                region = idle.pop()  # held already: the budget is not asked
                self._pooled_bytes -= new
                self._reused += 1
            elif budget is not None and not budget._make_room_locked(new - capacity):
                raise PoolExhausted("buffer growth", 0, budget._limit_text(), new - capacity)
            self._active_bytes += new - capacity
            if budget is not None:
                budget._note_reserved_locked()
        return new, region

    def _buffer_grow_undone(self, delta: int, region: bytearray | None) -> None:
        """A growth counted by ``_buffer_grow`` did not happen (``delta``: its bytes; ``region``:
        the idle region it was given, which goes back)."""
        with self._lock:
            self._active_bytes -= delta
            if region is not None:
                self._keep_locked(region, True)
            self._grant_waiters_locked()

    def _buffer_outgrown(self, old: RegionHolder) -> None:
        """A lent buffer grew out of ``old``'s region (already uncounted): pool it if nothing
        exports or references it any more and there is room, so that growth reuses memory."""
        if not old._region_free():
            return
        region = old._region
        old._region = _NO_REGION
        with self._lock:
            budget = self._budget
            limit = None if budget is None else budget._max_bytes
            if limit is None or budget is None or budget._reserved_locked() + len(region) <= limit:
                self._keep_locked(region, True)
            del region

    def _evict_locked(self, nbytes: int) -> int:
        """Release idle buffers, largest first, until ``nbytes`` are freed (or none are left);
        return the bytes freed (to make room in the budget)."""
        freed = 0
        for size in sorted(self._classes, reverse=True):
            idle = self._classes[size]
            while len(idle) and freed < nbytes:
                freed += len(idle.pop())
                self._dropped += 1
            if freed >= nbytes:
                break
        self._pooled_bytes -= freed
        return freed

    def trim(self) -> int:
        """Release idle buffers that went unused since the last trim; return bytes freed."""
        released: list[bytearray] = []
        with self._lock:
            freed = self._trim_locked(released)
        released.clear()  # freed here, outside the lock (compiled: at its last use)
        return freed

    def _trim_locked(self, released: list[bytearray]) -> int:
        """Uncount the idle buffers unused since the last trim and move their regions into
        ``released``, for the caller to free once it has let go of the lock."""
        freed = 0
        for idle in self._classes.values():
            before = len(idle)
            freed += idle.trim(released)
            self._dropped += before - len(idle)
        self._pooled_bytes -= freed
        return freed

    def clear(self) -> None:
        """Release every idle buffer now."""
        with self._lock:
            self._dropped += sum(len(idle) for idle in self._classes.values())
            self._classes.clear()
            self._pooled_bytes = 0

    def close(self) -> None:
        """Release idle buffers and refuse new gets; buffers lent out may still be put."""
        self.clear()
        with self._lock:
            self._closed = True

    def statistics(self) -> BufferPoolStatistics:
        """A consistent snapshot of this pool's counters."""
        with self._lock:
            self._drain_leaks_locked()
            return self._statistics_locked()

    def _statistics_locked(self) -> BufferPoolStatistics:
        classes = self._classes
        return BufferPoolStatistics(
            active=self._active,
            active_bytes=self._active_bytes,
            pooled=sum(len(idle) for idle in classes.values()),
            pooled_bytes=self._pooled_bytes,
            created=self._created,
            reused=self._reused,
            dropped=self._dropped,
            quarantined=self._quarantined,
            leaks_detected=self._leaks_detected,
            pooled_by_size=tuple(sorted((size, len(idle)) for size, idle in classes.items())),
        )

    def __enter__(self) -> BufferPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BufferPool classes={self._min}..{self._max} pooled_bytes={self._pooled_bytes}>"
