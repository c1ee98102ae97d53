"""``python -m electron``: which electron runs here, on which core, with which integrations.

Prints the version and where the package was imported from, which core runs (compiled by
mypyc or pure Python, and why), the interpreter, and the optional integrations that import
(anyio, aiohttp, uvloop, trio, prometheus_client, msgspec) with their versions. Paste its
output into a bug report. It exits 0 whenever electron itself imports.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

import electron
from electron._loader import CORE_MODULES

__all__ = ("core_description", "integrations", "main", "report")

#: (import name, distribution name, extra that installs it)
OPTIONAL = (
    ("anyio", "anyio", "aio"),
    ("aiohttp", "aiohttp", "aiohttp"),
    ("uvloop", "uvloop", "uvloop"),
    ("trio", "trio", ""),
    ("prometheus_client", "prometheus-client", "metrics"),
    ("msgspec", "msgspec", ""),
)


def _compiled_files(here: Path) -> list[Path]:
    """The compiled core modules installed beside the sources (for this interpreter)."""
    found = []
    for name in CORE_MODULES:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = here / f"{name}{suffix}"
            if path.exists():
                found.append(path)
                break
    return found


def core_description() -> str:
    """One line: which core runs, and why."""
    here = Path(electron.__file__).parent
    compiled = _compiled_files(here)
    if electron.COMPILED:
        return f"compiled (mypyc): {len(compiled)} of {len(CORE_MODULES)} core modules built"
    switch = os.environ.get("ELECTRON_PURE_PYTHON", "")
    if switch not in ("", "0"):
        installed = "installed, not loaded" if compiled else "not installed either"
        return f"pure Python: ELECTRON_PURE_PYTHON={switch} is set (compiled modules: {installed})"
    return (
        "pure Python: no compiled modules found for this interpreter (built without a C "
        "compiler, or with ELECTRON_PURE_PYTHON=1); same behaviour, slower"
    )


def integrations() -> list[tuple[str, str]]:
    """(name, status) for each optional integration: its version, or why it is missing."""
    rows = []
    for module, dist, extra in OPTIONAL:
        hint = f" (extra: {extra})" if extra else ""
        try:
            importlib.import_module(module)
        except ImportError:
            rows.append((module, f"not installed{hint}"))
            continue
        except Exception as exc:  # installed but broken: say how
            rows.append((module, f"installed, fails to import: {type(exc).__name__}: {exc}"))
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "version unknown"
        rows.append((module, version))
    return rows


def report() -> str:
    """The whole report, as printed."""
    gil = getattr(sys, "_is_gil_enabled", None)
    threading = "" if gil is None or gil() else ", free-threaded"
    lines = [
        f"electron {electron.__version__} ({Path(electron.__file__).parent})",
        f"core:     {core_description()}",
        f"python:   {platform.python_implementation()} {platform.python_version()}"
        f"{threading} ({sys.executable})",
        f"platform: {platform.platform()}",
        "optional integrations:",
    ]
    lines.extend(f"  {name:<18} {status}" for name, status in integrations())
    return "\n".join(lines)


def main() -> int:
    """Print :func:`report`; return the exit status."""
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
