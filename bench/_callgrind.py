"""Running a ``python -m`` module under valgrind's callgrind, and reading what it counted."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ("command", "environment", "total")

_TOTALS = re.compile(r"^(?:totals|summary):\s+(\d+)", re.MULTILINE)


def command(out: Path, *module_args: str) -> list[str]:
    """``valgrind`` running ``python -m *module_args``, writing its counts to ``out``."""
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        *module_args,
    ]


def environment() -> dict[str, str]:
    """This process's environment with a fixed hash seed: dicts and sets are laid out alike
    in every run (string hashes decide where keys go)."""
    return dict(os.environ, PYTHONHASHSEED="0")


def total(dumps: Iterable[str], what: str) -> int:
    """The user-space instructions callgrind counted, read from its output files' text."""
    totals = [int(m) for text in dumps for m in _TOTALS.findall(text)]
    if not totals:
        raise RuntimeError(f"{what}: callgrind wrote no totals")
    return max(totals)
