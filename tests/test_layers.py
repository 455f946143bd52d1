"""The layer rule (docs/architecture.md), checked on the import statements of every module.

Every `import`/`from ... import` anywhere in a module (top level or inside a function: a lazy
import is still a dependency) and every `importlib.import_module("literal")` is resolved to the
top-level package it names (relative imports to their own package) and checked against what the
module's package may import.
"""
from __future__ import annotations

import ast
import os
from typing import Iterator, List, Optional, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = {"taskdata", "augment", "builders", "distill_train", "pipelines", "autodistiller",
           "distiller"}
# package -> the project packages its modules must not import
FORBIDDEN = {
    "taskdata": PROJECT - {"taskdata"},
    "augment": {"distill_train", "pipelines", "autodistiller", "distiller"},
    "builders": {"distill_train", "pipelines", "autodistiller", "distiller"},
    "distill_train": {"pipelines", "autodistiller", "distiller"},
    "pipelines": {"distill_train", "autodistiller", "distiller"},
    "autodistiller": {"distiller"},
    "distiller": set(),
}


def imported_packages(source: str, package: str) -> Iterator[Tuple[int, str]]:
    """(line, top-level package) of every import in `source`, a module of `package` (a dotted
    name: relative imports resolve against it)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within the module's own top-level package
                yield node.lineno, package.split(".")[0]
            else:
                yield node.lineno, (node.module or "").split(".")[0]
        elif isinstance(node, ast.Call) and _import_module_literal(node) is not None:
            yield node.lineno, _import_module_literal(node).split(".")[0]


def _import_module_literal(node: ast.Call) -> Optional[str]:
    """The absolute module name of `importlib.import_module("name")`, else None."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "import_module" or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
            and not arg.value.startswith("."):
        return arg.value
    return None


def package_modules(top: str) -> List[Tuple[str, str]]:
    """(path, dotted package) of every .py file under the package directory `top`."""
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(dirpath, ROOT).replace(os.sep, ".")
        out += [(os.path.join(dirpath, f), rel) for f in sorted(filenames) if f.endswith(".py")]
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_the_layers_below_it(package):
    modules = package_modules(package)
    assert modules, f"no modules found under {package}/"
    broken: Set[str] = set()
    for path, dotted in modules:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        for line, imported in imported_packages(source, dotted):
            if imported in FORBIDDEN[package]:
                broken.add(f"{os.path.relpath(path, ROOT)}:{line} imports {imported}")
    assert not broken, f"{package} must not import {sorted(FORBIDDEN[package])}: " + \
        "; ".join(sorted(broken))


def test_the_checker_sees_lazy_relative_and_string_imports():
    """What the rule test relies on: imports inside functions, relative imports and
    import_module literals are all found, and resolved to their top-level package."""
    source = ("import os\n"
              "from . import sibling\n"
              "from ..other import thing\n"
              "def f():\n"
              "    from distiller.pipelines.build import build_distill_set\n"
              "    import distiller.autodistiller.sweep as s\n"
              "    return importlib.import_module('distiller.cli'), import_module(name)\n")
    found = sorted(set(p for _, p in imported_packages(source, "distill_train.sub")))
    assert found == ["autodistiller", "distill_train", "distiller", "os", "pipelines"]


def test_every_project_package_has_a_rule():
    """A new top-level package needs its place in the layer rule."""
    packages = {d for d in os.listdir(ROOT)
                if os.path.isfile(os.path.join(ROOT, d, "__init__.py"))}
    assert packages - {"examples", "tests", "benchmarks"} == set(FORBIDDEN)
