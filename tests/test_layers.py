"""The layer rule (docs/architecture.md), checked on the import statements of every module.

Every `import`/`from ... import` anywhere in a module (top level or inside a function: a lazy
import is still a dependency) and every `importlib.import_module("literal")` is resolved to the
project part it names (`distiller.<part>...`; relative imports to their own part) and checked
against what the module's part may import. The parts live in top-level folders of the repository
and are imported only through the `distiller` namespace (`distiller/<part>` links to `../<part>`):
an import of a part by its bare top-level name is a defect of its own.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from typing import Iterator, List, Optional, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = {"common", "taskdata", "augment", "builders", "distill_train", "pipelines",
           "autodistiller", "distiller"}
# package -> the project packages its modules must not import (every part may import common,
# the floor; it imports no other part)
FORBIDDEN = {
    "common": PROJECT - {"common"},
    "taskdata": PROJECT - {"taskdata", "common"},
    "augment": {"distill_train", "pipelines", "autodistiller", "distiller"},
    "builders": {"distill_train", "pipelines", "autodistiller", "distiller"},
    "distill_train": {"pipelines", "autodistiller", "distiller"},
    "pipelines": {"distill_train", "autodistiller", "distiller"},
    "autodistiller": {"distiller"},
    "distiller": set(),
}


PARTS = PROJECT - {"distiller"}
BARE = "bare:"   # prefix of a part imported by its old top-level name


def project_part(name: str) -> str:
    """The project part an absolute module name belongs to: `distiller.builders.cache.store` ->
    `builders`, `distiller.cli` -> `distiller`; a part's bare name (`builders.cache`) ->
    `bare:builders`; anything else -> its own top-level name (`os`, `torch`)."""
    head, _, rest = name.partition(".")
    if head == "distiller":
        sub = rest.split(".")[0]
        return sub if sub in PARTS else "distiller"
    return BARE + head if head in PARTS else head


def imported_packages(source: str, package: str) -> Iterator[Tuple[int, str]]:
    """(line, project part or top-level package) of every import in `source`, a module of
    `package` (a dotted name whose first part is the module's part: relative imports resolve
    to it)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, project_part(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within the module's own part
                yield node.lineno, package.split(".")[0]
            else:
                yield node.lineno, project_part(node.module or "")
        elif isinstance(node, ast.Call) and _import_module_literal(node) is not None:
            yield node.lineno, project_part(_import_module_literal(node))


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
            if imported in FORBIDDEN[package] or imported.startswith(BARE):
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


def test_a_bare_part_name_is_seen_as_such():
    source = "import builders.cache\nfrom taskdata import records\nimport distiller.builders\n"
    assert [p for _, p in imported_packages(source, "augment.x")] == \
        ["bare:builders", "bare:taskdata", "builders"]


@pytest.mark.parametrize("top", ["tests", "benchmarks", "examples"])
def test_tests_benchmarks_and_examples_import_parts_only_through_the_namespace(top):
    bare = []
    for path, dotted in package_modules(top):
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        bare += [f"{os.path.relpath(path, ROOT)}:{line} imports {name[len(BARE):]}"
                 for line, name in imported_packages(source, dotted) if name.startswith(BARE)]
    assert not bare, "import distiller.<part>, not <part>: " + "; ".join(bare)


def test_each_part_is_linked_into_the_namespace():
    for part in sorted(PARTS):
        link = os.path.join(ROOT, "distiller", part)
        assert os.path.islink(link) and os.readlink(link) == os.path.join("..", part), link


def test_importing_the_cli_loads_no_top_level_project_package():
    code = ("import sys, distiller.cli\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(PARTS)!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": ROOT}).stdout
    assert out.strip() == "[]"


def test_every_project_package_has_a_rule():
    """A new top-level package needs its place in the layer rule."""
    packages = {d for d in os.listdir(ROOT)
                if os.path.isfile(os.path.join(ROOT, d, "__init__.py"))}
    assert packages - {"examples", "tests", "benchmarks"} == set(FORBIDDEN)
