"""PoolLock: the lock a pool's books are kept under, which knows whether it is held here.

A garbage collection can start at any allocation, inside a locked section too, and run a
finalizer that gives an arena or buffer back. The pool then finds its lock held by the
calling thread and defers that return until the section is over, instead of deadlocking
or letting it into a half-done section.
"""

from __future__ import annotations

import threading

__all__ = ("PoolLock",)


class PoolLock:
    """A reentrant lock with :meth:`held`; ``with lock:`` takes it."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (``threading.RLock.acquire``)."""
        return self._lock.acquire(blocking)

    def release(self) -> None:
        """Give the lock back."""
        self._lock.release()

    def held(self) -> bool:
        """True when the calling thread holds the lock."""
        owned: bool = self._lock._is_owned()  # type: ignore[attr-defined]
        return owned

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()
