"""BufferPool (size-classed byte buffers) and ObjectPool (reusable Python objects)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, SupportsIndex, TypeVar

from ._arena import Arena
from ._buffer import Buffer, _LentBuffer
from ._errors import (
    DoubleRelease,
    ForeignObject,
    InvalidArgument,
    PoolClosed,
    PoolExhausted,
)
from ._leaks import SAMPLE_EVERY, LeakDetection, capture, level_from, report_leak
from ._memory import (
    ATOMIC,
    COMPILED_HERE,
    MAX_SIZE,
    REVIVE,
    UNMAPPED,
    Guard,
    Spares,
    Stack,
    check_size,
    give_back_all,
)

if TYPE_CHECKING:
    from mypy_extensions import i64

    from ._aop import ArenaOfPools

__all__ = ("BufferPool", "BufferPoolStatistics", "ObjectPool", "ObjectPoolStatistics")

T = TypeVar("T")


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
    """Lends :class:`Buffer` objects from power-of-two size classes and takes them back.

    Retention is bounded: at most ``max_pooled_bytes`` in total and ``max_per_class`` idle
    buffers per class; a buffer larger than ``max_size`` is dropped on :meth:`put`, so an
    outlier does not live forever in the pool. :meth:`trim` releases idle buffers that recent
    load did not need. Thread-safe.
    """

    def __init__(
        self,
        *,
        min_size: SupportsIndex = 256,
        max_size: SupportsIndex = 8 << 20,
        max_pooled_bytes: SupportsIndex = 64 << 20,
        max_per_class: SupportsIndex = 64,
        leak_detection: LeakDetection | None = None,
    ) -> None:
        min_size = check_size(min_size, "min_size")
        max_size = check_size(max_size, "max_size")
        if min_size < 1 or max_size < min_size:
            raise InvalidArgument("max_size", max_size, f"an int >= min_size ({min_size}) >= 1")
        self._min = 1 << (min_size - 1).bit_length()
        self._max = max_size
        self._max_bytes = check_size(max_pooled_bytes, "max_pooled_bytes")
        self._max_per_class = check_size(max_per_class, "max_per_class")
        self._lock = Guard()  # shared with the ArenaOfPools this pool is bound to, if any
        self._deferred: list[Buffer] = []  # puts made while this thread held the lock
        self._spares: Spares[_LentBuffer] = Spares()  # dead handles to revive for later loans
        # Idle buffers per size class, each with the base view it came back with: a buffer
        # that handed out no view returns a view nothing else can have reached, and the next
        # loan reuses it instead of making one.
        self._classes: dict[int, Stack] = {}
        # The same classes indexed by log2(size), for the lock-free paths: no int boxing,
        # no hashing.
        self._by_log2: list[Stack | None] = [None] * 64
        # What the lock-free paths count is a native int once compiled (mypyc's i64). The size
        # limits stay int: compared with the int sizes len() gives, i64 ones cost more.
        self._pooled_bytes: i64 = 0
        self._active: i64 = 0
        self._active_bytes: i64 = 0
        self._budget: ArenaOfPools | None = None
        self._created = 0
        self._reused: i64 = 0
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
        return self._min if size <= self._min else 1 << (size - 1).bit_length()

    def _bind(self, budget: ArenaOfPools) -> None:
        """Share ``budget``'s lock and count lent bytes against its ``max_bytes``."""
        if self._budget is not None:
            raise InvalidArgument("buffer_pool", self, "a BufferPool not used by another pool")
        self._budget = budget
        self._lock = budget._lock
        self._leak_level = budget._leak_level

    def get(self, size_hint: SupportsIndex = 0) -> Buffer:
        """An empty :class:`Buffer` with ``capacity >= size_hint``.

        Bound to an :class:`ArenaOfPools` with ``max_bytes``, raises :class:`PoolExhausted`
        at once when the buffer would not fit in the budget.
        """
        if type(size_hint) is int and 0 <= size_hint <= MAX_SIZE:
            hint = size_hint
        else:
            hint = check_size(size_hint, "size_hint")
        size = self._class_of(hint)
        buf = None
        if size > self._max:
            size = max(hint, 1)  # unpooled: exact size, dropped on put
        elif ATOMIC and self._lock.busy == 0:
            buf = self._take_atomic(size)
        if buf is None:
            buf = self._take(size)
        if self._leak_level:
            self._trace_loan(buf)
        return buf

    def _take_atomic(self, size: int) -> Buffer | None:
        """Lend an idle buffer of ``size`` bytes without the lock, or None (see ``Guard``).

        Only with :data:`ATOMIC` and no locked section in progress; nothing allocates or
        runs Python code until the pool's state is updated, so no other thread or finalizer
        runs in between.
        """
        cls = self._by_log2[size.bit_length() - 1]  # size is a power of two
        if cls is None or not cls.n or self._closed or self._leaks or self._deferred:
            return None
        budget = self._budget
        if budget is not None and not budget._fits_locked(size, False):
            return None  # the locked path raises PoolExhausted
        mv = cls.top_view()
        region = cls.pop()
        self._active += 1
        self._active_bytes += size
        self._pooled_bytes -= size
        self._reused += 1
        return self._handle(region, mv)

    def _take(self, size: int) -> Buffer:
        """Lend a buffer of ``size`` bytes under the lock: an idle one, else a new one."""
        if self._lock.held():
            raise RuntimeError("a buffer cannot be taken from a finalizer run inside the pool")
        lock = self._lock
        lock.acquire()
        try:
            if self._leaks:
                self._drain_leaks_locked()
            if self._closed:
                raise PoolClosed()
            budget = self._budget
            if budget is not None and not budget._fits_locked(size, False):
                raise PoolExhausted("buffer", 0, budget._limit_text())
            self._active += 1
            self._active_bytes += size
            cls = self._classes.get(size)
            if cls is not None and cls.n:
                mv = cls.top_view()
                region: bytearray | None = cls.pop()
                self._pooled_bytes -= size
                self._reused += 1
            else:
                region = None
                mv = UNMAPPED
                self._created += 1
                if budget is not None:
                    budget._note_reserved_locked()
        finally:
            lock.release()
        if self._leaks or self._deferred:
            self._drain_leaks()
        if region is None:
            try:
                region = bytearray(size)
            except MemoryError:
                with self._lock:  # counted above, under the lock: uncount
                    self._active -= 1
                    self._active_bytes -= size
                    self._created -= 1
                    if budget is not None and budget._waiters:
                        budget._grant_locked()
                raise
        return self._handle(region, mv)

    def _handle(self, region: bytearray, mv: memoryview) -> Buffer:
        """A ``Buffer`` object (new, or a revived dead one) for a ``region`` already lent."""
        if REVIVE:
            buf = self._spares.take()
            if buf is not None:
                buf._revive(region, mv, self)
                return buf
        try:
            return _LentBuffer(region, mv, self)
        except BaseException:  # MemoryError: the region goes back, as if never lent
            with self._lock:
                self._take_back_locked(region, True, mv)
            raise

    def _trace_loan(self, buf: Buffer) -> None:
        self._loans += 1
        if self._leak_level == 2 or self._loans % SAMPLE_EVERY == 0:
            buf._trace = capture(self._leak_level)

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
        if lock.busy and lock.held():  # a finalizer inside a locked section: later
            self._deferred.append(buf)
            return
        mv = buf._claim(self._lock, "buffer")  # the handle is ours alone from here: no lock
        if buf._views is None and COMPILED_HERE:
            # Nothing was handed out and the base view never leaves the buffer (compiled
            # code keeps no frames for a traceback to hold): nothing can reach the region,
            # and its view can serve the next loan.
            clean = True
        else:
            clean = buf._detach(mv)
            mv = UNMAPPED
        region = buf._region
        buf._region = _NO_REGION  # the dead handle must not keep the memory reachable
        if not (ATOMIC and self._put_atomic(region, clean, mv)):
            lock.acquire()
            try:
                self._take_back_locked(region, clean, mv)
                del region  # see ArenaOfPools.return_arena
            finally:
                lock.release()
        if self._leaks or self._deferred:
            self._drain_leaks()
        if buf._trace is not None or self._leak_level == 2:
            buf._trace = capture(self._leak_level)
        elif REVIVE and type(buf) is _LentBuffer:
            self._spares.put(buf)

    def _put_atomic(self, region: bytearray, clean: bool, mv: memoryview) -> bool:
        """Pool ``region`` without the lock when nothing unusual applies (see ``Guard``).

        False, having changed nothing, when the locked path must decide: a locked section
        in progress, a region to quarantine or drop, a full class, a waiter to wake.
        """
        size = len(region)
        if (
            self._lock.busy
            or not clean
            or self._closed
            or size & (size - 1)
            or size < self._min
            or size > self._max
            or self._pooled_bytes + size > self._max_bytes
        ):
            return False
        budget = self._budget
        if budget is not None and budget._waiters:
            return False
        cls = self._by_log2[size.bit_length() - 1]
        if cls is None or cls.n >= self._max_per_class:
            return False
        cls.push(region, mv)
        self._active -= 1
        self._active_bytes -= size
        self._pooled_bytes += size
        return True

    def _take_back_locked(self, region: bytearray, clean: bool, mv: memoryview) -> None:
        """Account for a buffer's ``region`` coming back; keep it (with ``mv``) if it may be
        reused. ``mv`` is its unreachable base view, or ``UNMAPPED``."""
        size = len(region)
        self._active -= 1
        self._active_bytes -= size
        if not clean:
            self._quarantined += 1
        elif (
            self._closed
            or size > self._max
            or size != self._class_of(size)
            or self._pooled_bytes + size > self._max_bytes
        ):
            self._dropped += 1
        else:
            cls = self._classes.get(size)
            if cls is None:
                cls = self._classes[size] = self._by_log2[size.bit_length() - 1] = Stack()
            if cls.n >= self._max_per_class:
                self._dropped += 1
            else:
                cls.push(region, mv)
                self._pooled_bytes += size
        budget = self._budget
        if budget is not None and budget._waiters:
            budget._grant_locked()

    def _collect_leaked(self, buf: Buffer, mv: memoryview) -> None:
        """``buf`` is being garbage-collected without a put: reclaim it, report it if traced."""
        clean = buf._detach(mv)
        entry = (buf._region, clean)
        buf._region = _NO_REGION  # see ArenaOfPools._collect_leaked
        self._leaks.append(entry)
        del entry
        if not self._lock.held() and self._lock.acquire(False):
            try:
                self._drain_leaks_locked()
            finally:
                self._lock.release()
        if buf._trace is not None or self._leak_level == 2:
            report_leak("buffer", buf._trace)

    def _drain_leaks_locked(self) -> None:
        leaks = self._leaks
        while leaks:
            region, clean = leaks.pop(0)
            self._leaks_detected += 1
            self._take_back_locked(region, clean, UNMAPPED)

    def _drain_leaks(self) -> None:
        """Settle leaked buffers and puts deferred by finalizers (never inside the lock)."""
        if self._lock.held():
            return
        with self._lock:
            self._drain_leaks_locked()
        give_back_all(self._deferred, self.put)

    def _grew(self, delta: int) -> None:
        """A lent buffer grew by ``delta`` bytes (counted, never refused: writes don't fail)."""
        lock = self._lock
        lock.acquire()
        try:
            self._active_bytes += delta
            budget = self._budget
            if budget is not None:
                budget._note_reserved_locked()
        finally:
            lock.release()

    def trim(self) -> int:
        """Release idle buffers that went unused since the last trim; return bytes freed."""
        freed = 0
        with self._lock:
            for cls in self._classes.values():
                drop = min(cls.low, cls.n)
                if drop:
                    freed += cls.drop_oldest(drop)
                    self._dropped += drop
                cls.low = cls.n
            self._pooled_bytes -= freed
        return freed

    def clear(self) -> None:
        """Release every idle buffer now."""
        with self._lock:
            self._dropped += sum(c.n for c in self._classes.values())
            self._classes.clear()
            self._by_log2 = [None] * 64
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
        return BufferPoolStatistics(
            active=self._active,
            active_bytes=self._active_bytes,
            pooled=sum(c.n for c in self._classes.values()),
            pooled_bytes=self._pooled_bytes,
            created=self._created,
            reused=self._reused,
            dropped=self._dropped,
            quarantined=self._quarantined,
            leaks_detected=self._leaks_detected,
            pooled_by_size=tuple(sorted((size, c.n) for size, c in self._classes.items())),
        )

    def __enter__(self) -> BufferPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BufferPool classes={self._min}..{self._max} pooled_bytes={self._pooled_bytes}>"


_RECORD_LIMIT: Final = 4096
_NO_REGION: Final = bytearray()


def _remember(record: dict[int, None], key: int) -> None:
    """Add ``key`` to an insertion-ordered ``record``, forgetting the oldest beyond a bound."""
    record[key] = None
    if len(record) > _RECORD_LIMIT:
        del record[next(iter(record))]


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
        max_size: SupportsIndex | None = None,
        arena: Arena | None = None,
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable, not {type(factory).__name__}")
        if arena is not None and not isinstance(arena, Arena):
            raise TypeError(f"arena must be an Arena or None, not {type(arena).__name__}")
        if reset is not None and not callable(reset):
            raise TypeError(f"reset must be callable or None, not {type(reset).__name__}")
        self._factory = factory
        self._reset = reset
        self._max = None if max_size is None else check_size(max_size, "max_size")
        self._lock = threading.Lock()
        self._idle: list[T] = []
        self._idle_ids: set[int] = set()
        self._out: dict[int, tuple[T, int]] = {}  # id -> (object, generation)
        # Ids of objects given back and dropped (pool full), and of objects lent before the
        # bound arena's last reset: so a second put says DoubleRelease, a late one is
        # forgotten quietly. Both bounded: oldest ids are forgotten first.
        self._dropped: dict[int, None] = {}
        self._stale: dict[int, None] = {}
        self._returning: set[int] = set()  # being put back: reset() runs outside the lock
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
            for key in self._out:
                _remember(self._stale, key)
            self._out.clear()

    def get(self) -> T:
        """An idle object if there is one, else a new one from the factory."""
        with self._lock:
            if self._idle:
                obj = self._idle.pop()
                self._idle_ids.discard(id(obj))
                self._reused += 1
                self._out[id(obj)] = (obj, self._generation)
                return obj
            generation = self._generation
        obj = self._factory()  # outside the lock: a factory may be slow or re-enter the pool
        with self._lock:
            self._created += 1
            key = id(obj)
            self._dropped.pop(key, None)
            self._stale.pop(key, None)
            self._out[key] = (obj, generation)
        return obj

    def put(self, obj: T) -> None:
        """Give ``obj`` back for reuse; refuses an object given back twice or not lent here.

        An object lent before the bound arena's last reset is dropped, not kept.
        """
        key = id(obj)
        with self._lock:
            entry = self._out.pop(key, None)
            if entry is None or entry[0] is not obj:
                if entry is not None:
                    self._out[key] = entry
                elif key in self._idle_ids or key in self._dropped or key in self._returning:
                    raise DoubleRelease(type(obj).__name__)
                elif key in self._stale:
                    del self._stale[key]
                    return  # lent before the arena reset: forgotten, never reused
                raise ForeignObject(type(obj).__name__, self)
            self._returning.add(key)
        try:
            if self._reset is not None:
                self._reset(obj)
        finally:
            with self._lock:
                self._returning.discard(key)
        with self._lock:
            if entry[1] != self._generation:
                return
            if self._max is not None and len(self._idle) >= self._max:
                _remember(self._dropped, key)
                return
            self._idle.append(obj)
            self._idle_ids.add(key)

    def discard(self, obj: T) -> None:
        """Forget a lent object without pooling it (it failed, or it is kept elsewhere)."""
        with self._lock:
            self._out.pop(id(obj), None)
            self._stale.pop(id(obj), None)

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
