"""Arena: one region of memory, handed out in aligned slices and reclaimed in one step."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from ._errors import ArenaClosed, InsufficientCapacity, InvalidArgument
from ._memory import check_size, is_exported, release_all, zero

__all__ = ("ALIGNMENT", "Arena")

T = TypeVar("T")

#: Every allocation starts at an offset that is a multiple of this many bytes.
ALIGNMENT = 16

# The metaclasses of ctypes' data types: instances of these live in arena memory.
_CTYPES_META: tuple[type, ...] = (
    type(ctypes.Structure),
    type(ctypes.Union),
    type(ctypes.Array),
    type(ctypes.c_int),
    type(ctypes.POINTER(ctypes.c_int)),
)


class _RegionOwner(Protocol):
    """What an arena needs from the pool that lent it its region (ArenaOfPools)."""

    def _replace_region(self, old: bytearray, used: int) -> bytearray: ...

    def _close_arena(self, arena: Arena) -> None: ...


class Arena:
    """A fixed-capacity region that hands out zero-filled, 16-byte-aligned memory.

    Everything allocated from an arena lives until :meth:`reset` or :meth:`close`, which
    release every view it handed out at once. Memory that something still exports (a numpy
    array, a derived memoryview) is never handed out again: the arena replaces that region
    and counts it as quarantined. An arena belongs to one task or thread at a time; the
    pools that lend arenas are thread-safe.
    """

    __slots__ = (
        "__weakref__",
        "_cap",
        "_generation",
        "_mv",
        "_objects",
        "_offset",
        "_on_reset",
        "_owner",
        "_quarantined",
        "_region",
        "_views",
    )

    _region: bytearray
    _mv: memoryview | None
    _owner: _RegionOwner | None

    def __init__(self, capacity: int) -> None:
        cap = check_size(capacity, "capacity")
        if cap == 0:
            raise InvalidArgument("capacity", capacity, "an int > 0")
        self._init(bytearray(cap), None)

    def _init(self, region: bytearray, owner: _RegionOwner | None) -> None:
        self._region = region
        self._cap = len(region)
        self._mv = memoryview(region)
        self._offset = 0
        self._views: list[memoryview] = []
        self._objects: list[object] = []
        self._on_reset: list[Callable[[], object]] = []
        self._owner = owner
        self._generation = 0
        self._quarantined = 0

    @classmethod
    def _adopt(cls, region: bytearray, owner: _RegionOwner) -> Arena:
        """A new handle over a zeroed ``region`` lent by ``owner``."""
        self = cls.__new__(cls)
        self._init(region, owner)
        return self

    # -- allocation -------------------------------------------------------------------------

    def _reserve(self, n: object, align: int = ALIGNMENT) -> tuple[memoryview, int, int]:
        """Bump the offset for ``n`` bytes; return (base view, start, end) or end == -1."""
        mv = self._mv
        if mv is None:
            raise ArenaClosed()
        if n.__class__ is not int or cast(int, n) < 0:
            n = check_size(n)
        start = (self._offset + align - 1) & -align
        end = start + cast(int, n)
        if end > self._cap:
            return mv, start, -1
        self._offset = end
        return mv, start, end

    def alloc(self, n: int) -> memoryview:
        """Return a writable, zero-filled view of exactly ``n`` bytes.

        Raises :class:`InsufficientCapacity` when ``n`` bytes do not fit; the arena is
        unchanged and stays usable.
        """
        mv, start, end = self._reserve(n)
        if end < 0:
            raise InsufficientCapacity(cast(int, n), max(0, self._cap - start), self._cap)
        v = mv[start:end]
        self._views.append(v)
        return v

    def try_alloc(self, n: int) -> memoryview | None:
        """Like :meth:`alloc`, but return ``None`` when ``n`` bytes do not fit."""
        mv, start, end = self._reserve(n)
        if end < 0:
            return None
        v = mv[start:end]
        self._views.append(v)
        return v

    def new(self, cls: type[T], /, *args: Any, **kwargs: Any) -> T:
        """Create an instance of ``cls`` whose lifetime is this arena's.

        A ctypes type (``Structure``, ``Union``, ``Array``, ``c_*``) is placed in arena
        memory, zeroed and aligned, then initialised with ``args``/``kwargs``. Any other class
        is constructed normally and held by the arena until :meth:`reset` or :meth:`close`.
        """
        if isinstance(cls, _CTYPES_META):
            ctype = cast(Any, cls)
            size = ctypes.sizeof(ctype)
            mv, start, end = self._reserve(size, max(ALIGNMENT, ctypes.alignment(ctype)))
            if end < 0:
                raise InsufficientCapacity(size, max(0, self._cap - start), self._cap)
            obj = ctype.from_buffer(mv, start)
            if args or kwargs:
                obj.__init__(*args, **kwargs)
            return cast(T, obj)
        if self._mv is None:
            raise ArenaClosed()
        inst = cls(*args, **kwargs)
        self._objects.append(inst)
        return inst

    # -- lifetime ---------------------------------------------------------------------------

    def call_on_reset(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` at the start of every :meth:`reset` and at :meth:`close`.

        Pools whose objects live in this arena use it to forget them before the memory is
        reclaimed (see ``ObjectPool(arena=...)``).
        """
        if self._mv is None:
            raise ArenaClosed()
        self._on_reset.append(callback)

    def _scrub(self) -> bool:
        """Drop objects, release views, zero what was used and release the base view.

        Returns True when no export of the region survives (it may be reused).
        """
        for cb in self._on_reset:
            cb()
        self._objects.clear()
        clean = release_all(self._views)
        mv = self._mv
        assert mv is not None
        used = self._offset
        if used:
            zero(mv, used)
        mv.release()
        self._mv = None
        return clean and not is_exported(self._region)

    def reset(self) -> None:
        """Release everything allocated so far and start again, keeping the capacity.

        Views handed out become released (using one raises ``ValueError``); objects are
        dropped. A region that something still exports is replaced, never reused.
        """
        if self._mv is None:
            raise ArenaClosed()
        used = self._offset
        if not self._scrub():
            self._quarantined += 1
            if self._owner is not None:
                self._region = self._owner._replace_region(self._region, used)
            else:
                self._region = bytearray(self._cap)
        self._mv = memoryview(self._region)
        self._offset = 0
        self._generation += 1

    def close(self) -> None:
        """Release everything; later calls raise :class:`ArenaClosed`. Idempotent.

        An arena lent by an :class:`ArenaOfPools` goes back to it.
        """
        if self._mv is None:
            return
        if self._owner is not None:
            self._owner._close_arena(self)
            return
        self._scrub()
        self._on_reset.clear()

    def __enter__(self) -> Arena:
        if self._mv is None:
            raise ArenaClosed()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- introspection ----------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Total bytes this arena can hand out."""
        return self._cap

    @property
    def used(self) -> int:
        """Bytes handed out since the last reset, alignment padding included."""
        if self._mv is None:
            raise ArenaClosed()
        return self._offset

    @property
    def available(self) -> int:
        """Bytes still available for one aligned allocation."""
        if self._mv is None:
            raise ArenaClosed()
        return max(0, self._cap - ((self._offset + ALIGNMENT - 1) & -ALIGNMENT))

    @property
    def closed(self) -> bool:
        """True once the arena was closed or given back."""
        return self._mv is None

    @property
    def generation(self) -> int:
        """How many times this arena was reset; objects from an older generation are gone."""
        return self._generation

    @property
    def quarantined(self) -> int:
        """How many regions this arena replaced because something still exported them."""
        return self._quarantined

    def __repr__(self) -> str:
        state = "closed" if self._mv is None else f"used={self._offset}"
        return f"<Arena capacity={self._cap} {state}>"
