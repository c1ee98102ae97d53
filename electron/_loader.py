"""Chooses between the compiled (mypyc) core and the pure-Python one at import time.

The compiled modules sit beside their sources and normally win the import. The pure-Python
ones are loaded instead when ``ELECTRON_PURE_PYTHON=1`` is set, when there is no record of
a compiled build, or when a source changed after the build (a stale compiled module must
never run code that differs from its source).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ("CORE_MODULES", "restore_class_docs", "select_core")

#: The modules compiled by setup.py, in an order where each imports only earlier ones.
CORE_MODULES = ("_memory", "_arena", "_text", "_buffer", "_pools", "_aop")
#: Built with them (setup.py): ArenaScope in C, used only with the compiled core.
C_SOURCES = ("_cscope",)


def _build_hashes(package: str) -> dict[str, str] | None:
    try:
        info = importlib.import_module(f"{package}._build_info")
    except ImportError:
        return None
    sources: dict[str, str] = info.SOURCES
    return sources


def _digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def _compiled_is_current(package: str, here: Path) -> bool:
    hashes = _build_hashes(package)
    if hashes is None:
        return False
    for name in CORE_MODULES:
        source = here / f"{name}.py"
        if not source.exists():  # an installed wheel may ship only the compiled module
            continue
        if hashes.get(name) != _digest(source):
            return False
    for name in C_SOURCES:  # not built for free-threaded interpreters: no hash then
        source = here / f"{name}.c"
        built = hashes.get(name)
        if built is not None and source.exists() and built != _digest(source):
            return False
    return True


def select_core(package: str, here: Path) -> bool:
    """Make ``package``'s core modules importable; return True when they are compiled."""
    pure = os.environ.get("ELECTRON_PURE_PYTHON", "") not in ("", "0")
    if not pure and _compiled_is_current(package, here):
        return True
    for name in CORE_MODULES:
        qualified = f"{package}.{name}"
        spec = importlib.util.spec_from_file_location(qualified, here / f"{name}.py")
        if spec is None or spec.loader is None:  # pragma: no cover - sources always ship
            raise ImportError(f"cannot load {qualified} from source")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    return False


def restore_class_docs(package: str, here: Path) -> None:
    """Give compiled classes the docstrings mypyc leaves out, read from their sources."""
    for name in CORE_MODULES:
        source = here / f"{name}.py"
        module = sys.modules.get(f"{package}.{name}")
        if module is None or not source.exists():
            continue
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.ClassDef):
                cls = getattr(module, node.name, None)
                doc = ast.get_docstring(node)
                if cls is not None and doc and not cls.__doc__:
                    try:
                        cls.__doc__ = doc
                    except (AttributeError, TypeError):  # pragma: no cover - immutable type
                        pass
