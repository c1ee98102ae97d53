"""Public objects report the module users import them from (``electron.Arena``)."""

from __future__ import annotations

from typing import Any

__all__ = ("fix_module_names",)


def fix_module_names(namespace: dict[str, Any], module: str) -> None:
    """Set ``__module__`` to ``module`` on the objects of ``namespace`` defined in one of
    electron's private modules, as anyio and httpx do; a compiled class that refuses keeps
    its own."""
    for value in list(namespace.values()):
        defined_in = getattr(value, "__module__", None)
        private = isinstance(defined_in, str) and defined_in.startswith("electron.")
        if private and "._" in str(defined_in):
            try:
                value.__module__ = module
            except (AttributeError, TypeError):  # pragma: no cover - depends on the compiler
                pass
