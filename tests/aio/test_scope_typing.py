"""What type checkers make of a scope: ``mypy --strict`` on code that uses one.

The scope is its own ``__aenter__`` and ``__aexit__`` (descriptors, not methods), so its types
come from the descriptors' ``__get__``: these tests pin that ordinary use is accepted with the
arena's type inferred, and that calling either with the other's arguments is rejected.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy (the dev extra) is not installed"
)

GOOD = """
    import contextlib
    from typing import assert_type

    import electron
    from electron.aio import ArenaScope


    async def use(aop: electron.ArenaOfPools) -> None:
        async with aop.arena() as arena:
            assert_type(arena, electron.Arena)
        async with aop.arena(timeout=1.0) as arena:
            assert_type(arena, electron.Arena)
        with aop.arena() as arena:
            assert_type(arena, electron.Arena)
        async with contextlib.AsyncExitStack() as stack:
            arena = await stack.enter_async_context(aop.arena())
            assert_type(arena, electron.Arena)
        manager: contextlib.AbstractAsyncContextManager[electron.Arena] = aop.arena()
        scope = aop.arena()
        arena = await scope.__aenter__()
        assert_type(arena, electron.Arena)
        await scope.__aexit__(None, None, None)
        await ArenaScope.__aenter__(aop.arena())
"""

BAD = """
    import electron


    async def misuse(aop: electron.ArenaOfPools) -> None:
        scope = aop.arena()
        await scope.__aexit__()
        await scope.__aenter__(None, None, None)
"""


def _mypy(tmp_path: Path, code: str) -> tuple[str, int]:
    # In a process of its own: mypy's state would stay alive in this one and make every later
    # test's garbage collection (the leak check) slower.
    path = tmp_path / "user_code.py"
    path.write_text(textwrap.dedent(code))
    cache = str(tmp_path / "cache")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            cache,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.stdout + proc.stderr, proc.returncode


def test_ordinary_use_type_checks_with_the_arena_inferred(tmp_path: Path) -> None:
    output, status = _mypy(tmp_path, GOOD)
    assert status == 0, output


def test_calling_aenter_or_aexit_with_the_others_arguments_is_rejected(tmp_path: Path) -> None:
    output, status = _mypy(tmp_path, BAD)
    assert status == 1, output
    assert 'Too few arguments for "__call__" of "_BoundExit"' in output
    assert 'Too many arguments for "__call__" of "_BoundEnter"' in output
