"""The core switch: ``ELECTRON_PURE_PYTHON=1`` loads the sources, whatever is compiled."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from electron._loader import CORE_MODULES

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import electron, sys; "
    "print(electron.COMPILED, all(sys.modules['electron.' + n].__file__.endswith('.py') "
    "for n in electron._loader.CORE_MODULES))"
)


def _probe(pure: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ELECTRON_PURE_PYTHON"}
    if pure is not None:
        env["ELECTRON_PURE_PYTHON"] = pure
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_switch_loads_every_core_module_from_its_source() -> None:
    assert _probe("1") == "False True"


def test_without_the_switch_compiled_is_true_exactly_when_the_modules_are_compiled() -> None:
    compiled, from_sources = _probe(None).split()
    assert compiled != from_sources  # COMPILED says True where no module came from a .py
    assert _probe("0").split() == [compiled, from_sources]


def test_setup_compiles_exactly_the_modules_the_loader_knows() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    core = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "CORE" for t in node.targets)
    )
    assert ast.literal_eval(core) == CORE_MODULES
