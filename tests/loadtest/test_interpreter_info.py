"""The benchmarks say which CPython build made their figures (absolute ones depend on it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench._harness import (
    _libpython,
    describe_interpreter,
    interpreter_info,
    interpreter_line,
    machine_info,
)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd to cross-check")
def test_libpython_agrees_with_ldd() -> None:
    lib = _libpython()
    ldd = subprocess.run(["ldd", sys.executable], capture_output=True, text=True, check=True)
    linked = [line for line in ldd.stdout.splitlines() if "libpython" in line]
    if lib == "static":
        assert linked == []
    else:
        assert lib is not None
        assert Path(lib).exists()
        assert "libpython" in Path(lib).name
        assert linked, ldd.stdout


def test_interpreter_is_recorded_with_every_benchmark() -> None:
    info = interpreter_info()
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    assert info["executable"] == str(base)
    assert base.is_file()
    assert set(info["configure_optimisations"]) <= {"--enable-optimizations", "--with-lto"}
    assert machine_info()["interpreter"] == info
    line = interpreter_line()
    assert sys.version.split()[0] in line
    assert info["executable"] in line


def test_reports_name_the_interpreter() -> None:
    from bench.__main__ import render
    from bench._lt._report import _machine

    machine = {**machine_info(), "versions": {}}
    report = {"command": "python -m bench", "quick": True, "machine": machine, "parts": [],
              "started": "a", "finished": "b", "seconds": 1.0, "passed": True}
    want = f"interpreter: {describe_interpreter(interpreter_info())}"
    assert want in render(report)
    assert want.capitalize() in "\n".join(_machine(report))
    older = {**report, "machine": {k: v for k, v in machine.items() if k != "interpreter"}}
    assert "- interpreter: not recorded" in render(older)
