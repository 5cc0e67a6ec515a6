"""No import cycle among fednot's modules; production code never imports the tests' helpers.

Read from the source (`ast`), not by importing: a cycle that happens to import in one order today
breaks in another tomorrow. Imports inside functions (lazy, optional extras) and under
``TYPE_CHECKING`` do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The fednot modules ``path`` imports when it is imported."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in [node, *(ast.walk(node) if isinstance(node, ast.Try | ast.If) else [])]:
            if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("fednot"):
                base = str(inner.module)
                found |= {f"{base}.{a.name}" for a in inner.names} & set(modules)
                found |= {base} & set(modules)
            elif isinstance(inner, ast.Import):
                found |= {a.name for a in inner.names} & set(modules)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                out.append(sorted([v, *component]))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_a_cycle_is_found() -> None:  # the check can fail
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_production_code_does_not_import_the_test_helpers() -> None:
    """Anywhere in a module, lazy imports included."""
    helpers = {"fednot.testing", "fednot.integrations.flower.testing"}
    users = set()
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            imported = {node.module} if isinstance(node, ast.ImportFrom) else set()
            if isinstance(node, ast.Import):
                imported = {a.name for a in node.names}
            if name not in helpers and imported & helpers:
                users.add(name)
    assert users == set()
