"""Every error electron raises, in one tree.

Each error also subclasses the builtin it resembles, so callers can catch either::

    ElectronError
    ├── InvalidArgument            (ValueError)   a size, timeout or option is out of range
    ├── InsufficientCapacity       (MemoryError)  a request can never fit (an arena, the budget)
    ├── PoolExhausted              (TimeoutError) a budget stayed exhausted past the timeout
    ├── ResourceClosed             (RuntimeError) use of something already given back
    │   ├── ArenaClosed                           an Arena after close() or return
    │   ├── BufferClosed                          a Buffer after it went back to its pool
    │   ├── PoolClosed                            an ArenaOfPools after close()
    │   └── SchedulerClosed*                      a Scheduler used outside its ``async with``
    ├── DoubleRelease              (RuntimeError) the same object given back twice
    ├── ForeignObject              (ValueError)   an object given to a pool that did not lend it
    ├── SchedulerFull*             (anyio.WouldBlock) ``submit_nowait`` found the queue full
    └── JobCancelled*                             awaiting a job that was cancelled

The starred ones live in ``electron.aio`` (they need anyio); the rest are here.

Messages are built in ``__init__`` from the facts (sizes, capacities, which pool), so every
raise site states them the same way.
"""

from __future__ import annotations

__all__ = (
    "ArenaClosed",
    "BufferClosed",
    "DoubleRelease",
    "ElectronError",
    "ForeignObject",
    "InsufficientCapacity",
    "InvalidArgument",
    "PoolClosed",
    "PoolExhausted",
    "ResourceClosed",
)


class ElectronError(Exception):
    """Base class of every error electron raises."""


class InvalidArgument(ElectronError, ValueError):
    """A size, timeout or option was out of range (negative, NaN, too large ...)."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = value
        super().__init__(f"{name}={value!r} is invalid: expected {expected}")


class InsufficientCapacity(ElectronError, MemoryError):
    """A request does not fit: in what is left of an arena (the arena stays usable), or in
    the pool's whole budget (``where="budget"``: waiting cannot help, unlike
    :class:`PoolExhausted`)."""

    def __init__(
        self, requested: int, available: int, capacity: int, where: str = "arena"
    ) -> None:
        self.requested = requested
        self.available = available
        self.capacity = capacity
        self.where = where
        if where == "budget":
            msg = (
                f"cannot lend {requested} bytes: more than the whole budget "
                f"(max_bytes={capacity}); raise max_bytes or work in smaller pieces"
            )
        else:
            msg = (
                f"cannot allocate {requested} bytes: {available} of {capacity} bytes left in "
                "this arena; use try_alloc() to fall back, a larger arena_size, or a pooled Buffer"
            )
        super().__init__(msg)


class PoolExhausted(ElectronError, TimeoutError):
    """The pool's budget stayed exhausted for longer than the caller agreed to wait.

    ``nbytes``: the bytes that were asked for, where known (a buffer, a buffer's growth)."""

    def __init__(
        self, what: str, timeout: float | None, limit: str, nbytes: int | None = None
    ) -> None:
        self.what = what
        self.timeout = timeout
        self.limit = limit
        self.nbytes = nbytes
        waited = "without waiting" if not timeout else f"after waiting {timeout:g}s"
        super().__init__(
            f"no {what} available {waited}: {limit}; raise the budget, "
            "return resources sooner, or wait longer"
        )


class ResourceClosed(ElectronError, RuntimeError):
    """Something that was closed or given back was used again."""

    kind = "resource"

    def __init__(self, detail: str = "", where: object = None) -> None:
        self.where = where
        msg = f"this {self.kind} was already closed or given back"
        if detail:
            msg += f" ({detail})"
        if where:
            msg += f"; it was given back at:\n{where}"
        super().__init__(msg)


class ArenaClosed(ResourceClosed):
    """An Arena was used after ``close()`` or after it went back to its ArenaOfPools."""

    kind = "arena"


class BufferClosed(ResourceClosed):
    """A Buffer was used after it went back to its pool."""

    kind = "buffer"


class PoolClosed(ResourceClosed):
    """An ArenaOfPools or BufferPool was used after ``close()``."""

    kind = "pool"


class DoubleRelease(ElectronError, RuntimeError):
    """The same object was given back twice; the second release is refused."""

    def __init__(self, kind: str, where: object = None) -> None:
        self.kind = kind
        self.where = where
        msg = f"this {kind} was already given back; a second release is refused"
        if where:
            msg += f"; it was first given back at:\n{where}"
        super().__init__(msg)


class ForeignObject(ElectronError, ValueError):
    """An object was given to a pool that did not lend it."""

    def __init__(self, kind: str, pool: object) -> None:
        self.kind = kind
        self.pool = pool
        super().__init__(f"this {kind} was not lent by {pool!r}; give it back to its own pool")
