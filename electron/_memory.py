"""Low-level helpers on ``bytearray`` regions shared by arenas and buffers."""

from __future__ import annotations

import math
import operator
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Generic, NoReturn, SupportsIndex, TypeVar

from ._errors import DoubleRelease, ElectronError, InvalidArgument

if TYPE_CHECKING:
    from mypy_extensions import i64

    from ._leaks import Trace

__all__ = (
    "ATOMIC",
    "COMPILED_HERE",
    "MAX_SIZE",
    "REVIVE",
    "UNMAPPED",
    "Guard",
    "Handle",
    "Spares",
    "Stack",
    "check_size",
    "check_timeout",
    "give_back_all",
    "is_exported",
    "local_refs",
    "poison",
    "refcount",
    "release_all",
    "zero",
)

T = TypeVar("T")

_ZERO_CHUNK: Final = 1 << 16
_ZEROS: Final = memoryview(bytes(_ZERO_CHUNK))
#: The base view of an arena or buffer no view was made of yet: a loan that never needs
#: one (most requests of many servers) costs no memoryview, no export probe and no zeroing.
UNMAPPED: Final = memoryview(b"")
#: Largest size accepted anywhere; larger requests are input errors, not allocation attempts.
MAX_SIZE: Final = 1 << 40


def check_size(value: object, name: str = "n") -> int:
    """Return ``value`` as an ``int`` in ``[0, MAX_SIZE]``, or raise a typed error.

    Integers and objects with ``__index__`` (numpy integers) are accepted; ``bool``, floats,
    strings and None raise :class:`TypeError`; negative or huge values raise
    :class:`~electron.InvalidArgument`.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    n: int = operator.index(value)  # type: ignore[call-overload,unused-ignore]
    if n < 0 or n > MAX_SIZE:
        raise InvalidArgument(name, value, f"an int in [0, {MAX_SIZE}]")
    return n


def check_timeout(timeout: object) -> float | None:
    """Return ``timeout`` as a finite float >= 0, or ``None`` for 'wait forever' (or inf)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    t = float(timeout)
    if math.isnan(t) or t < 0:
        raise InvalidArgument("timeout", timeout, "a number >= 0 or None")
    return None if math.isinf(t) else t


def is_exported(region: bytearray) -> bool:
    """True when something still holds a buffer export of ``region`` (a view, numpy, ctypes).

    A bytearray with live exports refuses to resize; shrinking and regrowing it by one byte
    never reallocates, so the probe costs well under a microsecond.
    """
    try:
        del region[-1]
    except BufferError:
        return True
    region.append(0)
    return False


_getrefcount: Final = sys.getrefcount  # bound once: compiled, a module lookup is slow


def refcount(obj: object) -> int:
    """``sys.getrefcount(obj)``: compared against a count calibrated at import time.

    A ``memoryview``'s ``.obj`` hands out the whole backing ``bytearray`` without creating
    a buffer export, so the export probe cannot see it; an extra reference can.
    """
    return _getrefcount(obj)


def local_refs() -> int:
    """The reference count of a region held by one local variable (the calibration)."""
    region = bytearray(1)
    return refcount(region)


class Spares(Generic[T]):
    """The last two dead handles a pool gave back, kept so that a later loan can revive one.

    Two, because the handle given back last is usually still bound to a variable of the code
    that used it (``async with ... as arena``) when the next loan is made; the one before it
    is not. A handle nothing but this object refers to cannot be reached by anyone (the handle
    classes support no weak references), so reviving it is invisible; a handle anything
    still holds stays dead for good. Used only with :data:`REVIVE`: the reference count is
    then exact and nothing runs between reading it and taking the handle.
    """

    __slots__ = ("_new", "_old")

    def __init__(self) -> None:
        self._old: T | None = None
        self._new: T | None = None

    def _old_refs(self) -> int:
        return _getrefcount(self._old)

    def take(self) -> T | None:
        """The older spare if nothing else refers to it (it is then no longer kept), else None."""
        if self._old is not None and self._old_refs() <= _SPARE_REFS:
            old = self._old
            self._old = None
            return old
        return None

    def put(self, handle: T) -> None:
        """Keep the dead ``handle``; the older of the two kept so far is let go."""
        self._old = self._new
        self._new = handle


def _spare_refs() -> int:
    """What ``Spares._old_refs`` reads for an object only the ``Spares`` refers to."""
    spares: Spares[bytearray] = Spares()
    spares._old = bytearray(1)
    return spares._old_refs()


_SPARE_REFS: Final = _spare_refs()


def release_all(views: list[memoryview]) -> bool:
    """Release every view in ``views``; False if one is still exported (numpy, C code)."""
    clean = True
    for v in views:
        try:
            v.release()
        except BufferError:
            clean = False
    return clean


_POISON_CHUNK: Final = memoryview(bytes((0xDB,)) * _ZERO_CHUNK)


def poison(mv: memoryview, n: int) -> None:
    """Fill the first ``n`` bytes of ``mv`` with the poison byte 0xDB, allocating nothing."""
    start = 0
    while start < n:
        end = min(start + _ZERO_CHUNK, n)
        mv[start:end] = _POISON_CHUNK[: end - start]
        start = end


def zero(mv: memoryview, n: int) -> None:
    """Fill the first ``n`` bytes of the writable byte view ``mv`` with zeros."""
    start = 0
    while start < n:
        end = min(start + _ZERO_CHUNK, n)
        mv[start:end] = _ZEROS[: end - start]
        start = end


def _probe() -> None:
    """Compiled by mypyc, this is a C function; interpreted, a Python one."""


#: True when this module runs compiled by mypyc. Compiled functions have no frames, so an
#: exception's traceback never keeps their local variables (a view, a region) alive; an
#: interpreted function's frame does, for as long as anything holds the exception.
COMPILED_HERE: Final = type(_probe).__name__ != "function"

#: True when compiled and the interpreter has a GIL. Compiled code is then never interrupted
#: by another thread between two statements that neither allocate a garbage-collected object
#: nor call Python code (a thread switch, a garbage collection and a finalizer all need one of
#: the two), so such a section is atomic without a lock. Interpreted code can switch threads
#: between any two bytecodes, and free-threaded builds have no GIL: both take the lock.
ATOMIC: Final = COMPILED_HERE and bool(getattr(sys, "_is_gil_enabled", lambda: True)())

#: True when pools revive dead handles (see :class:`Spares`): with :data:`ATOMIC`, on the
#: interpreter versions where every reference to an object is counted. From 3.14 the
#: interpreter may keep uncounted (borrowed) references on its stack, so there a reference
#: count of one no longer proves that nothing can reach the handle.
REVIVE: Final = ATOMIC and sys.version_info < (3, 14)


class Guard:
    """A pool's reentrant lock plus a count of the locked sections in progress.

    Pools update their counters either under this lock or, when :data:`ATOMIC`, in a
    lock-free section that first checks ``busy == 0``: no locked section is then half done
    (one may have been suspended by a thread switch, or by a garbage collection whose
    finalizer called back into the pool), so the section sees consistent state and, being
    atomic, leaves it consistent.
    """

    __slots__ = ("_lock", "busy")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.busy: i64 = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (``threading.RLock.acquire`` semantics)."""
        if self._lock.acquire(blocking, timeout):
            self.busy += 1
            return True
        return False

    def release(self) -> None:
        """Give the lock back."""
        try:
            self.busy -= 1
        finally:  # interpreted, a signal's exception could land between the two
            self._lock.release()

    def held(self) -> bool:
        """True when the calling thread holds the lock."""
        owned: bool = self._lock._is_owned()  # type: ignore[attr-defined]
        return owned

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


_EMPTY: Final = bytearray()


class Stack:
    """Idle regions, last in first out, each with the base view kept with it (or UNMAPPED).

    Its lists never shrink: a list that pops its last item frees its storage and the next
    push allocates it again, a pair of reallocations per loan when a single region is in
    use at a time. Popped slots hold shared placeholders instead, so the stack keeps no
    reference to a region it lent. ``low`` is the fewest items held since the last trim.
    """

    __slots__ = ("_regions", "_views", "low", "n")

    def __init__(self) -> None:
        self._regions: list[bytearray] = []
        self._views: list[memoryview] = []
        self.n: i64 = 0
        self.low: i64 = 0

    def push(self, region: bytearray, view: memoryview) -> None:
        """Add ``region`` (with its ``view``) on top. Allocates only when the stack grows."""
        n = self.n
        if n < len(self._regions):
            self._regions[n] = region
            self._views[n] = view
        else:
            self._regions.append(region)
            self._views.append(view)
        self.n = n + 1

    def top(self) -> bytearray:
        """The region on top (the stack must not be empty)."""
        return self._regions[self.n - 1]

    def top_view(self) -> memoryview:
        """The view kept with the region on top (the stack must not be empty)."""
        return self._views[self.n - 1]

    def pop(self) -> bytearray:
        """Remove and return the region on top (the stack must not be empty).

        Neither allocates nor frees anything: the caller holds the region.
        """
        n = self.n - 1
        region = self._regions[n]
        self._regions[n] = _EMPTY
        self._views[n] = UNMAPPED
        self.n = n
        if n < self.low:
            self.low = n
        return region

    def drop_oldest(self, count: int) -> int:
        """Forget the ``count`` oldest regions (the bottom of the stack); return their bytes."""
        count = min(count, self.n)
        freed = 0
        for region in self._regions[:count]:
            freed += len(region)
        regions = self._regions[count : self.n]
        views = self._views[count : self.n]
        # Both lists change together, with no allocation in between: a finalizer run by a
        # collection (which an allocation can start) never sees them out of step.
        self._regions, self._views = regions, views
        self.n -= count
        self.low = min(self.low, self.n)
        return freed

    def clear(self) -> int:
        """Forget every region; return their bytes."""
        return self.drop_oldest(self.n)

    def __len__(self) -> int:
        return self.n


class Handle:
    """What an :class:`~electron.Arena` and a :class:`~electron.Buffer` share as lent objects.

    ``_mv`` is the base view of the memory (``UNMAPPED`` until one is needed) and ``None``
    once the handle is dead; ``_trace`` says where it was taken, then where given back.
    """

    __slots__ = ("_mv", "_trace")

    def __init__(self) -> None:
        self._mv: memoryview | None = UNMAPPED
        self._trace: Trace | None = None

    def __copy__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be copied: a loan has one handle")

    def __deepcopy__(self, memo: object) -> NoReturn:
        self.__copy__()

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled: they are live memory")

    def _claim(self, guard: Guard, kind: str) -> memoryview:
        """Mark this handle as given back and return its base view; a second claim fails
        with :class:`~electron.DoubleRelease` (``kind`` names it: "arena", "buffer")."""
        if ATOMIC:  # a read and a write with nothing in between: atomic (see Guard)
            mv = self._mv
            self._mv = None
        else:
            with guard:
                mv = self._mv
                self._mv = None
        if mv is None:
            raise DoubleRelease(kind, self._trace)
        return mv


def give_back_all(deferred: list[T], give_back: Callable[[T], object]) -> None:
    """Give back, oldest first, what finalizers queued while the pool's lock was held.

    One given back twice (a finalizer and the code it interrupted both returned it) raises an
    :class:`~electron.ElectronError` with nothing to undo: it is skipped.
    """
    while deferred:
        try:
            give_back(deferred.pop(0))
        except ElectronError:
            pass
