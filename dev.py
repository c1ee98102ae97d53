#!/usr/bin/env python3
"""Set up and run everything with nothing installed but Python 3.11+.

    python3 dev.py run      # create .venv, install, run the main job (example server + load test)
    python3 dev.py test     # create .venv, install, run the whole test suite (compiled core,
                            # then the core and aio tests again on the pure-Python core)
    python3 dev.py lint     # ruff + mypy --strict
    python3 dev.py bench    # the benchmark suite (pass --quick for the CI-sized run)

Extra arguments after the command go to the tool it runs (pytest, the benchmark suite ...).
The virtual environment is (re)installed only when pyproject.toml, setup.py or a compiled
core module changes (the core is compiled with mypyc when a C compiler is available), and
made afresh when a different Python runs this script. It is ``.venv`` unless ``ELECTRON_VENV``
names another directory, which keeps one per interpreter, for instance to compare builds:

    ELECTRON_VENV=.venv-system /usr/bin/python3 dev.py bench --only aio
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = (ROOT / os.environ.get("ELECTRON_VENV", ".venv")).resolve()
STAMP = VENV / ".electron-installed"
MADE_BY = VENV / ".electron-python"  # the interpreter the venv was made from
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"electron needs Python >= 3.11, this is {sys.version.split()[0]}")
    h = hashlib.sha256()
    # _build_info.py is the build's own output: hashing it would reinstall on every run.
    sources = [p for p in sorted(ROOT.glob("electron/_*.py")) if p.name != "_build_info.py"]
    for path in (ROOT / "pyproject.toml", ROOT / "setup.py", *sources):
        h.update(path.read_bytes())
    want = h.hexdigest()
    me = f"{Path(sys.executable).resolve()} {sys.version}"
    if not PY.exists() or not MADE_BY.exists() or MADE_BY.read_text() != me:
        print(f"dev.py: creating {VENV} with {sys.executable}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        MADE_BY.write_text(me)
    if STAMP.exists() and STAMP.read_text() == want:
        return
    print("dev.py: installing electron[dev] into .venv", flush=True)
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(want)


def _run(*args: str) -> int:
    print("+", " ".join(args), flush=True)
    return subprocess.call(args, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "lint", "bench", "setup"}:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    _ensure_venv()
    py = str(PY)
    if cmd == "setup":
        return 0
    if cmd == "test":
        status = _run(py, "-m", "pytest", *rest)
        if status or rest:
            return status
        # The core is compiled (mypyc) when possible: run its tests on the pure-Python build too.
        os.environ["ELECTRON_PURE_PYTHON"] = "1"
        return _run(py, "-m", "pytest", "-q", "tests/core", "tests/aio")
    if cmd == "lint":
        return _run(py, "-m", "ruff", "check", ".") or _run(py, "-m", "mypy", *rest)
    if cmd == "bench":
        return _run(py, "-m", "bench", *rest)
    return _run(py, "-m", "bench.loadtest", "--compare", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
