"""Arena: aligned zero-filled allocation, ctypes placement, reset, quarantine and close."""

from __future__ import annotations

import ctypes
import gc
import itertools
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from electron import ALIGNMENT, Arena, ArenaClosed, InsufficientCapacity, InvalidArgument


def address(view: memoryview) -> int:
    """The real address of the first byte of ``view`` (the helper export is dropped at once)."""
    probe = (ctypes.c_char * 1).from_buffer(view)
    try:
        return ctypes.addressof(probe)
    finally:
        del probe


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_double), ("tag", ctypes.c_char * 5)]


class Plain:
    def __init__(self, value: int, *, label: str = "") -> None:
        self.value = value
        self.label = label


# -- alloc ------------------------------------------------------------------------------------


def test_alignment_constant() -> None:
    assert ALIGNMENT == 16


@pytest.mark.parametrize("sizes", [[1, 3, 17, 5, 100, 16, 31], [64, 1, 1, 1], [1000, 7, 33]])
def test_alloc_returns_exact_writable_zeroed_aligned_views(sizes: list[int]) -> None:
    arena = Arena(4096)
    views = []
    for n in sizes:
        v = arena.alloc(n)
        assert isinstance(v, memoryview)
        assert len(v) == n
        assert v.nbytes == n
        assert v.format == "B"
        assert not v.readonly
        assert v == bytes(n)
        assert address(v) % 16 == 0
        v[:] = b"\xab" * n
        views.append(v)
    # Distinct, non-overlapping, increasing addresses; each view kept its own bytes.
    spans = sorted((address(v), address(v) + len(v)) for v in views)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start
    assert all(v == b"\xab" * len(v) for v in views)


def test_used_and_available_follow_aligned_bump() -> None:
    arena = Arena(256)
    assert (arena.used, arena.available, arena.capacity) == (0, 256, 256)
    arena.alloc(5)
    assert arena.used == 5
    assert arena.available == 256 - 16
    arena.alloc(16)
    assert arena.used == 32
    assert arena.available == 256 - 32


def test_alloc_zero_bytes_is_an_empty_view() -> None:
    arena = Arena(32)
    v = arena.alloc(0)
    assert len(v) == 0
    assert arena.alloc(32) == bytes(32)


def test_exact_fill_then_insufficient_capacity() -> None:
    arena = Arena(64)
    v = arena.alloc(64)
    assert len(v) == 64
    assert arena.available == 0
    with pytest.raises(InsufficientCapacity):
        arena.alloc(1)
    assert arena.try_alloc(1) is None


def test_failed_alloc_leaves_arena_fully_usable() -> None:
    arena = Arena(1024)
    first = arena.alloc(100)
    first[:] = b"\x01" * 100
    with pytest.raises(InsufficientCapacity) as info:
        arena.alloc(2048)
    assert info.value.requested == 2048
    assert info.value.capacity == 1024
    assert arena.try_alloc(2048) is None
    assert arena.used == 100
    rest = arena.alloc(1024 - 112)  # everything that is left after alignment
    assert len(rest) == 1024 - 112
    assert rest == bytes(len(rest))
    assert first == b"\x01" * 100
    assert arena.available == 0


def test_try_alloc_returns_zeroed_view_when_it_fits() -> None:
    arena = Arena(128)
    v = arena.try_alloc(40)
    assert v is not None
    assert len(v) == 40
    assert v == bytes(40)
    assert address(v) % 16 == 0


# -- new --------------------------------------------------------------------------------------


def test_new_structure_lives_in_arena_memory() -> None:
    arena = Arena(1024)
    base = arena.alloc(16)
    base_addr = address(base)
    used_before = arena.used
    p = arena.new(Point)
    assert isinstance(p, Point)
    assert arena.used - used_before >= ctypes.sizeof(Point)
    addr = ctypes.addressof(p)
    assert addr % 16 == 0
    assert base_addr <= addr
    assert addr + ctypes.sizeof(Point) <= base_addr + arena.capacity
    assert (p.x, p.y, p.tag) == (0, 0.0, b"")
    p.x = 0x01020304
    p.y = 2.5
    # The write is in the arena's memory: a later allocation does not overlap it, and the
    # bytes at the object's address are the ones written.
    raw = ctypes.string_at(addr, ctypes.sizeof(Point))
    assert raw[:4] == (0x01020304).to_bytes(4, "little")
    after = arena.alloc(8)
    assert address(after) >= addr + ctypes.sizeof(Point)
    del p


def test_new_ctypes_write_through_object_changes_arena_bytes() -> None:
    arena = Arena(256)
    marker = arena.alloc(16)
    start = address(marker)
    num = arena.new(ctypes.c_uint32, 0)
    offset = ctypes.addressof(num) - start
    num.value = 0xDEADBEEF
    # ``marker.obj`` is the arena's backing object: read the bytes there.
    backing = memoryview(marker.obj)
    assert backing[offset : offset + 4].tobytes() == (0xDEADBEEF).to_bytes(4, "little")
    backing.release()
    del num


def test_new_initialises_from_args_and_kwargs() -> None:
    arena = Arena(1024)
    p = arena.new(Point, 3, 2.5, b"abc")
    assert (p.x, p.y, p.tag) == (3, 2.5, b"abc")
    q = arena.new(Point, y=-1.0)
    assert (q.x, q.y) == (0, -1.0)
    n = arena.new(ctypes.c_int, 7)
    assert n.value == 7
    arr = arena.new(ctypes.c_int * 4, 1, 2, 3)
    assert list(arr) == [1, 2, 3, 0]
    for obj in (p, q, n, arr):
        assert ctypes.addressof(obj) % 16 == 0
    del p, q, n, arr


@pytest.mark.parametrize(
    "ctype", [Point, ctypes.c_int, ctypes.c_double, ctypes.c_char * 33, ctypes.c_uint8 * 1]
)
def test_new_ctypes_grows_used_by_at_least_sizeof(ctype: type) -> None:
    arena = Arena(1024)
    arena.alloc(3)
    before = arena.used
    obj: Any = arena.new(ctype)
    assert arena.used - before >= ctypes.sizeof(ctype)
    assert ctypes.string_at(ctypes.addressof(obj), ctypes.sizeof(ctype)) == bytes(
        ctypes.sizeof(ctype)
    )
    del obj


def test_new_ctypes_is_zeroed_even_over_dirty_memory() -> None:
    arena = Arena(256)
    v = arena.alloc(256)
    v[:] = b"\xff" * 256
    arena.reset()
    p = arena.new(Point)
    assert (p.x, p.y, p.tag) == (0, 0.0, b"")
    arr = arena.new(ctypes.c_uint8 * 64)
    assert bytes(arr) == bytes(64)
    del p, arr


def test_new_ctypes_that_does_not_fit_raises_and_arena_stays_usable() -> None:
    arena = Arena(32)
    with pytest.raises(InsufficientCapacity):
        arena.new(ctypes.c_char * 64)
    assert arena.used == 0
    n = arena.new(ctypes.c_int, 5)
    assert n.value == 5
    del n


def test_new_plain_class_is_constructed_and_held_until_reset() -> None:
    arena = Arena(64)
    obj = arena.new(Plain, 42, label="x")
    assert isinstance(obj, Plain)
    assert (obj.value, obj.label) == (42, "x")
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is not None, "the arena must hold the object until reset"
    arena.reset()
    gc.collect()
    assert ref() is None, "reset must drop the arena's reference"


def test_new_plain_class_is_dropped_on_close() -> None:
    arena = Arena(64)
    ref = weakref.ref(arena.new(Plain, 1))
    gc.collect()
    assert ref() is not None
    arena.close()
    gc.collect()
    assert ref() is None


# -- reset ------------------------------------------------------------------------------------


def test_reset_releases_views_and_keeps_capacity() -> None:
    arena = Arena(512)
    views = [arena.alloc(n) for n in (10, 20, 30)]
    for v in views:
        v[:] = b"\x5a" * len(v)
    gen = arena.generation
    arena.reset()
    assert arena.generation == gen + 1
    assert arena.used == 0
    assert arena.capacity == 512
    assert arena.available == 512
    assert arena.quarantined == 0
    for v in views:
        with pytest.raises(ValueError):
            v[0]
        with pytest.raises(ValueError):
            bytes(v)
        with pytest.raises(ValueError):
            v[0] = 1
    whole = arena.alloc(512)
    assert whole == bytes(512)


def test_reset_zeroes_everything_used_including_ctypes_objects() -> None:
    arena = Arena(256)
    v = arena.alloc(100)
    v[:] = b"\x11" * 100
    p = arena.new(Point, 9, 9.0, b"zz")
    del p
    arena.reset()
    assert arena.quarantined == 0
    assert arena.alloc(256) == bytes(256)


def test_many_resets_keep_working() -> None:
    arena = Arena(128)
    for i in range(200):
        v = arena.alloc(100)
        assert v == bytes(100)
        v[:] = bytes([i % 255 + 1]) * 100
        arena.reset()
    assert arena.generation == 200
    assert arena.quarantined == 0


# -- exports outliving reset: quarantine -------------------------------------------------------

Exporter = Callable[[memoryview, Arena], object]


def _derived(v: memoryview, arena: Arena) -> object:
    return memoryview(v)


def _cast(v: memoryview, arena: Arena) -> object:
    return v.cast("I")


def _numpy(v: memoryview, arena: Arena) -> object:
    return np.frombuffer(v, dtype=np.uint8)


def _ctypes_from_view(v: memoryview, arena: Arena) -> object:
    return (ctypes.c_uint8 * len(v)).from_buffer(v)


def _slice_of_slice(v: memoryview, arena: Arena) -> object:
    return v[4:]


EXPORTERS = [_derived, _cast, _numpy, _ctypes_from_view, _slice_of_slice]


def _scribble(export: object, value: int) -> None:
    if isinstance(export, np.ndarray):
        export[:] = value
    elif isinstance(export, memoryview):
        if export.format == "B":
            export[:] = bytes([value]) * len(export)
        else:
            for i in range(len(export)):
                export[i] = value * 0x01010101
    else:
        assert isinstance(export, ctypes.Array)
        ctypes.memset(ctypes.addressof(export), value, ctypes.sizeof(export))


@pytest.mark.parametrize("exporter", EXPORTERS, ids=lambda f: f.__name__.strip("_"))
def test_export_outliving_reset_is_quarantined_never_reused(exporter: Exporter) -> None:
    arena = Arena(256)
    v = arena.alloc(64)
    v[:] = b"\x77" * 64
    export = exporter(v, arena)
    arena.reset()
    assert arena.quarantined == 1
    assert arena.used == 0
    with pytest.raises(ValueError):
        v[0]
    fresh = arena.alloc(256)
    assert fresh == bytes(256), "memory from the previous use is visible to the next"
    fresh[:] = b"\x01" * 256
    _scribble(export, 0xEE)
    assert fresh == b"\x01" * 256, "a stale export writes into the arena's new memory"
    del export
    # With the export gone, later resets are clean again.
    arena.reset()
    assert arena.quarantined == 1
    assert arena.alloc(256) == bytes(256)


def test_ctypes_object_still_referenced_at_reset_is_quarantined() -> None:
    arena = Arena(256)
    p = arena.new(Point, 5, 1.0, b"old")
    arena.reset()
    assert arena.quarantined == 1
    q = arena.new(Point)
    assert (q.x, q.y, q.tag) == (0, 0.0, b"")
    p.x = 99
    p.tag = b"stale"
    assert (q.x, q.tag) == (0, b"")
    assert arena.alloc(128) == bytes(128)
    del p, q


def test_unreleased_export_of_one_view_does_not_affect_others() -> None:
    arena = Arena(256)
    a = arena.alloc(32)
    b = arena.alloc(32)
    a[:] = b"\x01" * 32
    b[:] = b"\x02" * 32
    keep = np.frombuffer(b, dtype=np.uint8)
    arena.reset()
    assert arena.quarantined == 1
    x = arena.alloc(32)
    y = arena.alloc(32)
    assert x == bytes(32)
    assert y == bytes(32)
    keep[:] = 0xEE
    assert x == bytes(32)
    assert y == bytes(32)
    del keep


# -- close and context manager ----------------------------------------------------------------


def test_close_then_arena_closed_on_everything() -> None:
    arena = Arena(128)
    v = arena.alloc(8)
    arena.close()
    assert arena.closed
    with pytest.raises(ValueError):
        v[0]
    calls: list[Callable[[], object]] = [
        lambda: arena.alloc(1),
        lambda: arena.try_alloc(1),
        lambda: arena.new(Point),
        lambda: arena.new(Plain, 1),
        arena.reset,
        lambda: arena.used,
        lambda: arena.available,
        lambda: arena.call_on_reset(lambda: None),
        arena.__enter__,
    ]
    for call in calls:
        with pytest.raises(ArenaClosed):
            call()
    arena.close()  # idempotent
    assert arena.closed
    assert arena.capacity == 128


def test_context_manager_closes() -> None:
    with Arena(64) as arena:
        assert isinstance(arena, Arena)
        assert arena.available == 64
        v = arena.alloc(8)
        v[0] = 1
    assert arena.closed
    with pytest.raises(ValueError):
        v[0]
    with pytest.raises(ArenaClosed):
        arena.alloc(1)


def test_context_manager_closes_on_error() -> None:
    arena = Arena(64)

    def use() -> None:
        with arena:
            raise KeyError("boom")

    with pytest.raises(KeyError):
        use()
    assert arena.closed


# -- bad arguments ----------------------------------------------------------------------------

BAD_SIZES: list[tuple[object, type[Exception]]] = [
    (-1, InvalidArgument),
    (-(1 << 70), InvalidArgument),
    (True, TypeError),
    (False, TypeError),
    (1.0, TypeError),
    (float("nan"), TypeError),
    ("8", TypeError),
    (None, TypeError),
    (b"8", TypeError),
]


@pytest.mark.parametrize(("size", "error"), BAD_SIZES, ids=repr)
@pytest.mark.parametrize("method", ["alloc", "try_alloc"])
def test_bad_sizes_raise_and_arena_stays_usable(
    method: str, size: object, error: type[Exception]
) -> None:
    arena = Arena(128)
    arena.alloc(5)
    with pytest.raises(error):
        getattr(arena, method)(size)
    assert arena.used == 5
    v = arena.alloc(16)
    assert v == bytes(16)
    assert arena.used == 32


@pytest.mark.parametrize("size", [(1 << 40) + 1, 1 << 41, 1 << 80], ids=repr)
@pytest.mark.parametrize("method", ["alloc", "try_alloc"])
def test_size_above_the_maximum_is_an_invalid_argument(method: str, size: int) -> None:
    # Sizes above the documented maximum (1 TiB) are input errors, not allocation attempts:
    # try_alloc must not quietly answer None for them.
    arena = Arena(128)
    with pytest.raises(InvalidArgument):
        getattr(arena, method)(size)
    assert len(arena.alloc(128)) == 128


def test_huge_but_valid_size_is_insufficient_capacity() -> None:
    arena = Arena(128)
    with pytest.raises(InsufficientCapacity):
        arena.alloc(1 << 40)
    assert arena.try_alloc(1 << 40) is None
    assert len(arena.alloc(128)) == 128


@pytest.mark.parametrize(
    ("capacity", "error"),
    [(0, InvalidArgument), (1 << 41, InvalidArgument), (1 << 80, InvalidArgument), *BAD_SIZES],
    ids=repr,
)
def test_bad_capacity_is_refused(capacity: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Arena(capacity)  # type: ignore[arg-type]


def test_repr_mentions_capacity_and_state() -> None:
    arena = Arena(128)
    arena.alloc(3)
    assert "128" in repr(arena)
    assert "used=3" in repr(arena)
    arena.close()
    assert "closed" in repr(arena)
