"""The public API: ``__all__`` is a tuple naming each export once, defined and documented."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

MODULES = [
    "electron",
    "electron.aio",
    "electron.aio.aiohttp",
    "electron.asgi",
    "electron.metrics",
    "electron.testing",
]


def _module(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # electron.aio needs the optional anyio
        pytest.skip(f"{name} is not importable here: {exc}")


def _exports(name: str) -> list[tuple[str, str]]:
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return [(name, "<unimportable>")]
    return [(name, attr) for attr in getattr(mod, "__all__", ())]


@pytest.mark.parametrize("modname", MODULES)
def test_all_is_a_tuple_of_unique_strings(modname: str) -> None:
    mod = _module(modname)
    assert isinstance(mod.__all__, tuple)
    assert all(isinstance(n, str) for n in mod.__all__)
    dupes = sorted({n for n in mod.__all__ if mod.__all__.count(n) > 1})
    assert dupes == [], f"exported more than once: {dupes}"


@pytest.mark.parametrize("modname", MODULES)
def test_star_import_gives_exactly_all(modname: str) -> None:
    mod = _module(modname)
    namespace: dict[str, object] = {}
    exec(f"from {modname} import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(mod.__all__)


@pytest.mark.parametrize("modname", MODULES)
def test_every_public_class_and_function_is_in_all(modname: str) -> None:
    mod = _module(modname)
    missing = [
        name
        for name, obj in vars(mod).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("electron")
        and name not in mod.__all__
    ]
    assert missing == [], f"public but not in __all__: {missing}"


EXPORTS = [e for m in MODULES for e in _exports(m)]


@pytest.mark.parametrize(("modname", "attr"), EXPORTS, ids=[f"{m}.{a}" for m, a in EXPORTS])
def test_export_is_defined_and_documented(modname: str, attr: str) -> None:
    mod = _module(modname)
    assert hasattr(mod, attr), f"{modname}.{attr} is in __all__ but not defined"
    obj = getattr(mod, attr)
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj):
        assert obj.__module__.startswith("electron"), f"{attr} is not electron's own"
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        if not doc and inspect.isclass(obj):
            # mypyc keeps no docstrings (of classes or methods): read the compiled class's.
            (node,) = _class_definitions(obj.__name__, modname)
            doc = ast.get_docstring(node)
        assert doc, f"{modname}.{attr} has no docstring of its own"
        assert doc.strip(), f"{modname}.{attr} has an empty docstring"
        assert len(doc.strip().splitlines()[0]) > 10, f"{modname}.{attr}: docstring too terse"
    else:
        # A constant is documented by a ``#:`` comment right above its definition.
        lines = _source_lines(_defining_module(mod, attr))
        defs = [i for i, line in enumerate(lines) if _defines(line, attr)]
        assert defs, f"cannot find the definition of {attr}"
        assert lines[defs[0] - 1].startswith("#:"), f"{attr} needs a '#:' doc comment"


def _source_path(mod: types.ModuleType) -> Path:
    """The ``.py`` source of ``mod``, also when the module itself is compiled (mypyc)."""
    file = Path(str(mod.__file__))
    if file.suffix == ".py":
        return file
    return file.parent / (mod.__name__.rsplit(".", 1)[-1] + ".py")


def _source_lines(mod: types.ModuleType) -> list[str]:
    return _source_path(mod).read_text(encoding="utf-8").splitlines()


def _defines(line: str, attr: str) -> bool:
    """True for a module-level ``attr = ...`` or ``attr: T = ...`` line."""
    return re.match(rf"{re.escape(attr)}\s*(:[^=]*)?=", line) is not None


def _defining_module(mod: types.ModuleType, attr: str) -> types.ModuleType:
    for name, candidate in sorted(sys.modules.items()):
        if (
            name.startswith(mod.__name__ + ".")
            and candidate is not None
            and getattr(candidate, "__file__", None)
            and attr in vars(candidate)
            and any(_defines(line, attr) for line in _source_lines(candidate))
        ):
            return candidate
    return mod


@pytest.mark.parametrize("modname", MODULES)
def test_module_is_documented(modname: str) -> None:
    mod = _module(modname)
    assert mod.__doc__
    assert mod.__doc__.strip()


def _class_definitions(name: str, exporter: str = "electron") -> list[ast.ClassDef]:
    """The ``class name`` statements at the top level of electron's source files; of several
    (``PooledResponse`` of aiohttp and of ASGI), those under the exporting package."""
    root = Path(importlib.import_module("electron").__file__ or "").parent
    package = Path(importlib.import_module(exporter).__file__ or "").parent
    found = [
        (path, node)
        for path in sorted(root.rglob("*.py"))
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.ClassDef) and node.name == name
    ]
    if len(found) > 1:
        found = [(path, node) for path, node in found if path.is_relative_to(package)]
    return [node for _, node in found]


@pytest.mark.parametrize("modname", MODULES)
def test_public_objects_report_the_module_they_are_exported_from(modname: str) -> None:
    mod = _module(modname)
    elsewhere = {
        name: getattr(mod, name).__module__
        for name in mod.__all__
        if (inspect.isclass(getattr(mod, name)) or inspect.isfunction(getattr(mod, name)))
        and "._" in getattr(mod, name).__module__
    }
    assert elsewhere == {}


@pytest.mark.parametrize("modname", MODULES)
def test_public_methods_of_exported_classes_are_documented(modname: str) -> None:
    # Read from the source: a mypyc-compiled method has no runtime docstring to inspect.
    mod = _module(modname)
    undocumented = []
    for name in mod.__all__:
        cls = getattr(mod, name)
        if not inspect.isclass(cls) or issubclass(cls, BaseException):
            continue
        (node,) = _class_definitions(cls.__name__, modname)
        undocumented += [
            f"{modname}.{name}.{item.name}"
            for item in node.body
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            and not item.name.startswith("_")
            and not (ast.get_docstring(item) or "").strip()
        ]
    assert undocumented == []


def test_import_electron_needs_no_third_party_package() -> None:
    code = (
        "import sys, electron\n"
        "third = {m.split('.')[0] for m in sys.modules} & "
        "{'anyio', 'aiohttp', 'numpy', 'uvloop', 'trio', 'sniffio', 'rich', 'prometheus_client'}\n"
        "assert not third, third\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
