"""Handle: what an arena and a buffer share as lent objects (one object per loan)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, SupportsIndex

from ._errors import DoubleRelease
from ._regions import UNMAPPED, RegionHolder

if TYPE_CHECKING:
    from ._leaks import Trace
    from ._lock import PoolLock

__all__ = ("Handle",)


class Handle(RegionHolder):
    """A loan of one region. Dead for good once given back; never copied or pickled.

    ``_mv`` is the base view of the memory (``UNMAPPED`` until one is needed) and ``None``
    once the handle is dead; ``_trace`` says where it was taken, then where given back.
    """

    __slots__ = ("_mv", "_trace")

    def __init__(self, region: bytearray) -> None:
        self._region = region
        self._mv: memoryview | None = UNMAPPED
        self._trace: Trace | None = None

    def __copy__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be copied: a loan has one handle")

    def __deepcopy__(self, memo: object) -> NoReturn:
        self.__copy__()

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled: they are live memory")

    def _claim(self, lock: PoolLock, kind: str) -> memoryview:
        """Mark this handle as given back and return its base view; a second claim fails
        with :class:`~electron.DoubleRelease` (``kind`` names it: "arena", "buffer")."""
        with lock:
            mv = self._mv
            self._mv = None
        if mv is None:
            raise DoubleRelease(kind, self._trace)
        return mv
