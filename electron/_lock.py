"""PoolLock: the lock a pool's books are kept under, which knows whether it is held here.

A garbage collection can start at any allocation, inside a locked section too, and run a
finalizer that gives an arena or buffer back. The pool then finds its lock held by the
calling thread and defers that return (:meth:`PoolLock.defer`) until the thread lets the
lock go, instead of deadlocking or letting it into a half-done section.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._errors import ElectronError

__all__ = ("PoolLock",)


class PoolLock:
    """A reentrant lock with :meth:`held` and :meth:`defer`; ``with lock:`` takes it."""

    __slots__ = ("_deferred", "_lock")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._deferred: list[Callable[[], object]] = []

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (``threading.RLock.acquire``)."""
        return self._lock.acquire(blocking)

    def release(self) -> None:
        """Give the lock back; work deferred meanwhile runs once this thread no longer holds it."""
        self._lock.release()
        if self._deferred and not self.held():
            self._run_deferred()

    def run_if_free(self, work: Callable[[], object]) -> None:
        """Run ``work()`` under the lock if no thread holds it now; else leave it (never waits,
        never reenters: for finalizers, which may run inside a locked section)."""
        if self.held() or not self._lock.acquire(False):
            return
        try:
            work()
        finally:
            self.release()

    def defer(self, work: Callable[[], object]) -> None:
        """Run ``work()`` as soon as the thread holding the lock (the caller) lets it go."""
        self._deferred.append(work)

    def _run_deferred(self) -> None:
        # Oldest first. Work that fails with an ElectronError (a handle a finalizer and the
        # code it interrupted both gave back: DoubleRelease) had nothing to undo: skipped.
        while self._deferred:
            try:
                work = self._deferred.pop(0)
            except IndexError:  # another thread ran the last item meanwhile
                return
            try:
                work()
            except ElectronError:
                pass

    def held(self) -> bool:
        """True when the calling thread holds the lock."""
        owned: bool = self._lock._is_owned()  # type: ignore[attr-defined]
        return owned

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
