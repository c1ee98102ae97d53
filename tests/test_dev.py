"""``dev.py`` keeps one virtual environment per interpreter and rebuilds it only when needed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEV = Path(__file__).resolve().parent.parent / "dev.py"


def _load(monkeypatch: pytest.MonkeyPatch, where: Path) -> ModuleType:
    monkeypatch.setenv("ELECTRON_VENV", str(where))
    spec = importlib.util.spec_from_file_location("dev_under_test", DEV)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_venv_is_made_once_per_interpreter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    where = tmp_path / "venv-x"
    dev = _load(monkeypatch, where)
    assert where.resolve() == dev.VENV
    made: list[Path] = []
    installs: list[list[str]] = []

    class FakeBuilder:
        def __init__(self, **kwargs: Any) -> None:
            assert kwargs == {"with_pip": True, "clear": True}

        def create(self, path: Path) -> None:
            made.append(Path(path))
            dev.PY.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.glob(".electron-*"):  # clear=True empties the directory
                stale.unlink()
            dev.PY.write_text("")

    def fake_run(cmd: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        installs.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(venv, "EnvBuilder", FakeBuilder)
    monkeypatch.setattr(subprocess, "run", fake_run)

    dev._ensure_venv()
    assert made == [where.resolve()]
    assert len(installs) == 2  # pip upgrade, then electron[dev]
    assert dev.MADE_BY.read_text().startswith(str(Path(sys.executable).resolve()))

    dev._ensure_venv()  # same interpreter, same sources: nothing to do
    assert len(made) == 1
    assert len(installs) == 2

    dev.MADE_BY.write_text("/some/other/python 3.11.0")  # made by another interpreter
    dev._ensure_venv()
    assert len(made) == 2  # made afresh ...
    assert len(installs) == 4  # ... and installed again
    assert dev.MADE_BY.read_text().startswith(str(Path(sys.executable).resolve()))
