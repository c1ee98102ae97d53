"""ArenaOfPools: lends arenas and buffers under a budget, and takes them back."""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final, Literal, SupportsFloat, SupportsIndex

from ._arena import Arena, _LentArena, run_hooks
from ._buffer import Buffer
from ._buffer_pool import BufferPool
from ._checks import check_size, check_timeout
from ._errors import (
    DoubleRelease,
    ForeignObject,
    InsufficientCapacity,
    InvalidArgument,
    PoolClosed,
    PoolExhausted,
)
from ._leaks import (
    SAMPLE_EVERY,
    TRACKER,
    LeakDetection,
    capture,
    level_from,
    report_leak,
)
from ._lock import PoolLock
from ._regions import IdleRegions, RegionHolder, poison, zero
from ._scope import ArenaScope

__all__ = ("ArenaOfPools", "ArenaOfPoolsStatistics", "Waiter")

_DEFAULT_ARENA_SIZE = 64 << 10
_TRIM_CHECK_EVERY: Final = 256  # returns between two looks at the clock (a power of two)
_AUTO_WINDOW: Final = 1024  # arena_size="auto": how many recent loans the size is learnt from
_AUTO_EVERY: Final = 256  # ... and how many returns between two recalculations
_AUTO_QUANTILE: Final = 0.95
_NO_REGION: Final = bytearray()
_POLL: Final = 0.05  # seconds between two looks at the leak queues while a thread waits


def _pow2ceil(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@dataclass(frozen=True, slots=True)
class ArenaOfPoolsStatistics:
    """What an :class:`ArenaOfPools` holds and has done, taken under its lock.

    Byte figures count capacity: an arena lent out counts in full whatever it has used.
    """

    active_arenas: int  #: arenas lent out now
    pooled_arenas: int  #: idle arenas kept for reuse
    arenas_created: int  #: arena regions allocated fresh
    arenas_reused: int  #: arena hand-outs served from the pool
    active_buffers: int  #: buffers lent out now
    pooled_buffers: int  #: idle buffers kept for reuse
    buffers_created: int  #: buffer regions allocated fresh
    bytes_reserved: int  #: all bytes the pool holds: lent, idle and quarantined
    bytes_in_use: int  #: bytes lent out now (arenas and buffers)
    high_water_bytes: int  #: the most ``bytes_reserved`` has ever been
    quarantined: int  #: regions held back now because something still exports them
    quarantine_events: int  #: times a region had to be held back or dropped for that reason
    waiting: int  #: callers waiting for an arena now
    waits: int  #: get_arena calls that had to wait
    wait_timeouts: int  #: waits that ended in PoolExhausted
    trimmed_bytes: int  #: idle bytes released by trimming
    arena_used_bytes_total: int  #: bytes used by arenas when they came back (metrics=True)
    arena_used_bytes_max: int  #: the most one arena had used when it came back (metrics=True)
    leaks_detected: int  #: arenas and buffers garbage-collected without being given back
    arena_size: int  #: capacity of newly lent arenas (learnt when ``arena_size="auto"``)

    def as_dict(self) -> dict[str, int]:
        """The fields as a plain dict (for JSON, logs and metrics)."""
        return asdict(self)


class Waiter:
    """A place in an :class:`ArenaOfPools` queue, woken when an arena is handed to it.

    ``wake`` is called with the pool's lock held, from whatever thread gave an arena back,
    so it must not block; the async layer passes a thread-safe event-loop wake-up.
    """

    __slots__ = ("arena", "error", "wake")

    def __init__(self, wake: Callable[[], object]) -> None:
        self.wake: Callable[[], object] = wake
        self.arena: Arena | None = None
        self.error: BaseException | None = None


class ArenaOfPools:
    """A thread-safe pool of arenas plus a :class:`BufferPool`, for request-scoped memory.

    Each request takes an arena (:meth:`get_arena`, or ``with``/``async with aop.arena()``),
    allocates from it and from pooled buffers, and gives everything back in one step. With
    ``max_arenas`` or ``max_bytes`` set, callers beyond the budget wait first come first
    served and get :class:`PoolExhausted` after their timeout. Idle memory beyond what
    recent load needed is released by :meth:`trim`, which also runs every
    ``trim_interval`` seconds as arenas come back.

    With ``arena_size="auto"`` the pool learns how much memory requests use (the 95th
    percentile of the last 1024 loans) and sizes new arenas to it, within
    ``[min_arena_size, max_arena_size]``; an arena that needs more than its size grows by
    extra chunks up to ``max_arena_size`` in total, so the few larger requests still work.
    """

    def __init__(
        self,
        *,
        arena_size: SupportsIndex | Literal["auto"] = _DEFAULT_ARENA_SIZE,
        pool_size: SupportsIndex = 64,
        max_arenas: SupportsIndex | None = None,
        max_bytes: SupportsIndex | None = None,
        metrics: bool = True,  # record per-arena usage (ArenaOfPoolsStatistics.arena_used_bytes_*)
        buffer_pool: BufferPool | None = None,
        trim_interval: float | None = 30.0,
        leak_detection: LeakDetection | None = None,
        min_arena_size: SupportsIndex = 4 << 10,
        max_arena_size: SupportsIndex = 4 << 20,
    ) -> None:
        self._min_arena = check_size(min_arena_size, "min_arena_size")
        self._max_arena = check_size(max_arena_size, "max_arena_size")
        if isinstance(arena_size, str) and arena_size != "auto":
            raise InvalidArgument("arena_size", arena_size, 'an int > 0 or "auto"')
        self._auto = isinstance(arena_size, str)
        if self._auto:
            if not 0 < self._min_arena <= self._max_arena:
                raise InvalidArgument(
                    "max_arena_size", max_arena_size, f">= min_arena_size ({min_arena_size}) > 0"
                )
            start = min(max(_DEFAULT_ARENA_SIZE, self._min_arena), self._max_arena)
            self._arena_size = start
        else:
            self._arena_size = check_size(arena_size, "arena_size")
            if self._arena_size == 0:
                raise InvalidArgument("arena_size", arena_size, 'an int > 0 or "auto"')
        self._window: list[int] = []  # peak bytes used by recent loans (auto mode)
        self._window_pos = 0
        self._pool_size = check_size(pool_size, "pool_size")
        self._max_arenas = None if max_arenas is None else check_size(max_arenas, "max_arenas")
        self._max_bytes = None if max_bytes is None else check_size(max_bytes, "max_bytes")
        if self._max_arenas == 0:
            raise InvalidArgument("max_arenas", max_arenas, "an int >= 1 or None")
        if self._max_bytes is not None and self._max_bytes < self._arena_size:
            raise InvalidArgument("max_bytes", max_bytes, f">= arena_size ({self._arena_size})")
        self._trim_interval = check_timeout(trim_interval, "trim_interval")
        self.metrics = metrics
        self._leak_level = level_from(leak_detection)
        self._loans = 0
        self._leaks_detected = 0
        # Arenas collected without a return, as (region, used, clean, the arena's overflow
        # chunks with their "clean", the chunks' bytes); see _arena_leaked.
        self._leaks: list[
            tuple[bytearray, int, bool, list[tuple[bytearray, bool]] | None, int]
        ] = []
        # Reentrant only so that a thread can tell it holds the lock: a finalizer run by the
        # garbage collector inside a locked section (any allocation can start a collection)
        # that gives an arena or buffer back is deferred, not let in and not deadlocked.
        self._lock = PoolLock()
        if buffer_pool is not None and not isinstance(buffer_pool, BufferPool):
            raise TypeError(f"buffer_pool must be a BufferPool, not {type(buffer_pool).__name__}")
        self._buffers = buffer_pool if buffer_pool is not None else BufferPool()
        self._buffers._bind(self)
        self._free = IdleRegions()
        # Regions something may still reach, each alone in its holder (see RegionHolder).
        self._parked: deque[RegionHolder] = deque()
        self._waiters: list[Waiter] = []
        self._active = 0
        self._lent_bytes = 0  # capacity of arenas lent out, overflow chunks included
        self._free_bytes = 0
        self._parked_bytes = 0
        self._created = 0
        self._reused = 0
        self._high_water = 0
        self._quarantine_events = 0
        self._waits = 0
        self._timeouts = 0
        self._trimmed = 0
        self._returns = 0
        self._used_total = 0  # bytes used by arenas when they came back (metrics=True)
        self._used_max = 0
        self._last_trim = time.monotonic()
        # Regions a trim released, freed by whoever takes them after letting go of the lock
        # (trim, return_arena): unmapping megabytes must not happen under the lock.
        self._released: list[bytearray] = []
        self._closed = False
        if TRACKER.enabled:
            TRACKER.pools.append(self)

    # -- arenas -----------------------------------------------------------------------------

    def _arena_fits_locked(self) -> bool:
        """Whether an arena can be lent now: within ``max_arenas``, and from an idle region
        or with room in ``max_bytes`` for a fresh one (releasing idle memory to make it)."""
        if self._max_arenas is not None and self._active >= self._max_arenas:
            return False
        free = self._free
        if len(free) and len(free.regions[-1]) == self._arena_size:
            return True  # an idle region is lent: the bytes held do not change
        return self._make_room_locked(self._arena_size)

    def _make_room_locked(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more can be held within ``max_bytes``.

        Everything the pool holds counts: arenas and buffers lent, idle and quarantined.
        Idle memory is released to make room: quarantined regions nothing reaches any
        more, then idle buffers (largest first), then idle arenas (oldest first).
        """
        limit = self._max_bytes
        if limit is None:
            return True
        over = self._reserved_locked() + nbytes - limit
        if over <= 0:
            return True
        if nbytes > limit:
            return False
        freed = self._release_parked_locked()
        if freed < over:
            evicted = self._buffers._evict_locked(over - freed)
            self._trimmed += evicted
            freed += evicted
        if freed < over:
            released = self._free.release(over - freed)
            self._free_bytes -= released
            self._trimmed += released
            freed += released
        return freed >= over

    def _release_parked_locked(self) -> int:
        """Forget the quarantined regions that nothing exports or references any more."""
        freed = 0
        for _ in range(len(self._parked)):
            holder = self._parked.popleft()
            if not holder._region_free():
                self._parked.append(holder)
            else:
                freed += len(holder._region)
                self._released.append(holder._region)  # freed outside the lock
                holder._region = _NO_REGION
        self._parked_bytes -= freed
        self._trimmed += freed
        return freed

    def _too_large(self, nbytes: int) -> InsufficientCapacity | None:
        """The final answer for ``nbytes`` more than the whole ``max_bytes``, else None."""
        limit = self._max_bytes
        if limit is None or nbytes <= limit:
            return None
        return InsufficientCapacity(nbytes, limit, limit, where="budget")

    def _limit_text(self) -> str:
        parts = []
        if self._max_arenas is not None:
            parts.append(f"{self._active} of max_arenas={self._max_arenas} arenas lent")
        if self._max_bytes is not None:
            lent = self._lent_bytes + self._buffers._active_bytes
            parts.append(
                f"{self._reserved_locked()} of max_bytes={self._max_bytes} bytes held "
                f"({lent} lent)"
            )
        return ", ".join(parts) or "no budget"

    def _note_reserved_locked(self) -> None:
        reserved = self._reserved_locked()
        if reserved > self._high_water:
            self._high_water = reserved

    def _reserved_locked(self) -> int:
        buffers = self._buffers._active_bytes + self._buffers._pooled_bytes
        return self._lent_bytes + self._free_bytes + self._parked_bytes + buffers

    def _take_region_locked(self) -> bytearray | None:
        free = self._free
        while len(free):
            region = free.pop()
            self._free_bytes -= len(region)
            if len(region) == self._arena_size:
                self._reused += 1
                return region
            self._trimmed += len(region)  # auto mode: sized for an older target, dropped
        parked = self._parked
        for _ in range(min(4, len(parked))):
            holder = parked.popleft()
            if not holder._region_free():
                parked.append(holder)
                continue
            region = holder._region
            del holder
            self._parked_bytes -= len(region)
            if len(region) != self._arena_size:
                continue
            # Whatever held it may have written anywhere in it (``view.obj`` is the whole
            # bytearray), so the whole region is zeroed before reuse.
            zero(memoryview(region), len(region))
            self._reused += 1
            return region
        return None

    def _lend_locked(self) -> Arena:
        """Lend an arena; the caller holds the lock and checked the budget."""
        region = self._take_region_locked()
        if region is None:
            region = bytearray(self._arena_size)  # may raise MemoryError: nothing counted yet
            self._created += 1
            self._active += 1
            self._lent_bytes += len(region)
            self._note_reserved_locked()
        else:
            self._active += 1
            self._lent_bytes += len(region)
        return self._handle(region)

    def _arena_chunk(self, arena: Arena, need: int) -> bytearray | None:
        """An overflow chunk of at least ``need`` bytes for a growing ``arena`` (auto mode).

        None when the pool is not auto-sized, or the arena would pass ``max_arena_size`` or
        the pool its ``max_bytes``.
        """
        if not self._auto:
            return None
        size = max(_pow2ceil(need), arena._cap)  # at least double the arena each time
        with self._lock:
            room = self._max_arena - arena._capacity_total()
            if size > room:
                size = room
                if size < need:
                    return None
            if not self._make_room_locked(size):
                return None
            self._lent_bytes += size
            self._note_reserved_locked()
        try:
            return bytearray(size)
        except MemoryError:
            self._uncount_chunk(size)
            return None  # the caller raises InsufficientCapacity; the arena is unchanged

    def _arena_chunk_unused(self, region: bytearray) -> None:
        """A chunk lent by ``_arena_chunk`` comes back unused: its arena was given back."""
        self._uncount_chunk(len(region))

    def _uncount_chunk(self, size: int) -> None:
        with self._lock:
            self._lent_bytes -= size
            if self._waiters:
                self._grant_locked()

    def _lend_nowait(self) -> Arena | None:
        """Lend an arena if the budget allows and nobody is queued, else None."""
        lock = self._lock
        if lock.held():
            raise RuntimeError("an arena cannot be taken from a finalizer run inside the pool")
        with lock:
            if self._leaks:
                self._drain_leaks_locked()
            if self._closed:
                raise PoolClosed()
            if self._waiters or not self._arena_fits_locked():
                return None
            arena = self._lend_locked()
        return self._after_loan(arena)

    def _handle(self, region: bytearray) -> Arena:
        """A new ``Arena`` object for a ``region`` already lent (one object per loan)."""
        try:
            return _LentArena(region, self)
        except BaseException:  # MemoryError: the region goes back, as if never lent
            with self._lock:
                self._take_back_locked(region, 0, True)
            raise

    def _after_loan(self, arena: Arena) -> Arena:
        """Work done outside the lock for every loan: draining leaks, tracing."""
        if self._leaks:
            self._drain_leaks()
        if self._leak_level:
            self._loans += 1
            if self._leak_level == 2 or self._loans % SAMPLE_EVERY == 0:
                arena._trace = capture(self._leak_level)
        return arena

    def get_arena(self, timeout: SupportsFloat | None = None) -> Arena:
        """Lend an arena; wait up to ``timeout`` seconds (``None``: forever) for the budget.

        Waiters are served first come first served. Raises :class:`PoolExhausted` when the
        budget stays exhausted past ``timeout`` and :class:`PoolClosed` after :meth:`close`.
        """
        t = None if timeout is None else check_timeout(timeout)
        arena = self._lend_nowait()
        if arena is not None:
            return arena
        gate = threading.Lock()
        gate.acquire()
        waiter = Waiter(gate.release)
        arena = self._enqueue(waiter, t)
        if arena is not None:
            return arena
        try:
            self._wait_gate(gate, t)
        except BaseException:  # KeyboardInterrupt, an exception from a signal handler ...
            self._abandon(waiter)
            raise
        return self._finish_wait(waiter, t)

    def _wait_gate(self, gate: threading.Lock, timeout: float | None) -> None:
        """Block until ``gate`` opens or ``timeout`` passes.

        Wakes every ``_POLL`` seconds to settle leaks and deferred returns: they are queued
        by finalizers that could not take the lock, and may hold what this waiter waits for.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if gate.acquire(True, max(0.0, step)):
                return
            if self._leaks or self._buffers._leaks:
                self._drain_leaks()
            if deadline is not None and time.monotonic() >= deadline:
                return

    def can_lend_now(self) -> bool:
        """A hint, read without the lock: would :meth:`get_arena` lend without waiting?

        Racy by design (another thread may take or return an arena right after), so it
        suits cheap admission decisions, such as the aiohttp middleware's choice to lend
        lazily, and never correctness.
        """
        if self._closed or self._waiters:
            return False
        if self._max_arenas is not None and self._active >= self._max_arenas:
            return False
        if self._max_bytes is None:
            return True
        buffers = self._buffers
        held = self._lent_bytes + self._parked_bytes + buffers._active_bytes
        return held + self._arena_size <= self._max_bytes  # idle memory can be released

    def _enqueue(self, waiter: Waiter, timeout: float | None) -> Arena | None:
        """Lend an arena now, or queue ``waiter`` and return None.

        With ``timeout == 0`` nothing is queued: :class:`PoolExhausted` is raised instead.
        """
        lock = self._lock
        lock.acquire()
        try:
            if self._leaks:
                self._drain_leaks_locked()
            if self._closed:
                raise PoolClosed()
            if not self._waiters and self._arena_fits_locked():
                arena = self._lend_locked()
            elif timeout == 0:
                self._timeouts += 1
                raise PoolExhausted("arena", timeout, self._limit_text())
            else:
                self._waiters.append(waiter)
                self._waits += 1
                return None
        finally:
            lock.release()
        return self._after_loan(arena)

    def _finish_wait(self, waiter: Waiter, timeout: float | None) -> Arena:
        """After a wait ended (woken or timed out): the arena handed over, or the error."""
        with self._lock:
            if waiter.arena is None and waiter.error is None:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._timeouts += 1
                raise PoolExhausted("arena", timeout, self._limit_text())
        if waiter.error is not None:
            raise waiter.error
        assert waiter.arena is not None
        return self._after_loan(waiter.arena)

    def _abandon(self, waiter: Waiter) -> None:
        """A waiter gives up (cancelled); an arena already handed to it goes back."""
        with self._lock:
            arena = waiter.arena
            if arena is None:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                return
        self.return_arena(arena)

    def _grant_locked(self) -> None:
        """Hand arenas to the longest waiters while the budget allows (FIFO)."""
        waiters = self._waiters
        while waiters and self._arena_fits_locked():
            w = waiters.pop(0)
            try:
                w.arena = self._lend_locked()
            except MemoryError as exc:  # the waiter learns it; the others keep waiting
                w.error = exc
                w.wake()
                break
            w.wake()

    def return_arena(self, arena: Arena) -> None:
        """Take ``arena`` back. The ``Arena`` object is dead afterwards; its memory is not.

        Every view it handed out is released and what it used is zeroed; memory something
        still exports is held back until nothing does. Raises :class:`DoubleRelease` for an
        arena already given back and :class:`ForeignObject` for one this pool did not lend.
        """
        if not isinstance(arena, Arena):
            raise TypeError(f"expected an Arena, not {type(arena).__name__}")
        if arena._owner is not self:
            raise ForeignObject("arena", self)
        lock = self._lock
        if lock.held():  # a finalizer run inside one of our locked sections: later
            lock.defer(functools.partial(self.return_arena, arena))
            return
        error: Exception | None = None
        if arena._hooks is not None:
            error = self._run_user_code(arena)
        elif arena._obj is not None:
            arena._obj = arena._objects = None  # their finalizers run here, not under a lock
        mv = arena._claim(lock, "arena")
        # The handle is ours alone from here: scrubbing needs no lock. Callbacks or objects
        # added after the ones claimed above (by a reset callback, a finalizer) are dropped.
        arena._hooks = None
        arena._obj = arena._objects = None
        used = arena._used_total()
        clean = arena._scrub(mv)
        region = arena._region
        arena._region = _NO_REGION  # the dead handle must not keep the memory reachable
        with lock:
            self._settle_spilled_locked(arena)
            self._take_back_locked(region, used, clean)
            # Interpreted, this frame's reference would outlive the lock: whoever is lent
            # the region next would count it as someone still holding the memory.
            del region
        if self._released:
            self._free_released()
        if self._leaks:
            self._drain_leaks()
        if arena._trace is not None or self._leak_level == 2:
            arena._trace = capture(self._leak_level)
        if error is not None:
            raise error  # a reset callback failed; the arena came back all the same

    def _keep_locked(self, region: bytearray) -> None:
        """Pool a clean ``region`` if it has the current size and there is room, else drop it."""
        free = self._free
        size = len(region)
        if len(free) < self._pool_size and size == self._arena_size:
            free.push(region)
            self._free_bytes += size

    def _run_user_code(self, arena: Arena) -> Exception | None:
        """Run ``arena``'s reset callbacks and drop its objects, outside the lock.

        Both are user code (callbacks, ``__del__``) that may call back into this pool.
        Claiming them under the lock makes a racing second return skip them.
        """
        with self._lock:
            if arena._mv is None:
                raise DoubleRelease("arena", arena._trace)
            hooks, arena._hooks = arena._hooks, None
            objects = (arena._obj, arena._objects)
            arena._obj = arena._objects = None
        error = run_hooks(hooks)
        del objects  # their finalizers run here, not under the lock
        return error

    def _take_back_locked(self, region: bytearray, used: int, clean: bool) -> None:
        """Account for an arena's ``region`` coming back; keep, park or drop it."""
        if self.metrics:
            self._used_total += used
            if used > self._used_max:
                self._used_max = used
        self._active -= 1
        self._lent_bytes -= len(region)
        if self._auto:
            self._learn_locked(used)
        if self._closed:
            pass
        elif not clean:
            self._park_locked(region, used)
        else:
            self._keep_locked(region)
        if self._waiters:
            self._grant_locked()
        self._returns += 1
        if self._returns & (_TRIM_CHECK_EVERY - 1) == 0:
            self._maybe_trim_locked()

    def _learn_locked(self, used: int) -> None:
        """Auto mode: remember ``used``; now and then resize new arenas to the p95."""
        window = self._window
        if len(window) < _AUTO_WINDOW:
            window.append(used)
        else:
            window[self._window_pos] = used
            self._window_pos = (self._window_pos + 1) % _AUTO_WINDOW
        if (self._returns + 1) % _AUTO_EVERY == 0:
            ranked = sorted(window)
            p95 = ranked[min(len(ranked) - 1, int(len(ranked) * _AUTO_QUANTILE))]
            self._arena_size = min(max(_pow2ceil(p95), self._min_arena), self._max_arena)

    def _settle_spilled_locked(self, arena: Arena) -> None:
        """Account for the overflow chunks a grown arena gave up: park exported, drop others."""
        spilled = arena._spilled
        if spilled is None:
            return
        arena._spilled = None
        self._settle_chunks_locked(spilled, arena._extra)
        arena._extra = 0

    def _settle_chunks_locked(self, spilled: list[tuple[bytearray, bool]], extra: int) -> None:
        self._lent_bytes -= extra
        for region, clean in spilled:
            if not clean:
                self._park_locked(region, len(region))
        if self._waiters:
            self._grant_locked()

    def _park_locked(self, region: bytearray, used: int) -> None:
        """Hold back ``region``: something still exports it. Poisoned in paranoid mode."""
        self._parked_bytes += len(region)
        self._quarantine_events += 1
        if self._leak_level == 2:
            poison(memoryview(region), len(region))
        self._parked.append(RegionHolder(region))

    def _arena_leaked(self, arena: Arena, mv: memoryview) -> None:
        """``arena`` is being garbage-collected without a return: reclaim it, report if traced.

        Called from ``__del__``, which may run while this very thread holds the lock (a
        collection can start at any allocation), so the region is queued and drained by
        whoever holds the lock next, or right here if it is free.
        """
        used = arena._used_total()
        arena._hooks = None  # user callbacks may take locks of their own; the arena is gone
        clean = arena._scrub(mv)
        entry = (arena._region, used, clean, arena._spilled, arena._extra)
        # The dying handle must not keep the region referenced once it is back in the pool:
        # the next borrower's reference check would take it for memory still held.
        arena._region = _NO_REGION
        arena._spilled = None
        self._leaks.append(entry)
        del entry
        self._lock.run_if_free(self._drain_leaks_locked)
        if arena._trace is not None or self._leak_level == 2:
            report_leak("arena", arena._trace)

    def _drain_leaks_locked(self) -> None:
        leaks = self._leaks
        while leaks:
            region, used, clean, spilled, extra = leaks.pop(0)
            self._leaks_detected += 1
            if spilled is not None:
                self._settle_chunks_locked(spilled, extra)
            self._take_back_locked(region, used, clean)

    def _drain_leaks(self) -> None:
        """Settle arenas and buffers collected while lent (never inside the lock)."""
        if self._lock.held():
            return
        with self._lock:
            self._drain_leaks_locked()
        if self._buffers._leaks:
            self._buffers._drain_leaks()

    def _arena_replace(self, old: bytearray, used: int) -> bytearray:
        """An arena being reset found ``old`` still exported: park it, lend a fresh one.

        If the budget has no room or no memory is left for a fresh region, the arena
        (already scrubbed) counts as given back and the error propagates: nothing stays
        counted that cannot return.
        """
        size = self._arena_size
        with self._lock:
            self._park_locked(old, used)
            self._lent_bytes -= len(old)
            region = self._take_region_locked()
            if region is None and not self._make_room_locked(size):
                self._active -= 1
                if self._waiters:
                    self._grant_locked()
                raise PoolExhausted("arena", 0, self._limit_text())
            self._lent_bytes += size if region is None else len(region)
        if region is not None:
            return region
        try:
            region = bytearray(size)
        except MemoryError:
            with self._lock:
                self._lent_bytes -= size
                self._active -= 1
                if self._waiters:
                    self._grant_locked()
            raise
        with self._lock:
            self._created += 1
            self._note_reserved_locked()
            if self._waiters:
                self._grant_locked()  # the new size may be smaller: budget may have come back
        return region

    def _arena_spilled(self, arena: Arena) -> None:
        """A grown arena was reset: account for the overflow chunks it gave up."""
        with self._lock:
            self._settle_spilled_locked(arena)

    # -- buffers ----------------------------------------------------------------------------

    @property
    def leak_detection(self) -> LeakDetection:
        """The leak detection level: ``"off"``, ``"simple"`` or ``"paranoid"``."""
        levels: tuple[LeakDetection, ...] = ("off", "simple", "paranoid")
        return levels[self._leak_level]

    def get_buffer(self, size_hint: SupportsIndex = 0) -> Buffer:
        """Lend an empty :class:`Buffer` with ``capacity >= size_hint``.

        Its capacity counts against ``max_bytes``; beyond the budget this raises
        :class:`PoolExhausted` at once rather than waiting (a buffer is taken from inside a
        request that already holds an arena, so waiting could deadlock). A buffer that grows
        past its capacity is counted, never refused.
        """
        return self._buffers.get(size_hint)

    def return_buffer(self, buf: Buffer) -> None:
        """Take ``buf`` back; it is dead afterwards. See :meth:`BufferPool.put`."""
        self._buffers.put(buf)

    # -- maintenance ------------------------------------------------------------------------

    def _maybe_trim_locked(self) -> None:
        if self._trim_interval is None:
            return
        now = time.monotonic()
        if now - self._last_trim >= self._trim_interval:
            self._trim_locked(now)

    def _trim_locked(self, now: float) -> int:
        """Uncount what the trim releases; the regions wait in ``_released`` to be freed
        outside the lock (:meth:`_free_released`)."""
        arenas = self._free.trim(self._released)
        self._free_bytes -= arenas
        buffers = self._buffers._trim_locked(self._released)
        self._trimmed += arenas + buffers
        self._last_trim = now
        # Quarantined regions stay counted while something still reaches them.
        return arenas + buffers + self._release_parked_locked()

    def trim(self) -> int:
        """Release the idle arenas and buffers that went unused since the last trim, and
        quarantined regions nothing reaches any more; return the bytes freed.

        It also runs every ``trim_interval`` seconds as arenas come back; while no
        traffic comes, :func:`electron.aio.trim_periodically` (which the aiohttp ``setup``
        runs) calls it.
        """
        with self._lock:
            freed = self._trim_locked(time.monotonic())
        self._free_released()
        return freed

    def _free_released(self) -> None:
        """Free the regions trims released, outside the lock: the lock is held only for
        bookkeeping, never while pages are unmapped (about 0.1 ms per MiB; 6-8 ms for the
        64 MiB of idle buffers the pool keeps at most by default)."""
        if self._lock.held():
            return  # a finalizer inside a locked section: the next trim or return frees them
        with self._lock:
            # A copy, then clear: with ``released, self._released = self._released, []``
            # the compiled core was seen to free the old list under the lock, then again.
            released = self._released.copy()
            self._released.clear()
        # The pages are unmapped here, with the lock free. A call, not ``del``: compiled
        # code frees a local at its last use, which ``del`` is not.
        released.clear()

    def statistics(self) -> ArenaOfPoolsStatistics:
        """A consistent snapshot of what this pool holds and has done."""
        with self._lock:
            self._drain_leaks_locked()
            self._buffers._drain_leaks_locked()
            bstats = self._buffers._statistics_locked()
            return ArenaOfPoolsStatistics(
                active_arenas=self._active,
                pooled_arenas=len(self._free),
                arenas_created=self._created,
                arenas_reused=self._reused,
                active_buffers=bstats.active,
                pooled_buffers=bstats.pooled,
                buffers_created=bstats.created,
                bytes_reserved=self._reserved_locked(),
                bytes_in_use=self._lent_bytes + self._buffers._active_bytes,
                high_water_bytes=max(self._high_water, self._reserved_locked()),
                quarantined=len(self._parked),
                quarantine_events=self._quarantine_events + bstats.quarantined,
                waiting=len(self._waiters),
                waits=self._waits,
                wait_timeouts=self._timeouts,
                trimmed_bytes=self._trimmed,
                arena_used_bytes_total=self._used_total,
                arena_used_bytes_max=self._used_max,
                leaks_detected=self._leaks_detected + bstats.leaks_detected,
                arena_size=self._arena_size,
            )

    def arena(self, *, timeout: SupportsFloat | None = None) -> ArenaScope:
        """A scope that lends the current task (or thread) an arena until it ends.

        ``async with aop.arena() as a:`` waits asynchronously for the budget;
        ``with aop.arena() as a:`` blocks the thread. Either way the arena is the current
        one (:func:`electron.aio.current_arena`) inside the scope and goes back at its end,
        on success, error or cancellation alike.
        """
        return ArenaScope(self, timeout)

    def close(self) -> None:
        """Release idle memory, fail every waiter with :class:`PoolClosed`, refuse new gets.

        Arenas and buffers lent out stay usable until they come back. Idempotent.
        """
        with self._lock:
            self._closed = True
            self._free.clear()
            self._parked.clear()
            self._free_bytes = self._parked_bytes = 0
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                w.error = PoolClosed("closed while waiting for an arena")
                w.wake()
        self._free_released()
        self._buffers.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def buffer_pool(self) -> BufferPool:
        """The :class:`BufferPool` this pool lends buffers from (shares its lock and budget)."""
        return self._buffers

    @property
    def arena_size(self) -> int:
        """Capacity of the arenas this pool lends now (learnt when ``arena_size="auto"``)."""
        return self._arena_size

    @property
    def auto_sized(self) -> bool:
        """True when the pool learns its arena size (``arena_size="auto"``)."""
        return self._auto

    @property
    def trim_interval(self) -> float | None:
        """Seconds between two trims (``None``: only when :meth:`trim` is called)."""
        return self._trim_interval

    @property
    def max_arenas(self) -> int | None:
        """How many arenas may be lent at once (``None``: no limit)."""
        return self._max_arenas

    @property
    def max_bytes(self) -> int | None:
        """How many bytes of arenas and buffers may be lent at once (``None``: no limit)."""
        return self._max_bytes

    def __enter__(self) -> ArenaOfPools:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<ArenaOfPools arena_size={self._arena_size} active={self._active} "
            f"pooled={len(self._free)} max_arenas={self._max_arenas}>"
        )
