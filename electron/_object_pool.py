"""ObjectPool: reuses Python objects, and forgets them when the arena they live in resets."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Generic, SupportsIndex, TypeVar

from ._arena import Arena
from ._checks import check_size
from ._errors import DoubleRelease, ForeignObject

__all__ = ("ObjectPool", "ObjectPoolStatistics")

T = TypeVar("T")

_RECORD_LIMIT: Final = 4096


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
