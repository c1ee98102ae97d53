"""Exports that outlive their scope: safe (a copy) or quarantined, never reused while reachable.

Inside ``async with aop.arena()`` (and ``with``, and child tasks) a request makes every kind
of export of its memory: memoryview slices, ``memoryview(v)``, ``v.cast``, numpy arrays,
ctypes objects, ``bytes(v)``. The scope ends and the arena goes back. Then later loans fill
their memory with their own bytes while the stale export writes a pattern: no later loan may
see the pattern, and the stale export may never see a later loan's bytes. In ``paranoid``
mode a quarantined export reads the poison byte instead of the old data.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import numpy as np
import pytest

from electron import Arena, ArenaClosed, ArenaOfPools
from electron.aio import current_arena

SECRET = bytes(range(0x40, 0x80))  # the first loan's data: 64 bytes, none of them 0x11/0xEE
LATER = 0x11  # what later loans write
STALE = 0xEE  # what the stale export writes
POISON = 0xDB
ARENA = 4096


@dataclass(frozen=True)
class Export:
    """One way to keep arena memory reachable past the scope."""

    make: Callable[[memoryview], object]
    copy: bool = False  # a copy is safe by construction: it must keep the first loan's bytes
    writable: bool = True


def _write(obj: object, byte: int) -> None:
    if isinstance(obj, np.ndarray):
        obj[...] = byte
    elif isinstance(obj, ctypes.Array):
        ctypes.memset(ctypes.addressof(obj), byte, ctypes.sizeof(obj))
    elif isinstance(obj, memoryview):
        flat = obj if obj.ndim == 1 and obj.format == "B" else None
        if flat is not None:
            flat[:] = bytes([byte]) * len(flat)
        else:  # a cast or multi-dimensional view: write every item
            items = obj.cast("B") if obj.c_contiguous else None
            if items is not None:
                items[:] = bytes([byte]) * len(items)
            else:
                for i in range(len(obj)):
                    obj[i] = byte
    elif isinstance(obj, bytearray):
        obj[:] = bytes([byte]) * len(obj)
    else:
        raise TypeError(f"cannot write through {type(obj).__name__}")


def _read(obj: object) -> bytes:
    if isinstance(obj, np.ndarray):
        return obj.tobytes()
    if isinstance(obj, memoryview):
        return obj.tobytes()
    assert isinstance(obj, bytes | bytearray | ctypes.Array)
    return bytes(obj)


EXPORTS: dict[str, Export] = {
    "slice": Export(lambda v: v[8:40]),
    "strided slice": Export(lambda v: v[::2]),
    "memoryview(v)": Export(lambda v: memoryview(v)),
    "memoryview(v)[a:b]": Export(lambda v: memoryview(v)[4:60]),
    "v.cast('I')": Export(lambda v: v.cast("I")),
    "v.cast('B', shape)": Export(lambda v: v.cast("B", shape=[4, 16])),
    "v.toreadonly()": Export(lambda v: v.toreadonly(), writable=False),
    "numpy frombuffer": Export(lambda v: np.frombuffer(v, dtype=np.uint8)),
    "numpy asarray slice": Export(lambda v: np.asarray(v)[4:20]),
    "numpy uint32 view": Export(lambda v: np.frombuffer(v, dtype=np.uint32)),
    "ctypes from_buffer": Export(lambda v: (ctypes.c_uint8 * len(v)).from_buffer(v)),
    "memoryview(v.obj)": Export(lambda v: memoryview(v.obj)),
    "bytes(v)": Export(lambda v: bytes(v), copy=True, writable=False),
    "v.tobytes()": Export(lambda v: v.tobytes(), copy=True, writable=False),
    "bytearray(v)": Export(lambda v: bytearray(v), copy=True),
    # The backing bytearray itself: not a buffer export, but it reaches the whole region.
    "v.obj": Export(lambda v: v.obj),
}


def first_loan(arena: Arena, grow: bool) -> memoryview:
    """The memory a first request exports; in an overflow chunk when ``grow``."""
    if grow:
        arena.alloc(arena.available)  # fill the first chunk: the next alloc takes a new one
    view = arena.alloc(64)
    view[:] = SECRET
    return view


def later_loan_is_clean(arena: Arena, export: object, spec: Export) -> None:
    """Fill a later loan, scribble through the stale export, and check both stay apart."""
    mine = arena.alloc(arena.available)
    assert bytes(mine).count(0) == len(mine), "a later loan started with someone's bytes"
    mine[:] = bytes([LATER]) * len(mine)
    assert bytes([LATER]) not in _read(export), "a stale export sees a later loan's bytes"
    if spec.writable:
        _write(export, STALE)
    assert bytes([STALE]) not in bytes(mine), "a stale export wrote into a later loan"
    if spec.copy and not spec.writable:
        assert _read(export) == SECRET, "a copy changed"


def make_pool(kind: str, level: str) -> ArenaOfPools:
    if kind == "auto":
        return ArenaOfPools(
            arena_size="auto",
            min_arena_size=ARENA,
            max_arena_size=256 << 10,  # arenas start at 64 KiB and may grow
            leak_detection=level,  # type: ignore[arg-type]
        )
    return ArenaOfPools(arena_size=ARENA, pool_size=2, leak_detection=level)  # type: ignore[arg-type]


def check_poison(export: object, spec: Export, level: str) -> None:
    """Right after the scope: a quarantined export reads poison (paranoid) or zeros (off)."""
    if spec.copy:
        assert _read(export)[:8] in (SECRET[:8], SECRET[::2][:8])
        return
    if level == "paranoid":
        assert set(_read(export)) == {POISON}, "paranoid mode must poison quarantined memory"
    else:
        assert set(_read(export)) == {0}, "memory given back must be zeroed"


CASES = [
    pytest.param(name, kind, id=f"{name}-{kind}") for name in EXPORTS for kind in ("fixed", "auto")
]


@pytest.mark.parametrize("level", ["off", "paranoid"])
@pytest.mark.parametrize(("name", "kind"), CASES)
def test_export_outliving_a_sync_scope(name: str, kind: str, level: str) -> None:
    spec = EXPORTS[name]
    aop = make_pool(kind, level)
    with aop.arena() as arena:
        export = spec.make(first_loan(arena, grow=kind == "auto"))
    if name != "v.obj":
        check_poison(export, spec, level)
    for _ in range(3):
        with aop.arena() as later:
            later_loan_is_clean(later, export, spec)
    del export
    assert aop.statistics().active_arenas == 0


@pytest.mark.anyio
@pytest.mark.parametrize("name", [n for n in EXPORTS if n != "v.obj"])  # v.obj: see the sync test
async def test_export_outliving_an_async_scope(anyio_backend: object, name: str) -> None:
    spec = EXPORTS[name]
    aop = make_pool("fixed", "paranoid")
    async with aop.arena() as arena:
        export = spec.make(first_loan(arena, grow=False))
    await anyio.lowlevel.checkpoint()
    for _ in range(3):
        async with aop.arena() as later:
            later_loan_is_clean(later, export, spec)
    del export
    assert aop.statistics().active_arenas == 0


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["slice", "memoryview(v)", "numpy frombuffer"])
async def test_a_child_task_keeps_an_export_past_the_parent_scope(
    anyio_backend: object, name: str
) -> None:
    """The child runs on after the parent's scope ended, writing through what it was given,
    while other tasks take loans: none of them may see its writes, nor it theirs."""
    spec = EXPORTS[name]
    aop = make_pool("fixed", "off")
    scope_over, child_wrote = anyio.Event(), anyio.Event()
    problems: list[str] = []

    async def child(export: object) -> None:
        await scope_over.wait()
        for _ in range(3):
            _write(export, STALE)
            await anyio.lowlevel.checkpoint()
            if bytes([LATER]) in _read(export):
                problems.append("the child's export sees another loan's bytes")
        child_wrote.set()

    async def other_request() -> None:
        await scope_over.wait()
        for _ in range(3):
            async with aop.arena() as later:
                mine = later.alloc(later.available)
                mine[:] = bytes([LATER]) * len(mine)
                await anyio.lowlevel.checkpoint()
                if bytes([STALE]) in bytes(mine):
                    problems.append("the child's writes reached another loan")

    async with anyio.create_task_group() as tg:
        async with aop.arena() as arena:
            tg.start_soon(child, spec.make(first_loan(arena, grow=False)))
        scope_over.set()
        tg.start_soon(other_request)
    assert child_wrote.is_set()
    assert not problems, problems
    assert aop.statistics().active_arenas == 0


@pytest.mark.anyio
async def test_a_child_task_using_the_parents_arena_after_the_scope_fails_loudly(
    anyio_backend: object,
) -> None:
    """Context variables are copied into child tasks: the child still finds the parent's
    arena through current_arena() after the scope ended, and must get ArenaClosed."""
    aop = make_pool("fixed", "off")
    outcome: list[BaseException] = []
    scope_over = anyio.Event()

    async def child() -> None:
        await scope_over.wait()
        try:
            current_arena().alloc(8)
        except ArenaClosed as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        async with aop.arena():
            tg.start_soon(child)
        scope_over.set()
    assert len(outcome) == 1, "a child allocated from an arena that went back"


@pytest.mark.parametrize(
    "name", ["slice", "memoryview(v)", "numpy frombuffer", "ctypes from_buffer"]
)
def test_an_export_from_before_a_reset_is_not_reused_by_the_same_arena(name: str) -> None:
    """``arena.reset()`` inside a request: memory exported before it is replaced, not reused."""
    spec = EXPORTS[name]
    aop = make_pool("fixed", "off")
    with aop.arena() as arena:
        export = spec.make(first_loan(arena, grow=False))
        arena.reset()
        later_loan_is_clean(arena, export, spec)
        arena.reset()
        later_loan_is_clean(arena, export, spec)
    assert aop.statistics().quarantine_events >= 1


def test_a_ctypes_object_made_by_new_outlives_the_scope_safely() -> None:
    aop = make_pool("fixed", "paranoid")
    with aop.arena() as arena:
        obj = arena.new(ctypes.c_uint8 * 64)
        ctypes.memmove(obj, SECRET, 64)
    assert bytes(obj) == bytes([POISON]) * 64, "a ctypes object kept its data after return"
    for _ in range(3):
        with aop.arena() as later:
            mine = later.alloc(later.available)
            mine[:] = bytes([LATER]) * len(mine)
            ctypes.memset(obj, STALE, 64)
            assert bytes([STALE]) not in bytes(mine)
            assert bytes([LATER]) not in bytes(obj)


@pytest.mark.parametrize("name", ["slice", "memoryview(v)", "numpy frombuffer", "v.obj"])
def test_a_buffer_export_outliving_the_buffer(name: str) -> None:
    """The same for pooled buffers: ``buf.view()`` exports kept after ``return_buffer``."""
    spec = EXPORTS[name]
    aop = make_pool("fixed", "off")
    buf = aop.get_buffer(64)
    buf.write(SECRET)
    export = spec.make(buf.view())
    aop.return_buffer(buf)
    for _ in range(3):
        later = aop.get_buffer(64)
        later.write(bytes([LATER]) * 64)
        _write(export, STALE)
        assert bytes([STALE]) not in later.getvalue(), "a stale export wrote into a later buffer"
        assert bytes([LATER]) not in _read(export), "a stale export sees a later buffer"
        aop.return_buffer(later)
    del export
    assert aop.statistics().active_buffers == 0


def test_dropping_the_export_lets_the_region_back_into_service() -> None:
    """Quarantine is not a leak: once the export is gone the region is reused, zeroed."""
    aop = make_pool("fixed", "off")
    with aop.arena() as arena:
        export = memoryview(first_loan(arena, grow=False))
    assert aop.statistics().quarantined == 1
    del export
    for _ in range(4):
        with aop.arena() as later:
            assert bytes(later.alloc(ARENA)) == bytes(ARENA)
    s = aop.statistics()
    assert s.quarantined == 0
    assert s.arenas_created <= 2
