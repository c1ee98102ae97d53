"""Build script: compiles electron's core with mypyc when it can, pure Python otherwise.

The compiled modules are built from the very same sources as the pure-Python ones and pass
the same tests. ``ELECTRON_PURE_PYTHON=1`` at build time skips compiling; at run time it
makes ``import electron`` load the pure-Python core even where a compiled one is installed.
After a successful build, ``electron/_build_info.py`` records a hash of each compiled
source, so that a compiled module older than its source is never used (see
``electron/_loader.py``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Also in electron/_loader.py.
CORE = ("_memory", "_arena", "_text", "_buffer", "_pools", "_aop")
SOURCES = [f"electron/{name}.py" for name in CORE]
# ArenaScope in C for the compiled core (electron/_scope.py, never compiled, is the reference).
C_SCOPE = "electron/_cscope.c"
# Modules compiled by earlier versions: a leftover extension would shadow the source.
NO_LONGER_COMPILED = ("_scope",)


def _pure_requested() -> bool:
    return os.environ.get("ELECTRON_PURE_PYTHON", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """Build the compiled core, or fall back to pure Python when that fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means "use pure Python"
            print(f"electron: compiling the core failed ({exc}); pure Python", file=sys.stderr)
            return
        target = Path("electron") if self.inplace else Path(self.build_lib) / "electron"
        hashes = {
            name: hashlib.sha256(Path(f"electron/{name}.py").read_bytes()).hexdigest()
            for name in CORE
        }
        if any(ext.name == "electron._cscope" for ext in self.extensions):
            hashes["_cscope"] = hashlib.sha256(Path(C_SCOPE).read_bytes()).hexdigest()
        for name in NO_LONGER_COMPILED:
            for leftover in target.glob(f"{name}.*.so"):
                leftover.unlink()
        target.mkdir(parents=True, exist_ok=True)
        (target / "_build_info.py").write_text(
            '"""Written by setup.py: hashes of the sources the compiled core was built from."""\n\n'
            f"SOURCES = {hashes!r}\n"
        )


ext_modules: list[Any] = []
if not _pure_requested():
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("electron: mypyc is not available; pure Python", file=sys.stderr)
    else:
        # The build environment has none of the optional integrations (anyio ...) installed.
        # Errors in modules that are followed but not compiled (electron.aio ...) are not ours
        # to report here: mypy --strict checks them in CI with everything installed.
        flags = ["--ignore-missing-imports", "--no-warn-unused-ignores", "--follow-imports=silent"]
        ext_modules = mypycify([*flags, *SOURCES], opt_level="3")
        if not sysconfig.get_config_var("Py_GIL_DISABLED"):  # it relies on the GIL
            ext_modules.append(Extension("electron._cscope", [C_SCOPE]))

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
