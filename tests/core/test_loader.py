"""The loader's staleness check: a compiled module whose source changed is never used."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from electron._loader import C_SOURCES, CORE_MODULES, _compiled_is_current


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fake_build(root: Path, name: str, *, with_c: bool) -> Path:
    """A package with the core's sources and the build record setup.py writes."""
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    hashes = {}
    for module in CORE_MODULES:
        (pkg / f"{module}.py").write_text(f"# {module}\n")
        hashes[module] = _digest(pkg / f"{module}.py")
    for module in C_SOURCES:
        (pkg / f"{module}.c").write_text(f"/* {module} */\n")
        if with_c:
            hashes[module] = _digest(pkg / f"{module}.c")
    (pkg / "_build_info.py").write_text(f"SOURCES = {hashes!r}\n")
    return pkg


@pytest.mark.parametrize("changed", [*CORE_MODULES, *C_SOURCES])
def test_a_source_changed_after_the_build_makes_it_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changed: str
) -> None:
    name = f"fakecore_{changed.strip('_')}"
    pkg = _fake_build(tmp_path, name, with_c=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    assert _compiled_is_current(name, pkg)
    suffix = ".c" if changed in C_SOURCES else ".py"
    (pkg / f"{changed}{suffix}").write_text("# changed after the build\n")
    assert not _compiled_is_current(name, pkg)


def test_a_build_without_the_c_scope_is_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Free-threaded interpreters build no C scope: no hash is recorded for its source.
    pkg = _fake_build(tmp_path, "fakecore_noc", with_c=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _compiled_is_current("fakecore_noc", pkg)
