"""Regions: the ``bytearray`` memory behind arenas and buffers, and how to tell it is free.

A region may be lent again only when nothing outside electron can reach it. Two checks
together prove that: the export probe (:func:`is_exported`: a live ``memoryview``, numpy
array or ctypes object pins it) and a reference count (:class:`RegionHolder`: a
``memoryview``'s ``.obj`` hands out the ``bytearray`` itself without an export).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final

__all__ = (
    "UNMAPPED",
    "IdleRegions",
    "RegionHolder",
    "is_exported",
    "poison",
    "release_all",
    "zero",
)

_CHUNK: Final = 1 << 16
_ZEROS: Final = memoryview(bytes(_CHUNK))
_POISON: Final = memoryview(bytes((0xDB,)) * _CHUNK)

#: The base view of an arena or buffer no view was made of yet: a loan that never needs
#: one costs no memoryview, no export probe and no zeroing.
UNMAPPED: Final = memoryview(b"")


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


_getrefcount: Final[Callable[[object], int] | None] = getattr(sys, "getrefcount", None)


class RegionHolder:
    """An object that owns one region: its reference count says whether anything else does.

    A ``memoryview``'s ``.obj`` hands out the ``bytearray`` itself, which no export probe
    sees; a reference more than the holder's own does. Interpreters without reference
    counts answer "shared": an exposed region is then never reused, which is safe.
    """

    __slots__ = ("_region",)

    def __init__(self, region: bytearray) -> None:
        self._region = region

    def _refs(self) -> int:
        assert _getrefcount is not None
        return _getrefcount(self._region)

    def _region_shared(self) -> bool:
        """True when something besides this holder may reference its region."""
        return _getrefcount is None or self._refs() > _ALONE

    def _region_free(self) -> bool:
        """True when nothing but this holder reaches its region (no export, no reference):
        the region may be lent again."""
        return not is_exported(self._region) and not self._region_shared()


#: What ``_refs`` reads for a region nothing but its holder refers to (counted, not assumed:
#: the figure depends on the interpreter and on whether this module is compiled).
_ALONE: Final = 0 if _getrefcount is None else RegionHolder(bytearray(1))._refs()


def release_all(views: list[memoryview]) -> bool:
    """Release every view in ``views``; False if one is still exported (numpy, C code)."""
    clean = True
    for v in views:
        try:
            v.release()
        except BufferError:
            clean = False
    return clean


def _fill(mv: memoryview, n: int, source: memoryview) -> None:
    start = 0
    while start < n:
        end = min(start + _CHUNK, n)
        mv[start:end] = source[: end - start]
        start = end


def zero(mv: memoryview, n: int) -> None:
    """Fill the first ``n`` bytes of the writable byte view ``mv`` with zeros."""
    _fill(mv, n, _ZEROS)


def poison(mv: memoryview, n: int) -> None:
    """Fill the first ``n`` bytes of ``mv`` with the poison byte 0xDB (paranoid mode)."""
    _fill(mv, n, _POISON)


class IdleRegions:
    """Idle regions of one pool (or size class), last in first out.

    ``low`` is the fewest regions held since the last :meth:`trim`: that many went unused
    for a whole trim interval, and trimming releases them, oldest first.
    """

    __slots__ = ("low", "regions")

    def __init__(self) -> None:
        self.regions: list[bytearray] = []
        self.low = 0

    def __len__(self) -> int:
        return len(self.regions)

    def push(self, region: bytearray) -> None:
        """Keep ``region`` for the next loan."""
        self.regions.append(region)

    def pop(self) -> bytearray:
        """The region kept last (there must be one)."""
        region = self.regions.pop()
        if len(self.regions) < self.low:
            self.low = len(self.regions)
        return region

    def trim(self, released: list[bytearray]) -> int:
        """Move the regions that went unused since the last trim into ``released``; return
        their bytes. The caller frees them (drops ``released``) after letting go of the
        pool's lock: freeing a large region unmaps its pages, about 0.1 ms per MiB."""
        count = min(self.low, len(self.regions))
        dropped = self.regions[:count]
        del self.regions[:count]
        self.low = len(self.regions)
        released.extend(dropped)
        return sum(len(region) for region in dropped)

    def release(self, nbytes: int) -> int:
        """Release the oldest regions until at least ``nbytes`` are freed (or none are left);
        return the bytes freed."""
        regions = self.regions
        count = freed = 0
        while count < len(regions) and freed < nbytes:
            freed += len(regions[count])
            count += 1
        del regions[:count]
        self.low = min(self.low, len(regions))
        return freed

    def clear(self) -> int:
        """Release every region; return their bytes."""
        freed = sum(len(region) for region in self.regions)
        self.regions.clear()
        self.low = 0
        return freed
