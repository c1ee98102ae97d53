#!/usr/bin/env python3
"""Set up and run everything with nothing installed but Python 3.11+.

    python3 dev.py run      # create .venv, install, run the main job (example server + load test;
                            # --server asgi: the ASGI example on uvicorn)
    python3 dev.py test     # create .venv, install, run the whole test suite (compiled core,
                            # then the core, aio, asgi and safety tests again on the pure core)
    python3 dev.py lint     # ruff + mypy --strict
    python3 dev.py bench    # the benchmark suite (pass --quick for the CI-sized run)
    python3 dev.py setup    # create .venv and install, nothing else
    python3 dev.py pythons  # the other CPythons >= 3.11 on this machine, one "3.12 PATH" a line
                            # (CI runs the core, aio, aiohttp and asgi tests on each, see .ci/run)

Extra arguments after the command go to the tool it runs (pytest, the benchmark suite ...).
The virtual environment is (re)installed only when pyproject.toml, setup.py or a top-level
module of electron/ changes (the core is compiled with mypyc when a C compiler is available),
and made afresh when a different Python runs this script. It is ``.venv`` unless
``ELECTRON_VENV`` names another directory, which keeps one per interpreter:

    ELECTRON_VENV=.venv-3.12 ~/.pyenv/versions/3.12.1/bin/python3 dev.py test tests/core

``ELECTRON_LOWEST=aiohttp`` installs aiohttp at the lowest version pyproject.toml allows
(``aiohttp>=3.10``: 3.10.0) instead of the newest; give such a venv a name of its own:

    ELECTRON_VENV=.venv-lowest ELECTRON_LOWEST=aiohttp python3 dev.py test tests/aiohttp

``run`` and ``bench`` install wrk, the load generator, when it is missing and this is Linux
with apt-get as root; otherwise they say how to install it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = (ROOT / os.environ.get("ELECTRON_VENV", ".venv")).resolve()
STAMP = VENV / ".electron-installed"  # what the venv was installed from (a hash)
MADE_BY = VENV / ".electron-python"  # the interpreter the venv was made from
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
LOWEST = [name.strip() for name in os.environ.get("ELECTRON_LOWEST", "").split(",") if name.strip()]
COMMANDS = ("run", "test", "lint", "bench", "setup", "pythons")
OLDEST_PYTHON = (3, 11)


def say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


# --- what an install depends on --------------------------------------------------------------


def _generated() -> set[str]:
    """Files the build writes into the source tree: .gitignore names them, one a line."""
    ignore = ROOT / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def install_inputs() -> list[Path]:
    """pyproject.toml, setup.py and every module setup.py may compile: all of electron/*.py
    and electron/*.c (not the subpackages, which are never compiled), less what the build
    itself writes there."""
    generated = _generated()
    modules = [
        path
        for path in sorted((ROOT / "electron").iterdir())
        if path.suffix in {".py", ".c"} and path.relative_to(ROOT).as_posix() not in generated
    ]
    return [ROOT / "pyproject.toml", ROOT / "setup.py", *modules]


def lowest_pins(names: list[str]) -> list[str]:
    """``NAME==FLOOR`` for each name, FLOOR being its ``>=`` bound in pyproject.toml."""
    import tomllib  # Python 3.11+: main() checked that before this runs

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        requirements += group
    pins = []
    for name in names:
        pattern = re.compile(rf"{re.escape(name)}\s*>=\s*([0-9][0-9A-Za-z.]*)", re.IGNORECASE)
        floors = {m.group(1) for r in requirements if (m := pattern.match(r.strip()))}
        if len(floors) != 1:
            found = ", ".join(sorted(floors)) or "none"
            sys.exit(f"dev.py: ELECTRON_LOWEST: want one '{name}>=' bound in pyproject.toml, "
                     f"found {found}")
        pins.append(f"{name}=={floors.pop()}")
    return pins


def install_stamp(pins: list[str]) -> str:
    """Changes whenever an input's name or content, or the pins, change."""
    h = hashlib.sha256()
    for path in install_inputs():
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(" ".join(pins).encode())
    return h.hexdigest()


def _ensure_venv() -> None:
    pins = lowest_pins(LOWEST)
    want = install_stamp(pins)
    me = f"{Path(sys.executable).resolve()} {sys.version}"
    if not PY.exists() or not MADE_BY.exists() or MADE_BY.read_text() != me:
        say(f"creating the virtual environment {VENV} with {sys.executable}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        MADE_BY.write_text(me)
    elif STAMP.exists() and STAMP.read_text() == want:
        return
    elif STAMP.exists():
        say(f"pyproject.toml, setup.py, a module of electron/ or ELECTRON_LOWEST changed since "
            f"{VENV} was set up")
    what = " ".join(["electron[dev]", *pins])
    say(f"installing {what} into {VENV}; pip's output follows, and compiling the core "
        "with mypyc takes about a minute after it says 'Building editable for electron'")
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "install"]
    try:
        subprocess.run([*pip, "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]", *pins], check=True)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"dev.py: installing into {VENV} failed: {' '.join(exc.cmd)} exited with "
                 f"status {exc.returncode} (its output is above)")
    STAMP.write_text(want)
    say(f"{VENV} is ready: {what} installed")


# --- wrk, the load generator --------------------------------------------------------------------

WRK_MISSING = (
    "wrk is not installed (the load test will say so and drive the server with its Python "
    "clients instead); install it with 'sudo apt-get install wrk' (Debian, Ubuntu) or "
    "'brew install wrk' (macOS)"
)


def wrk_install_commands() -> list[list[str]] | None:
    """The commands that install wrk here: [] when it is there, None when we cannot."""
    if shutil.which("wrk"):
        return []
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if sys.platform == "linux" and root and shutil.which("apt-get"):
        return [["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]]
    return None


def _ensure_wrk() -> None:
    commands = wrk_install_commands()
    if commands == []:
        return
    if commands is not None:
        say("installing wrk, the load generator the benchmarks use, with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in commands:
            print("+", " ".join(command), flush=True)
            if subprocess.run(command, env=env).returncode != 0:
                break
        if shutil.which("wrk"):
            return
    say(WRK_MISSING)


# --- the other interpreters ---------------------------------------------------------------------

# Run by each candidate interpreter: what it is and whether it can make a venv and build the core.
PROBE = """\
import json, os, sys, sysconfig
try:
    import ensurepip, venv
    can_venv = True
except ImportError:
    can_venv = False
include = sysconfig.get_paths()["include"]
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": list(sys.version_info[:3]),
    "executable": sys.executable,
    "venv": can_venv,
    "headers": os.path.exists(os.path.join(include, "Python.h")),
}))
"""


def _pyenv_candidates() -> list[Path]:
    """pyenv's CPython 3.x.y installs: ``pyenv versions --bare`` when pyenv is on PATH, else
    what ``$PYENV_ROOT/versions`` (~/.pyenv/versions) holds."""
    pyenv = shutil.which("pyenv")
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True)
        root = Path(out.stdout.strip()) if out.returncode == 0 else root
        listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
        names = listed.stdout.split()
    else:
        names = [p.name for p in (root / "versions").glob("3.*")]
    release = re.compile(r"3\.(\d+)\.\d+")  # not 3.12.1/envs/x, pypy3.10, 3.13.0t, 3.14-dev
    wanted = [n for n in names if (m := release.fullmatch(n)) and int(m[1]) >= OLDEST_PYTHON[1]]
    return [root / "versions" / name / "bin" / "python3" for name in sorted(wanted)]


def _path_candidates() -> list[Path]:
    """python3.11 ... python3.19 on PATH, less pyenv's shims (they run only the pyenv version
    selected, and pyenv's own list has them)."""
    found = []
    for minor in range(OLDEST_PYTHON[1], 20):
        where = shutil.which(f"python3.{minor}")
        if where and Path(where).parent.name != "shims":
            found.append(Path(where))
    return found


def probe(python: Path) -> dict[str, Any] | str:
    """What PROBE says about python, or why it could not say."""
    try:
        done = subprocess.run(
            [str(python), "-c", PROBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"does not run ({exc})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"does not run ({last})"
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def other_pythons(candidates: list[Path]) -> tuple[list[tuple[str, Path]], list[str]]:
    """The CPythons >= 3.11 among candidates, one per minor version (the newest), less this
    interpreter's minor version, which the main legs run; and why each other one was skipped."""
    chosen: dict[tuple[int, int], tuple[list[int], Path]] = {}
    skipped = []
    for python in candidates:
        info = probe(python)
        reason = info if isinstance(info, str) else ""
        if not reason:
            assert isinstance(info, dict)
            if info["implementation"] != "cpython":
                reason = f"is {info['implementation']}, not CPython"
            elif tuple(info["version"][:2]) < OLDEST_PYTHON:
                reason = "is older than 3.11"
            elif not info["venv"]:
                reason = "cannot make a virtual environment (no ensurepip/venv module)"
            elif not info["headers"]:
                reason = "has no C headers (Python.h) to compile the core with"
        if reason:
            skipped.append(f"skipped {python}: {reason}")
            continue
        assert isinstance(info, dict)
        version, minor = info["version"], (info["version"][0], info["version"][1])
        if minor == sys.version_info[:2]:
            continue  # the main legs run this minor version
        if minor not in chosen or version > chosen[minor][0]:
            chosen[minor] = (version, Path(info["executable"]))
    legs = [(f"{major}.{minor}", chosen[major, minor][1]) for major, minor in sorted(chosen)]
    return legs, skipped


# --- commands -----------------------------------------------------------------------------------


def _run(*args: str) -> int:
    print("+", " ".join(args), flush=True)
    return subprocess.call(args, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"electron needs Python >= 3.11, this is {sys.version.split()[0]}")
    cmd, rest = argv[0], argv[1:]
    if cmd == "pythons":
        legs, skipped = other_pythons(_pyenv_candidates() + _path_candidates())
        for reason in skipped:
            print(f"dev.py: {reason}", file=sys.stderr, flush=True)
        for version, python in legs:
            print(version, python, flush=True)
        return 0
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
        pure = ["tests/core", "tests/aio", "tests/asgi", "tests/safety", "-m", "not slow"]
        return _run(py, "-m", "pytest", "-q", *pure)
    if cmd == "lint":
        return _run(py, "-m", "ruff", "check", ".") or _run(py, "-m", "mypy", *rest)
    _ensure_wrk()  # run and bench: the HTTP benchmarks and the load test use it
    if cmd == "bench":
        return _run(py, "-m", "bench", *rest)
    return _run(py, "-m", "bench.loadtest", "--compare", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
