"""The import rules (docs/architecture.md), checked on the import graph read from every module's
source (tests/importgraph.py: statements at any depth, relative imports, import_module calls).

- Layers: a module imports only the parts below its own (`FORBIDDEN`), and a part only through
  the `distiller` namespace (`distiller/<part>` links to `../<part>`), never by its bare name;
  inside a part, a subpackage only those below it (`SUBPACKAGE_FORBIDDEN`).
- No import cycle among modules (a name taken from a package's `__init__` is an import of it).
- Project imports sit at the top of modules: inside a function only in command-line entry
  modules (`distiller/cli.py`, `<part>/cli.py`, `<part>/*_cli.py`), which load a command's code
  when it runs so that `distiller --help` stays fast; and a package `__init__`'s `__getattr__`
  may load its exports with `import_module(_HOME[name])` (PEP 562).
- Every `importlib.import_module` names its module so the rules can check it, but in the
  functions that load a module the user names (`USER_MODULE_LOADERS`).
Each rule is a function over a graph; the tests below run it on the project and on small
synthetic trees with one defect each, which it must report.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from typing import Dict, List, Mapping, Sequence, Set

import pytest

from tests.importgraph import Module, cycle_path, cycles, scan, within

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
# subpackage -> the subpackages of its part it must not import (the cache is read without the
# teacher: the teacher writes it)
SUBPACKAGE_FORBIDDEN = {"distiller.builders.cache": ("distiller.builders.teacher",)}
# module -> its functions whose import_module loads a module the user names (not project code)
USER_MODULE_LOADERS = {"distiller.autodistiller.sweep": {"_load_trainer"}}

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


@functools.lru_cache(maxsize=None)
def project_modules() -> Dict[str, Module]:
    """Every module of the project, by its name under the `distiller` namespace."""
    modules = scan(ROOT, "distiller", "distiller")
    for part in sorted(PARTS):
        modules.update(scan(ROOT, part, f"distiller.{part}"))
    return modules


def modules_of(modules: Mapping[str, Module], part: str) -> List[Module]:
    return [m for name, m in sorted(modules.items()) if project_part(name) == part]


def where(module: Module, line: int) -> str:
    return f"{os.path.relpath(module.path, ROOT)}:{line}"


# --- the rules: each returns the problems it finds, one line each -----------------------------

def layer_problems(modules: Sequence[Module], forbidden: Set[str]) -> List[str]:
    return sorted(f"{where(m, imp.line)} imports {project_part(t)}"
                  for m in modules for imp in m.imports for t in imp.targets
                  if project_part(t) in forbidden or project_part(t).startswith(BARE))


def cycle_problems(modules: Mapping[str, Module], members: Set[str]) -> List[str]:
    """The cycles of the graph that pass through one of `members`: a loop of imports, and
    every module of the knot it belongs to when that holds more."""
    out = []
    for component in cycles(modules):
        if members & set(component):
            path = cycle_path(modules, component)
            more = f" (a knot of {', '.join(component)})" if len(component) > len(path) - 1 \
                else ""
            out.append(" -> ".join(path) + more)
    return out


def is_cli_module(name: str) -> bool:
    """A command-line entry module: `distiller.cli`, a part's `cli` or `*_cli`."""
    last = name.rpartition(".")[2]
    return last == "cli" or last.endswith("_cli")


def function_import_problems(modules: Sequence[Module], project: Set[str]) -> List[str]:
    """Imports of the project (top-level names `project`) inside functions, outside the
    command-line modules and a package __init__'s lazy `__getattr__`."""
    out = []
    for m in modules:
        if is_cli_module(m.name):
            continue
        for imp in m.imports:
            if imp.function is None or (imp.dynamic and m.is_package
                                        and imp.function == "__getattr__"):
                continue
            out += [f"{where(m, imp.line)} imports {t} inside {imp.function}()"
                    for t in imp.targets if t.split(".")[0] in project]
    return sorted(out)


def unresolved_problems(modules: Sequence[Module],
                        loaders: Mapping[str, Set[str]]) -> List[str]:
    return sorted(f"{where(m, imp.line)} {imp.targets[0]}: give import_module a literal module "
                  "name (or a module-level dict of them)" for m in modules for imp in m.unresolved
                  if imp.function not in loaders.get(m.name, set()))


def subpackage_problems(modules: Sequence[Module],
                        rules: Mapping[str, Sequence[str]]) -> List[str]:
    return sorted(f"{where(m, imp.line)} ({m.name}) imports {t}"
                  for sub, banned in rules.items() for m in modules if within(m.name, [sub])
                  for imp in m.imports for t in imp.targets if within(t, banned))


# --- the rules on the project -----------------------------------------------------------------

@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_the_layers_below_it(package):
    modules = modules_of(project_modules(), package)
    assert modules, f"no modules found under {package}/"
    broken = layer_problems(modules, FORBIDDEN[package])
    assert not broken, f"{package} must not import {sorted(FORBIDDEN[package])}: " + \
        "; ".join(broken)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_cycle_through_a_package(package):
    names = {m.name for m in modules_of(project_modules(), package)}
    found = cycle_problems(project_modules(), names)
    assert not found, f"import cycles through {package}: " + "; ".join(found)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_project_imports_sit_at_the_top_of_modules(package):
    found = function_import_problems(modules_of(project_modules(), package), {"distiller"} | PARTS)
    assert not found, f"{len(found)} project imports inside functions: " + "; ".join(found)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_every_import_module_call_names_its_module(package):
    found = unresolved_problems(modules_of(project_modules(), package), USER_MODULE_LOADERS)
    assert not found, "; ".join(found)


def test_subpackages_import_only_those_below_them():
    found = subpackage_problems(modules_of(project_modules(), "builders"), SUBPACKAGE_FORBIDDEN)
    assert not found, "; ".join(found)


@pytest.mark.parametrize("top", ["tests", "benchmarks", "examples"])
def test_tests_benchmarks_and_examples_import_parts_only_through_the_namespace(top):
    bare = [f"{where(m, imp.line)} imports {t}" for m in scan(ROOT, top, top).values()
            for imp in m.imports for t in imp.targets if project_part(t).startswith(BARE)]
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


# --- each rule fails on a defect put into a small tree of its own ------------------------------

def synthetic(tmp_path, files: Mapping[str, str]) -> Dict[str, Module]:
    """The modules of a package tree written under tmp_path ({relative path: source})."""
    for rel, source in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    tops = {rel.split("/")[0] for rel in files}
    return {name: m for top in sorted(tops) for name, m in scan(str(tmp_path), top, top).items()}


def test_a_cycle_between_two_modules_is_found(tmp_path):
    modules = synthetic(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from .b import g\n",
                                   "pkg/b.py": "def g():\n    from pkg.a import f\n",
                                   "pkg/c.py": "from . import a\n"})
    assert cycles(modules) == [["pkg.a", "pkg.b"]]
    assert cycle_problems(modules, {"pkg.a", "pkg.c"}) == ["pkg.a -> pkg.b -> pkg.a"]
    assert cycle_problems(modules, {"pkg.c"}) == []


def test_a_cycle_through_the_package_init_is_found(tmp_path):
    # a.py takes a name from the package, whose __init__ imports a: a cycle
    modules = synthetic(tmp_path, {"pkg/__init__.py": "from .a import f\nfrom .sub import s\n",
                                   "pkg/a.py": "from pkg import s\ndef f(): pass\n",
                                   "pkg/sub/__init__.py": "from .x import s\n",
                                   "pkg/sub/x.py": "from .. import a\ns = 1\n"})
    assert cycles(modules) == [["pkg", "pkg.a", "pkg.sub", "pkg.sub.x"]]
    assert cycle_problems(modules, {"pkg.sub.x"}) == [
        "pkg -> pkg.a -> pkg (a knot of pkg, pkg.a, pkg.sub, pkg.sub.x)"]
    # a submodule taken from its package is an import of that module, not of the __init__
    modules = synthetic(tmp_path / "other", {"pkg/__init__.py": "from .a import f\n",
                                             "pkg/a.py": "from pkg import b\ndef f(): pass\n",
                                             "pkg/b.py": ""})
    assert [imp.targets for imp in modules["pkg.a"].imports] == [("pkg.b",)]
    assert cycles(modules) == []


def test_imports_for_type_checking_only_are_no_cycle(tmp_path):
    modules = synthetic(tmp_path, {
        "pkg/__init__.py": "", "pkg/a.py": "from .b import g\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"})
    assert cycles(modules) == []


def test_a_project_import_in_a_function_is_found_outside_cli_modules(tmp_path):
    body = ("import json\ndef run():\n    import torch\n    from . import b\n"
            "    from pkg.b import x\n")
    modules = synthetic(tmp_path, {"pkg/__init__.py": "", "pkg/b.py": "x = 1\n",
                                   "pkg/lib.py": body, "pkg/cli.py": body,
                                   "pkg/build_cli.py": body})
    found = function_import_problems(list(modules.values()), {"pkg"})
    assert [p.split(" ", 1)[1] for p in found] == ["imports pkg.b inside run()"] * 2
    assert all("pkg/lib.py" in p for p in found)


def test_a_package_getattr_may_load_its_exports_from_a_dict_of_names(tmp_path):
    init = ("import importlib\n_HOME = {'f': 'pkg.a', 'g': 'pkg.b'}\n"
            "def __getattr__(name):\n"
            "    return getattr(importlib.import_module(_HOME[name]), name)\n")
    modules = synthetic(tmp_path, {"pkg/__init__.py": init, "pkg/a.py": "f = 1\n",
                                   "pkg/b.py": "from pkg import f\n"})
    assert function_import_problems(list(modules.values()), {"pkg"}) == []
    assert unresolved_problems(list(modules.values()), {}) == []
    assert modules["pkg"].imports[-1].targets == ("pkg.a", "pkg.b")
    assert cycles(modules) == [["pkg", "pkg.b"]]   # b takes f from the package that loads b


def test_an_import_module_it_cannot_resolve_is_found(tmp_path):
    source = ("import importlib\nfrom importlib import import_module\n"
              "NAMES = {'a': 'pkg.a'}\nMIXED = {'a': 'pkg.a', 'b': name_of('b')}\n"
              "def load(name, where):\n"
              "    importlib.import_module('pkg.a')\n"         # a literal
              "    importlib.import_module('.a', __name__)\n"  # relative to this package
              "    import_module(NAMES[name])\n"               # a dict of literals
              "    importlib.import_module(f'pkg.{name}')\n"   # 9: computed
              "    importlib.import_module(MIXED[name])\n"     # 10: a value not a literal
              "    importlib.import_module('.a', where)\n"     # 11: relative to an unknown
              "    return import_module(name)\n")              # 12: a variable
    modules = synthetic(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "", "pkg/m.py": source,
                                   "pkg/user.py": "import importlib\n"
                                   "def plugin(path):\n    return importlib.import_module(path)\n"})
    m = modules["pkg.m"]
    assert [imp.targets for imp in m.imports if imp.dynamic] == [("pkg.a",)] * 3
    found = unresolved_problems(list(modules.values()), {"pkg.user": {"plugin"}})
    assert [p.split(" ")[0].rsplit(":", 1)[1] for p in found] == ["10", "11", "12", "9"]
    assert len(unresolved_problems(list(modules.values()), {})) == 5


def test_the_cache_importing_the_teacher_is_found(tmp_path):
    modules = synthetic(tmp_path, {
        "distiller/__init__.py": "", "distiller/builders/__init__.py": "",
        "distiller/builders/cache/__init__.py": "", "distiller/builders/teacher/__init__.py": "",
        "distiller/builders/teacher/forward.py": "from ..cache import store\n",
        "distiller/builders/cache/store.py": "x = 1\n",
        "distiller/builders/cache/keys.py": "def f():\n    from ..teacher.forward import run\n",
        "distiller/builders/cache/spec.py": "from distiller.builders import teacher\n"})
    found = subpackage_problems(list(modules.values()), SUBPACKAGE_FORBIDDEN)
    assert [p.split(" ", 1)[1] for p in found] == [
        "(distiller.builders.cache.keys) imports distiller.builders.teacher.forward",
        "(distiller.builders.cache.spec) imports distiller.builders.teacher"]


def test_imports_resolve_to_absolute_module_names(tmp_path):
    source = ("import os, distiller.augment.policy\nfrom . import sibling, thing\n"
              "from ..other import name\nfrom .. import other\n"
              "def f():\n    from distiller.pipelines.build import build_distill_set\n")
    modules = synthetic(tmp_path, {"pkg/__init__.py": "", "pkg/sub/__init__.py": "",
                                   "pkg/sub/sibling.py": "", "pkg/sub/m.py": source,
                                   "pkg/other.py": "name = 1\n"})
    assert [(imp.targets[0], imp.function) for imp in modules["pkg.sub.m"].imports] == [
        ("os", None), ("distiller.augment.policy", None), ("pkg.sub.sibling", None),
        ("pkg.sub", None), ("pkg.other", None), ("pkg.other", None),
        ("distiller.pipelines.build", "f")]


def test_a_bare_part_name_is_seen_as_such(tmp_path):
    modules = synthetic(tmp_path, {"augment/x.py": "import builders.cache\n"
                                   "from taskdata import records\nimport distiller.builders\n"})
    assert [project_part(t) for imp in modules["augment.x"].imports for t in imp.targets] == \
        ["bare:builders", "bare:taskdata", "builders"]
    found = layer_problems(list(modules.values()), set())
    assert [p[p.index("augment/"):] for p in found] == [
        "augment/x.py:1 imports bare:builders", "augment/x.py:2 imports bare:taskdata"]
