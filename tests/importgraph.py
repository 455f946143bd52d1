"""The import graph of a tree of Python packages, read from the source (nothing is imported):
what tests/test_layers.py checks its rules on.

Each module's imports are resolved to absolute module names: `import a.b`, `from a import b`
(the submodule `a.b` where that is a module, else the package `a` itself: a name taken from a
package's `__init__` is an import of that `__init__`), relative imports against the module's own
package, and `importlib.import_module(arg)` where `arg` is a string literal, a relative literal
with the package named (`import_module(".x", __name__)`), or a subscript of a module-level dict
whose values are all string literals (`import_module(_HOME[name])`: every value is a possible
import). Any other argument is *unresolved*: the rules cannot see what it loads.
Imports under `if TYPE_CHECKING:` never run, so they are left out of the graph.
"""
from __future__ import annotations

import ast
import dataclasses
import os
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple


@dataclasses.dataclass(frozen=True)
class Import:
    """One import of a module: the absolute names it may load (several for a dict lookup), the
    line, the function it sits in (None: top level), and whether it is an import_module call."""

    targets: Tuple[str, ...]
    line: int
    function: Optional[str]
    dynamic: bool


@dataclasses.dataclass
class Module:
    name: str          # absolute dotted name (`distiller.builders.cache.store`)
    path: str
    is_package: bool   # an __init__.py
    imports: List[Import]
    unresolved: List[Import]   # import_module calls not resolved: targets is (their source,)

    @property
    def package(self) -> str:
        """The package relative imports resolve against."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def scan(root: str, top: str, name: str) -> Dict[str, Module]:
    """Every module of the package directory `root/top`, named as the package `name` (symbolic
    links to directories are not followed: `distiller/<part>` links are scanned as parts)."""
    found: Dict[str, Tuple[str, bool]] = {}
    base = os.path.join(root, top)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = os.path.relpath(dirpath, base)
        package = name if rel == "." else name + "." + rel.replace(os.sep, ".")
        for f in sorted(filenames):
            if f.endswith(".py"):
                is_package = f == "__init__.py"
                full = package if is_package else f"{package}.{f[:-3]}"
                found[full] = (os.path.join(dirpath, f), is_package)
    return {full: read_module(full, path, is_package, set(found))
            for full, (path, is_package) in found.items()}


def read_module(name: str, path: str, is_package: bool, known: Set[str]) -> Module:
    """The Module at `path`; `known` (every module name of the tree) tells a submodule imported
    with `from package import sub` from a name defined in the package's __init__."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=path)
    module = Module(name, path, is_package, [], [])
    literals = _module_dicts(tree)
    for node, function in _walk(tree, None):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            targets = _statement_targets(node, module.package, known)
            module.imports += [Import((t,), node.lineno, function, False) for t in targets]
        elif isinstance(node, ast.Call) and _is_import_module(node):
            targets = _call_targets(node, module.package, literals)
            if targets is None:
                module.unresolved.append(Import((ast.unparse(node),), node.lineno, function, True))
            else:
                module.imports.append(Import(targets, node.lineno, function, True))
    return module


def _walk(node: ast.AST, function: Optional[str]) -> Iterator[Tuple[ast.AST, Optional[str]]]:
    """(node, name of the innermost enclosing function or None) of every node, less the bodies
    of `if TYPE_CHECKING:` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other, function
                yield from _walk(other, function)
            continue
        yield child, function
        inner = function
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = child.name
        elif isinstance(child, ast.Lambda):
            inner = "<lambda>"
        yield from _walk(child, inner)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _relative_base(level: int, package: str) -> str:
    parts = package.split(".")
    return ".".join(parts[:len(parts) - (level - 1)])


def _statement_targets(node, package: str, known: Set[str]) -> List[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        start = _relative_base(node.level, package)
        base = f"{start}.{base}" if base else start
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
            for alias in node.names]


def _is_import_module(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name == "import_module"


def _module_dicts(tree: ast.Module) -> Dict[str, Tuple[str, ...]]:
    """{name: its values} of each module-level dict assignment whose values are all string
    literals (`_HOME = {"x": "distiller.a.x"}`, annotated or not)."""
    out = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        if not isinstance(value, ast.Dict) or not value.values:
            continue
        if all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in value.values):
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = tuple(v.value for v in value.values)
    return out


def _call_targets(node: ast.Call, package: str,
                  literals: Dict[str, Tuple[str, ...]]) -> Optional[Tuple[str, ...]]:
    """The module names an import_module call may load, None where they cannot be told."""
    if not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        names: Tuple[str, ...] = (arg.value,)
    elif isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name) \
            and arg.value.id in literals:
        names = literals[arg.value.id]
    else:
        return None
    if not any(n.startswith(".") for n in names):
        return names
    anchor = node.args[1] if len(node.args) > 1 else None
    if not (isinstance(anchor, ast.Name) and anchor.id == "__name__"):
        return None   # relative to a package the checker cannot tell
    out = []
    for n in names:
        level = len(n) - len(n.lstrip("."))
        start = _relative_base(level, package) if level else ""
        out.append(f"{start}.{n[level:]}" if level else n)
    return tuple(out)


def graph_of(modules: Dict[str, Module]) -> Dict[str, List[str]]:
    """{module: the modules of `modules` it imports}."""
    return {name: sorted({t for imp in m.imports for t in imp.targets
                          if t in modules and t != name})
            for name, m in modules.items()}


def cycle_path(modules: Dict[str, Module], component: Sequence[str]) -> List[str]:
    """A shortest import loop from the first module of a cycle's `component` back to it (the
    first module repeated at the end)."""
    graph, start, inside = graph_of(modules), component[0], set(component)
    came: Dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in graph[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return path[::-1] + [start]
            if nxt in inside and nxt not in came:
                came[nxt] = node
                queue.append(nxt)
    raise ValueError(f"{component} is not a cycle")


def cycles(modules: Dict[str, Module]) -> List[List[str]]:
    """The import cycles among `modules`: each strongly connected component of more than one
    module (Tarjan's algorithm), sorted."""
    graph = graph_of(modules)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def visit(start: str) -> None:
        # iterative depth-first search: (node, iterator over its successors)
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(out)


def within(name: str, prefixes: Sequence[str]) -> bool:
    """Whether module `name` is one of `prefixes` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)
