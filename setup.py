"""Build script: compiles electron's core with mypyc when it can, pure Python otherwise.

The compiled modules are built from the very same sources as the pure-Python ones and pass
the same tests (``electron/_loader.py`` lists them). ``ELECTRON_PURE_PYTHON=1`` at build
time skips compiling; at run time it makes ``import electron`` load the pure-Python core
even where a compiled one is installed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Also in electron/_loader.py (CORE_MODULES): setup.py cannot import the package it builds.
CORE = (
    "_checks",
    "_regions",
    "_lock",
    "_handle",
    "_arena",
    "_text",
    "_buffer",
    "_buffer_pool",
    "_arena_of_pools",
)


class OptionalBuildExt(build_ext):
    """Build the compiled core, or fall back to pure Python (with a warning) when that fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means "use pure Python"
            print(
                f"WARNING: electron: compiling the core failed ({exc}); installing the "
                "pure-Python core (same behaviour, slower: `python -m electron` says which)",
                file=sys.stderr,
            )


ext_modules: list[Any] = []
if os.environ.get("ELECTRON_PURE_PYTHON", "") in ("", "0"):
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("WARNING: electron: mypyc is not available; pure-Python core", file=sys.stderr)
    else:
        # The build environment has none of the optional integrations (anyio ...) installed.
        # Errors in modules that are followed but not compiled (electron.aio ...) are not ours
        # to report here: mypy --strict checks them in CI with everything installed.
        flags = ["--ignore-missing-imports", "--no-warn-unused-ignores", "--follow-imports=silent"]
        ext_modules = mypycify([*flags, *(f"electron/{name}.py" for name in CORE)], opt_level="3")

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
