"""Arena: one region of memory, handed out in aligned slices and reclaimed in one step."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, Final, Protocol, SupportsIndex, TypeVar, cast

from ._checks import MAX_SIZE, check_size
from ._errors import ArenaClosed, InsufficientCapacity, InvalidArgument
from ._handle import Handle
from ._regions import UNMAPPED as _UNMAPPED
from ._regions import is_exported, release_all, zero

__all__ = ("ALIGNMENT", "Arena", "ArenaOwner")

T = TypeVar("T")

#: Every allocation starts at an offset that is a multiple of this many bytes.
ALIGNMENT: Final = 16

# The metaclasses of ctypes' data types: instances of these live in arena memory.
_CTYPES_META: Final[tuple[type, ...]] = (
    type(ctypes.Structure),
    type(ctypes.Union),
    type(ctypes.Array),
    type(ctypes.c_int),
    type(ctypes.POINTER(ctypes.c_int)),
)


class ArenaOwner(Protocol):
    """What an arena needs from the pool that lent it (:class:`~electron.ArenaOfPools`)."""

    def return_arena(self, arena: Arena) -> None:
        """Take ``arena`` back (its ``close()``)."""

    def _arena_chunk(self, arena: Arena, need: int) -> bytearray | None:
        """A chunk of at least ``need`` bytes for ``arena`` to grow into, or None."""

    def _arena_chunk_unused(self, region: bytearray) -> None:
        """A chunk ``_arena_chunk`` lent is given back unused (its arena was returned)."""

    def _arena_replace(self, old: bytearray, used: int) -> bytearray:
        """A fresh region for an arena being reset whose region ``old`` is still exported."""

    def _arena_spilled(self, arena: Arena) -> None:
        """``arena`` was reset and gave up its extra chunks (``arena._spilled``)."""

    def _arena_leaked(self, arena: Arena, mv: memoryview) -> None:
        """``arena`` is being garbage-collected while lent (``mv``: its base view)."""


def run_hooks(hooks: list[Callable[[], object]] | None) -> Exception | None:
    """Call every reset callback even if some fail; return the first failure, if any."""
    error: Exception | None = None
    if hooks is not None:
        for hook in hooks:
            try:
                hook()
            except Exception as exc:
                if error is None:
                    error = exc
    return error


class Arena(Handle):
    """A fixed-capacity region that hands out zero-filled, 16-byte-aligned memory.

    Everything allocated from an arena lives until :meth:`reset` or :meth:`close`, which
    release every view it handed out at once. Memory that something still exports (a numpy
    array, a derived memoryview, a ctypes object) is never handed out again while it is
    reachable: the arena replaces that region and counts it as quarantined. An arena belongs
    to one task or thread at a time; the pools that lend arenas are thread-safe.
    """

    __slots__ = (
        "_cap",
        "_chunks",
        "_extra",
        "_generation",
        "_hooks",
        "_obj",
        "_objects",
        "_offset",
        "_owner",
        "_quarantined",
        "_spilled",
        "_views",
    )

    def __init__(self, capacity: SupportsIndex) -> None:
        cap = check_size(capacity, "capacity")
        if cap == 0:
            raise InvalidArgument("capacity", capacity, "an int > 0")
        self._init(bytearray(cap), None)

    def _init(self, region: bytearray, owner: ArenaOwner | None) -> None:
        Handle.__init__(self, region)
        self._cap = len(region)
        self._offset = 0
        self._views: list[memoryview] | None = None
        self._obj: object = None  # the first object made by new(); the others in _objects
        self._objects: list[object] | None = None
        self._hooks: list[Callable[[], object]] | None = None
        self._owner: ArenaOwner | None = owner
        self._generation = 0
        self._quarantined = 0
        # Auto-sized pools let an arena grow: earlier chunks as (region, base view, used);
        # the current chunk is _region/_mv/_offset. _extra counts the chunks' bytes beyond
        # the first; _spilled hands them (with "may be reused") to the pool at scrub time.
        self._chunks: list[tuple[bytearray, memoryview, int]] | None = None
        self._extra = 0
        self._spilled: list[tuple[bytearray, bool]] | None = None

    def _closed_error(self) -> ArenaClosed:
        return ArenaClosed(where=self._trace)

    # -- allocation -------------------------------------------------------------------------

    def _slice(self, n: int, align: int) -> memoryview | None:
        """Bump the offset for ``n`` bytes and return their view, or None if they don't fit."""
        mv = self._mv
        if mv is None:
            raise self._closed_error()
        if mv is _UNMAPPED:
            mv = memoryview(self._region)
            self._check_alive(_UNMAPPED, mv)
            self._mv = mv
        start = (self._offset + align - 1) & -align
        end = start + n
        if end > self._cap:
            return None if self._owner is None else self._overflow(mv, n, align)
        v = mv[start:end]
        views = self._views
        if views is None:
            self._views = [v]
        else:
            views.append(v)
        self._check_alive(mv, v)
        self._offset = end
        return v

    def _check_alive(self, mv: memoryview, made: memoryview | None = None) -> None:
        """Raise :class:`ArenaClosed`, releasing ``made``, if the arena's base view is no
        longer ``mv``: it was given back while this method ran (a finalizer run by a
        collection, an argument's ``__index__``). Called after every step that may run such
        code, so that a returned arena never hands out memory that may be lent again."""
        if self._mv is not mv:
            if made is not None:
                made.release()
            raise self._closed_error()

    def _overflow(self, mv: memoryview, n: int, align: int) -> memoryview | None:
        """Grow by a chunk from the owner (auto-sized pools lend one) and allocate there."""
        owner = self._owner
        assert owner is not None
        region = owner._arena_chunk(self, n + align)
        if region is None:
            return None
        chunk = memoryview(region)
        entry = (self._region, mv, self._offset)
        chunks = self._chunks
        if chunks is None:
            chunks = [entry]
        else:
            chunks.append(entry)
        if self._mv is not mv:  # given back meanwhile: the chunk goes back unused
            chunk.release()
            owner._arena_chunk_unused(region)
            raise self._closed_error()
        self._chunks = chunks
        self._extra += len(region)
        self._region = region
        self._mv = chunk
        self._cap = len(region)
        self._offset = 0
        return self._slice(n, align)

    def _capacity_total(self) -> int:
        chunks = self._chunks
        first = self._cap if chunks is None else len(chunks[0][0])
        return first + self._extra

    def _used_total(self) -> int:
        chunks = self._chunks
        if chunks is None:
            return self._offset
        return self._offset + sum(used for _, _, used in chunks)

    def _no_room(self, n: int, align: int) -> InsufficientCapacity:
        start = (self._offset + align - 1) & -align
        return InsufficientCapacity(n, max(0, self._cap - start), self._cap)

    def alloc(self, n: SupportsIndex) -> memoryview:
        """Return a writable, zero-filled view of exactly ``n`` bytes.

        Raises :class:`InsufficientCapacity` when ``n`` bytes do not fit; the arena is then
        unchanged and stays usable.
        """
        size = n if type(n) is int and 0 <= n <= MAX_SIZE else check_size(n)
        v = self._slice(size, ALIGNMENT)
        if v is None:
            raise self._no_room(size, ALIGNMENT)
        return v

    def try_alloc(self, n: SupportsIndex) -> memoryview | None:
        """Like :meth:`alloc`, but return ``None`` when ``n`` bytes do not fit."""
        size = n if type(n) is int and 0 <= n <= MAX_SIZE else check_size(n)
        return self._slice(size, ALIGNMENT)

    def new(self, cls: type[T], /, *args: Any, **kwargs: Any) -> T:
        """Create an instance of ``cls`` whose lifetime is this arena's.

        A ctypes type (``Structure``, ``Union``, ``Array``, ``c_*``) is placed in arena
        memory, zeroed and aligned, then initialised with ``args``/``kwargs``. Any other class
        is constructed normally and held by the arena until :meth:`reset` or :meth:`close`.
        """
        if self._mv is None:
            raise self._closed_error()
        if type(cls) is not type and isinstance(cls, _CTYPES_META):  # plain classes: fast
            ctype: Any = cls
            size: int = ctypes.sizeof(ctype)
            align = max(ALIGNMENT, ctypes.alignment(ctype))
            v = self._slice(size, align)
            if v is None:
                raise self._no_room(size, align)
            obj = ctype.from_buffer(v)
            if args or kwargs:
                obj.__init__(*args, **kwargs)
            if self._mv is None:  # given back meanwhile: the object's memory may be lent
                raise self._closed_error()
            return cast(T, obj)
        inst = cls(*args, **kwargs) if args or kwargs else cls()
        if self._mv is None:  # the constructor (or a finalizer) gave the arena back
            raise self._closed_error()
        if self._obj is None:
            self._obj = inst
        elif self._objects is None:
            self._objects = [inst]
        else:
            self._objects.append(inst)
        return inst

    # -- lifetime ---------------------------------------------------------------------------

    def call_on_reset(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` at the start of every :meth:`reset` and at :meth:`close`.

        Pools whose objects live in this arena use it to forget them before the memory is
        reclaimed (see ``ObjectPool(arena=...)``).
        """
        if self._mv is None:
            raise self._closed_error()
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if self._hooks is None:
            self._hooks = [callback]
        else:
            self._hooks.append(callback)

    def _scrub(self, mv: memoryview) -> bool:
        """Drop objects, release views, zero what was used and release the base view ``mv``.

        Reset callbacks are the caller's to run (outside any pool lock: they are user code).
        Afterwards the arena is closed. Returns True when no export of the region survives,
        i.e. the region may be handed out again.
        """
        self._obj = self._objects = None
        if mv is _UNMAPPED:  # nothing was ever allocated: the region was never exposed
            self._mv = None
            return True
        clean = True
        views = self._views
        if views is not None:
            clean = release_all(views)
            self._views = None
        used = self._offset
        if used:
            zero(mv, used)
        mv.release()
        self._mv = None
        if self._chunks is not None:
            self._unchunk(clean)
        return clean and self._region_free()

    def _unchunk(self, clean: bool) -> None:
        """A grown arena: keep the first chunk as the arena's region, spill the others."""
        chunks = self._chunks
        assert chunks is not None
        spilled = [(self._region, clean and not is_exported(self._region))]
        for _, chunk_mv, chunk_used in chunks:
            if chunk_used:
                zero(chunk_mv, chunk_used)
            chunk_mv.release()
        for region, _, _ in chunks[1:]:
            spilled.append((region, clean and not is_exported(region)))
        self._region = chunks[0][0]
        self._cap = len(self._region)
        self._chunks = None
        self._spilled = spilled

    def reset(self) -> None:
        """Release everything allocated so far and start again, keeping the capacity.

        Views handed out become released (using one raises ``ValueError``); objects are
        dropped. A region that something still exports is replaced, never reused.
        """
        mv = self._mv
        if mv is None:
            raise self._closed_error()
        error = run_hooks(self._hooks)
        if self._mv is not mv:  # a callback gave the arena back (or closed it)
            raise error if error is not None else self._closed_error()
        used = self._used_total()
        clean = self._scrub(mv)
        if self._spilled is not None and self._owner is not None:
            self._owner._arena_spilled(self)
        if not clean:
            self._quarantined += 1
            owner = self._owner
            if owner is not None:
                self._region = owner._arena_replace(self._region, used)
            else:
                self._region = bytearray(self._cap)
            self._cap = len(self._region)  # an auto-sized pool may lend another size now
        self._mv = _UNMAPPED
        self._offset = 0
        self._generation += 1
        if error is not None:
            raise error

    def close(self) -> None:
        """Release everything; later calls raise :class:`ArenaClosed`. Idempotent.

        An arena lent by an :class:`ArenaOfPools` goes back to it.
        """
        mv = self._mv
        if mv is None:
            return
        owner = self._owner
        if owner is not None:
            owner.return_arena(self)
            return
        hooks, self._hooks = self._hooks, None
        error = run_hooks(hooks)
        if self._mv is mv:  # unless a callback closed it already
            self._scrub(mv)
        if error is not None:
            raise error

    def __enter__(self) -> Arena:
        if self._mv is None:
            raise self._closed_error()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- introspection ----------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Total bytes this arena can hand out (more once an auto-sized arena grew)."""
        return self._capacity_total()

    @property
    def used(self) -> int:
        """Bytes handed out since the last reset, alignment padding included."""
        if self._mv is None:
            raise self._closed_error()
        return self._used_total()

    @property
    def available(self) -> int:
        """Bytes still available for one aligned allocation."""
        if self._mv is None:
            raise self._closed_error()
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


class _LentArena(Arena):
    """An arena over a region lent by a pool: one object per loan, dead once given back."""

    __slots__ = ()

    def __init__(self, region: bytearray, owner: ArenaOwner) -> None:
        self._init(region, owner)

    def __del__(self) -> None:
        mv = self._mv
        owner = self._owner
        if mv is not None and owner is not None:
            owner._arena_leaked(self, mv)
