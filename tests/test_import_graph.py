"""No import cycle among fednot's modules, imports only down the layers, no test helper imported.

Read from the source (`ast`), not by importing: a cycle that happens to import in one order today
breaks in another tomorrow. Every import statement counts, wherever it stands: at module level,
under ``if TYPE_CHECKING:``, in a ``try``, or inside a function (lazy imports, optional extras);
relative imports are resolved. Only imports by a name in a string (``importlib``) are not seen.
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
    """The fednot modules the file ``path`` imports."""
    return _imported(path.read_text(), path.relative_to(SRC).parent.parts, modules)


def _imported(source: str, package: tuple[str, ...], modules: dict[str, Path]) -> set[str]:
    """The fednot modules ``source`` imports anywhere (module level, TYPE_CHECKING, functions).

    ``package`` is the package the source lies in, which relative imports start from.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = package[: len(package) - node.level + 1]
                base = ".".join([*stem, base] if base else stem)
            found |= {f"{base}.{a.name}" for a in node.names} & set(modules)
            found |= {base} & set(modules)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & set(modules)
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


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_every_kind_of_import_counts() -> None:  # the check sees them all
    source = """
from typing import TYPE_CHECKING
from fednot import errors
import fednot.types as types
from .. import seeding
from . import source
from .partition import Partition
from ..unlearning import space
try:
    import fednot.store.cache
except ImportError:
    pass
if TYPE_CHECKING:
    from fednot.progress import Progress
def later() -> None:
    from fednot.config import RunConfig
class Lazy:
    def method(self) -> None:
        import fednot.benchmark.plots
"""
    assert _imported(source, ("fednot", "data"), _modules()) == {
        "fednot",
        "fednot.store.cache",
        "fednot.config",
        "fednot.data",
        "fednot.data.partition",
        "fednot.data.source",
        "fednot.errors",
        "fednot.benchmark.plots",
        "fednot.progress",
        "fednot.seeding",
        "fednot.unlearning",
        "fednot.unlearning.space",
        "fednot.types",
    }


_FLOWER_TESTING = "fednot.integrations.flower.testing"

LAYERS: tuple[tuple[str, ...], ...] = (
    # bottom first; a module may import its own layer and those below (docs/engine.md, "The layout")
    ("errors", "types", "version", "paths", "plugins", "typecheck", "environment", "seeding"),
    ("progress", "store"),
    ("metrics",),
    ("config",),
    ("data", "models"),
    ("federation",),
    ("unlearning",),
    ("presets", "configio", "checkpoint"),
    ("benchmark",),
    ("tune", "audit", "analysis", "testing"),
    ("cli", "integrations"),
    ("",),  # the package's __init__: the public API
)


def _layer(module: str) -> int:
    """The index in `LAYERS` of ``module``'s top-level part under ``fednot``."""
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, names in enumerate(LAYERS) if part in names)


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} -> {b}" for a, targets in graph.items() for b in targets if _layer(b) > _layer(a)
    )


def test_imports_only_go_down_the_layers() -> None:
    assert _upward(_graph()) == []


def test_every_module_has_a_layer_and_an_upward_import_is_found() -> None:
    for module in _modules():
        _layer(module)  # StopIteration: a new top-level module or package needs its layer
    assert _upward({"fednot.unlearning.x": {"fednot.tune.y"}, "fednot.tune.y": set()}) == [
        "fednot.unlearning.x -> fednot.tune.y"
    ]


def test_a_cycle_is_found() -> None:  # the check can fail
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_production_code_does_not_import_the_test_helpers() -> None:
    """Anywhere in a module, lazy imports included."""
    helpers = {"fednot.testing", *(m for m in _modules() if m.startswith(_FLOWER_TESTING))}
    modules = _modules()
    users = {
        n for n, path in modules.items() if n not in helpers and _imports(path, modules) & helpers
    }
    assert users == set()
