"""``python -m electron`` says which electron, which core and which integrations run."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import electron

ROOT = Path(electron.__file__).resolve().parent.parent


def _run(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ELECTRON_PURE_PYTHON"}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "electron"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not done.stderr, done.stderr
    return done.stdout


def _compiled_installed() -> bool:
    here = Path(electron.__file__).parent
    return any(
        (here / f"_arena{suffix}").exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def _line(out: str, prefix: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(prefix))


def test_reports_version_interpreter_and_integrations() -> None:
    out = _run()
    assert out.startswith(f"electron {electron.__version__} (")
    python = _line(out, "python:")
    assert sys.version.split()[0] in python
    assert sys.executable in python
    for name in ("anyio", "aiohttp", "uvloop", "trio", "prometheus_client", "msgspec"):
        assert f"  {name} " in out


def test_reports_the_compiled_core_when_it_is_installed() -> None:
    core = _line(_run(), "core:")
    if _compiled_installed():
        assert core.startswith("core:     compiled (mypyc)")
    else:
        assert "pure Python: no compiled modules found" in core


def test_reports_the_pure_core_when_asked_for() -> None:
    core = _line(_run(ELECTRON_PURE_PYTHON="1"), "core:")
    assert core.startswith("core:     pure Python: ELECTRON_PURE_PYTHON=1 is set")
    expected = "installed, not loaded" if _compiled_installed() else "not installed either"
    assert expected in core


def test_integration_versions_match_the_installed_ones() -> None:
    import importlib.metadata

    out = _run()
    version = importlib.metadata.version("anyio")  # a dependency of the test environment
    assert f"anyio{' ' * 14}{version}" in out
