"""Chooses the core at import time: compiled (mypyc) where built, else pure Python.

The compiled modules sit beside their sources, built from the very same code, and win the
import on their own. ``ELECTRON_PURE_PYTHON=1`` loads the sources instead (to compare, or
to debug); nothing else differs between the two.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ("CORE_MODULES", "select_core")

#: The modules setup.py compiles, in an order where each imports only earlier ones.
CORE_MODULES = (
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


def select_core(package: str, here: Path) -> bool:
    """Import ``package``'s core modules; return True when they are the compiled ones."""
    if os.environ.get("ELECTRON_PURE_PYTHON", "") in ("", "0"):
        module = importlib.import_module(f"{package}._arena")
        return not (module.__file__ or "").endswith(".py")
    for name in CORE_MODULES:
        qualified = f"{package}.{name}"
        spec = importlib.util.spec_from_file_location(qualified, here / f"{name}.py")
        if spec is None or spec.loader is None:  # pragma: no cover - sources always ship
            raise ImportError(f"cannot load {qualified} from source")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    return False
