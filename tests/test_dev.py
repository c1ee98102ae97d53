"""What ``dev.py`` decides: when to (re)install, what it says, which interpreters CI tests on,
and when it installs wrk."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEV = Path(__file__).resolve().parent.parent / "dev.py"


def _load(monkeypatch: pytest.MonkeyPatch, where: Path) -> ModuleType:
    monkeypatch.setenv("ELECTRON_VENV", str(where))
    monkeypatch.delenv("ELECTRON_LOWEST", raising=False)
    spec = importlib.util.spec_from_file_location("dev_under_test", DEV)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dev(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    return _load(monkeypatch, tmp_path / "venv-x")


def _fake_venv(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType
) -> tuple[list[Path], list[list[str]]]:
    """Replace venv creation and pip by recorders: (venvs made, commands run)."""
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
    return made, installs


def test_venv_is_made_once_per_interpreter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dev: ModuleType
) -> None:
    assert (tmp_path / "venv-x").resolve() == dev.VENV
    made, installs = _fake_venv(monkeypatch, dev)

    dev._ensure_venv()
    assert made == [dev.VENV]
    assert len(installs) == 2  # pip upgrade, then electron[dev]
    assert installs[1][-1].endswith("[dev]")
    assert dev.MADE_BY.read_text().startswith(str(Path(sys.executable).resolve()))

    dev._ensure_venv()  # same interpreter, same sources: nothing to do
    assert len(made) == 1
    assert len(installs) == 2

    dev.MADE_BY.write_text("/some/other/python 3.11.0")  # made by another interpreter
    dev._ensure_venv()
    assert len(made) == 2  # made afresh ...
    assert len(installs) == 4  # ... and installed again
    assert dev.MADE_BY.read_text().startswith(str(Path(sys.executable).resolve()))


def test_a_changed_stamp_reinstalls_without_remaking_the_venv(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType
) -> None:
    made, installs = _fake_venv(monkeypatch, dev)
    dev._ensure_venv()
    dev.STAMP.write_text("made from other sources")
    dev._ensure_venv()
    assert len(made) == 1
    assert len(installs) == 4


def test_messages_name_the_venv_in_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dev: ModuleType
) -> None:
    _fake_venv(monkeypatch, dev)
    dev._ensure_venv()
    out = capsys.readouterr().out
    assert f"creating the virtual environment {dev.VENV} " in out
    assert f"installing electron[dev] into {dev.VENV};" in out
    assert f"{dev.VENV} is ready" in out
    assert ".venv" not in out.replace(str(dev.VENV), "").replace(sys.executable, "")
    dev._ensure_venv()
    assert capsys.readouterr().out == ""  # nothing to do, nothing said


def _tree(root: Path) -> None:
    """A small checkout: the build files, two compiled modules, a subpackage, a generated file."""
    (root / "electron" / "aio").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "setup.py").write_text("setup()\n")
    (root / ".gitignore").write_text("# built\n*.so\nelectron/_made_by_the_build.py\n")
    (root / "electron" / "_one.py").write_text("ONE = 1\n")
    (root / "electron" / "_two.c").write_text("int two;\n")
    (root / "electron" / "aio" / "_three.py").write_text("THREE = 3\n")
    (root / "electron" / "_made_by_the_build.py").write_text("HASHES = {}\n")


def test_the_stamp_covers_every_top_level_module_and_nothing_the_build_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dev: ModuleType
) -> None:
    _tree(tmp_path)
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    electron = tmp_path / "electron"
    assert [p.relative_to(tmp_path).as_posix() for p in dev.install_inputs()] == [
        "pyproject.toml",
        "setup.py",
        "electron/_one.py",
        "electron/_two.c",
    ]
    first = dev.install_stamp([])

    # What the build writes, the subpackages and compiled files leave it alone.
    (electron / "_made_by_the_build.py").write_text("HASHES = {'_one': '...'}\n")
    (electron / "aio" / "_three.py").write_text("THREE = 4\n")
    (electron / "_one.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    assert dev.install_stamp([]) == first

    changes: list[Callable[[], object]] = [
        lambda: (electron / "_two.c").write_text("int two = 2;\n"),  # a C source edited
        lambda: (electron / "_one.py").rename(electron / "_renamed.py"),  # a module renamed
        lambda: (electron / "_new.py").write_text("NEW = 1\n"),  # a module added
        lambda: (electron / "_two.c").unlink(),  # a module removed
        lambda: (tmp_path / "setup.py").write_text("setup(ext_modules=[])\n"),
    ]
    seen = {first}
    for change in changes:
        change()
        stamp = dev.install_stamp([])
        assert stamp not in seen
        seen.add(stamp)
    assert dev.install_stamp(["aiohttp==3.10"]) not in seen


def test_lowest_pins_come_from_pyproject(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dev: ModuleType
) -> None:
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'x'\ndependencies = ['attrs >= 23.1']\n"
        "[project.optional-dependencies]\n"
        "a = ['anyio>=4.4', 'aiohttp>=3.10']\n"
        "b = ['anyio>=4.4', \"aiohttp>=3.10; sys_platform != 'win32'\", 'electron[a]']\n"
        "c = ['trio>=0.25', 'trio>=0.26', 'numpy']\n"
    )
    assert dev.lowest_pins(["aiohttp", "attrs"]) == ["aiohttp==3.10", "attrs==23.1"]
    assert dev.lowest_pins([]) == []
    for name in ("trio", "numpy", "msgspec"):  # two floors, no floor, not a dependency
        with pytest.raises(SystemExit, match=name):
            dev.lowest_pins([name])


def test_the_lowest_aiohttp_is_installed_with_electron(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ELECTRON_LOWEST", "aiohttp")
    monkeypatch.setenv("ELECTRON_VENV", str(tmp_path / "venv-lowest"))
    spec = importlib.util.spec_from_file_location("dev_lowest", DEV)
    assert spec is not None
    assert spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    _made, installs = _fake_venv(monkeypatch, dev)
    dev._ensure_venv()
    pin = dev.lowest_pins(["aiohttp"])[0]
    assert pin.startswith("aiohttp==3.")
    assert installs[-1][-2:] == [f"{dev.ROOT}[dev]", pin]  # resolved together, in one pip run
    assert f"installing electron[dev] {pin} into {dev.VENV}" in capsys.readouterr().out


def test_a_failed_install_says_which_venv_and_stamps_nothing(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType
) -> None:
    _fake_venv(monkeypatch, dev)

    def failing_pip(cmd: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(SystemExit, match=f"installing into {dev.VENV} failed"):
        dev._ensure_venv()
    assert not dev.STAMP.exists()  # the next run tries again


def _info(version: tuple[int, int, int], path: str, **changes: Any) -> dict[str, Any]:
    info = {"implementation": "cpython", "version": list(version), "executable": path,
            "venv": True, "headers": True}
    return {**info, **changes}


def test_other_pythons_one_per_minor_version_with_reasons_for_the_rest(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType
) -> None:
    here = (sys.version_info[0], sys.version_info[1], 0)
    answers: dict[str, dict[str, Any] | str] = {
        "/p/this": _info(here, "/real/this"),  # this minor version: the main legs run it
        "/p/81.1": _info((81, 1, 1), "/real/81.1.1"),
        "/p/81.3": _info((81, 1, 3), "/real/81.1.3"),  # the newest 81.1 wins
        "/p/81.2": _info((81, 1, 2), "/real/81.1.2"),
        "/p/80": _info((80, 0, 0), "/real/80"),
        "/p/noheaders": _info((82, 0, 0), "/real/82", headers=False),
        "/p/novenv": _info((83, 0, 0), "/real/83", venv=False),
        "/p/pypy": _info((84, 0, 0), "/real/84", implementation="pypy"),
        "/p/old": _info((3, 10, 13), "/real/3.10"),
        "/p/broken": "does not run (boom)",
    }
    monkeypatch.setattr(dev, "probe", lambda python: answers[str(python)])
    legs, skipped = dev.other_pythons([Path(p) for p in answers])
    assert legs == [("80.0", Path("/real/80")), ("81.1", Path("/real/81.1.3"))]
    assert skipped == [
        "skipped /p/noheaders: has no C headers (Python.h) to compile the core with",
        "skipped /p/novenv: cannot make a virtual environment (no ensurepip/venv module)",
        "skipped /p/pypy: is pypy, not CPython",
        "skipped /p/old: is older than 3.11",
        "skipped /p/broken: does not run (boom)",
    ]


def test_pythons_command_prints_one_leg_a_line_and_reasons_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dev: ModuleType
) -> None:
    monkeypatch.setattr(dev, "_pyenv_candidates", lambda: [Path("/a")])
    monkeypatch.setattr(dev, "_path_candidates", lambda: [Path("/b")])
    answers = {"/a": _info((81, 2, 0), "/real/a"), "/b": "does not run (boom)"}
    monkeypatch.setattr(dev, "probe", lambda python: answers[str(python)])
    monkeypatch.setattr(dev, "_ensure_venv", lambda: pytest.fail("pythons needs no venv"))
    assert dev.main(["pythons"]) == 0
    out, err = capsys.readouterr()
    assert out == "81.2 /real/a\n"
    assert err == "dev.py: skipped /b: does not run (boom)\n"


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def test_pyenv_candidates_from_pyenv_or_its_versions_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dev: ModuleType
) -> None:
    root = tmp_path / "pyenv-root"
    names = ["2.7.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0t", "3.14-dev", "pypy3.10-7.3.15"]
    for name in names:
        (root / "versions" / name / "bin").mkdir(parents=True)
    (root / "versions" / "3.12.1" / "envs" / "tool").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no pyenv: its versions folder
    expected = [root / "versions" / v / "bin" / "python3" for v in ("3.11.7", "3.12.1")]
    assert dev._pyenv_candidates() == expected

    # pyenv on PATH: what it lists, under the root it names.
    listed = [*names, "3.12.1/envs/tool", "3.13.0"]
    _executable(
        tmp_path / "bin" / "pyenv",
        "#!/bin/sh\n"
        f'if [ "$1" = root ]; then echo {root}; exit 0; fi\n'
        f'if [ "$1 $2" = "versions --bare" ]; then printf "%s\\n" {" ".join(listed)}; fi\n',
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "elsewhere"))
    expected.append(root / "versions" / "3.13.0" / "bin" / "python3")
    assert dev._pyenv_candidates() == expected


def test_path_candidates_leave_out_pyenv_shims(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dev: ModuleType
) -> None:
    for where in ("bin/python3.12", "bin/python3.10", "shims/python3.13", "bin/python3.99"):
        _executable(tmp_path / where, "#!/bin/sh\n")
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path / "bin"), str(tmp_path / "shims")]))
    assert dev._path_candidates() == [tmp_path / "bin" / "python3.12"]


def test_probe_reads_a_real_interpreter(tmp_path: Path, dev: ModuleType) -> None:
    info = dev.probe(Path(sys.executable))
    assert isinstance(info, dict)
    assert info["implementation"] == sys.implementation.name
    assert info["version"] == list(sys.version_info[:3])
    assert info["venv"] is True
    missing = dev.probe(tmp_path / "no-such-python")
    assert isinstance(missing, str)
    assert missing.startswith("does not run")


def test_wrk_is_installed_only_by_root_with_apt_on_linux(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType
) -> None:
    tools = {"apt-get": "/usr/bin/apt-get"}
    monkeypatch.setattr(shutil, "which", tools.get)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    install = [["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]]
    assert dev.wrk_install_commands() == install
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    assert dev.wrk_install_commands() is None  # not root
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    del tools["apt-get"]
    assert dev.wrk_install_commands() is None  # no apt-get
    tools["apt-get"] = "/usr/bin/apt-get"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert dev.wrk_install_commands() is None
    tools["wrk"] = "/usr/local/bin/wrk"
    assert dev.wrk_install_commands() == []  # there already


def test_without_wrk_one_line_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dev: ModuleType
) -> None:
    monkeypatch.setattr(dev, "wrk_install_commands", lambda: None)
    dev._ensure_wrk()
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "load test" in out
    assert "apt-get install wrk" in out


@pytest.mark.parametrize(
    ("argv", "wants_wrk"),
    [(["test"], False), (["test", "tests/core"], False), (["lint"], False), (["setup"], False),
     (["run"], True), (["bench", "--quick"], True)],
)
def test_only_run_and_bench_install_wrk(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType, argv: list[str], wants_wrk: bool
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(dev, "_ensure_venv", lambda: calls.append("venv"))
    monkeypatch.setattr(dev, "_ensure_wrk", lambda: calls.append("wrk"))

    def fake_run(*args: str) -> int:
        calls.append("run")
        return 0

    monkeypatch.setattr(dev, "_run", fake_run)
    monkeypatch.delenv("ELECTRON_PURE_PYTHON", raising=False)
    dev.main(argv)
    monkeypatch.delenv("ELECTRON_PURE_PYTHON", raising=False)  # `test` sets it for its 2nd run
    assert calls[0] == "venv"
    assert ("wrk" in calls) == wants_wrk
    if wants_wrk:
        assert calls.index("wrk") < calls.index("run")


def test_run_passes_its_arguments_to_the_load_test(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType
) -> None:
    """``dev.py run --server asgi`` is the main job against the ASGI example."""
    runs: list[tuple[str, ...]] = []
    monkeypatch.setattr(dev, "_ensure_venv", lambda: None)
    monkeypatch.setattr(dev, "_ensure_wrk", lambda: None)

    def fake_run(*args: str) -> int:
        runs.append(args)
        return 0

    monkeypatch.setattr(dev, "_run", fake_run)
    assert dev.main(["run", "--server", "asgi", "--quick"]) == 0
    [args] = runs
    assert args[1:] == ("-m", "bench.loadtest", "--compare", "--server", "asgi", "--quick")
