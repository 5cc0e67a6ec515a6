"""Named layers of a model, ordered by its computation graph.

NoT chooses layers to negate by name and checks its theory's conditions on them (NoT paper §5.3,
Thm 4): never the output layer, layers on one path slow recovery, and a layer negated together
with the normalisation that directly follows it cancels out (footnote 4). Those checks need the
computation graph, which comes from a `torch.fx` trace. A model that cannot be traced falls back
to registration order, and the graph checks are skipped with a warning.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from fednot.errors import ConfigError, FedNotWarning

_KINDS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), "conv"),
    ((nn.Linear,), "linear"),
    ((nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm), "norm"),
    ((nn.MultiheadAttention,), "attention"),
    ((nn.Embedding,), "embedding"),
)
_TRANSPARENT_MODULES = (nn.Flatten, nn.Identity, nn.Dropout, nn.Unflatten)
_TRANSPARENT_CALLS = {
    "flatten",
    "view",
    "reshape",
    "permute",
    "transpose",
    "contiguous",
    "dropout",
    "unflatten",
    torch.flatten,
    torch.reshape,
    torch.permute,
    torch.transpose,
    operator.getitem,
    nn.functional.dropout,
}


@dataclass(frozen=True)
class Layer:
    """A parameterised unit of a model: a leaf module, or a parameter used directly.

    Attributes:
        name: module path (``block1.conv``) or parameter path (``class_token``).
        kind: ``conv``, ``linear``, ``norm``, ``attention``, ``embedding``, ``parameter`` or
            ``other``.
        parameters: the state-dict names of its parameters.
    """

    name: str
    kind: str
    parameters: tuple[str, ...]


@dataclass(frozen=True)
class LayerGraph:
    """Layers in computation order, with what lies downstream of each."""

    layers: tuple[Layer, ...]
    downstream: dict[str, frozenset[str]] = field(repr=False)
    direct_norms: dict[str, frozenset[str]] = field(repr=False)
    traced: bool = True

    @property
    def names(self) -> list[str]:
        """Layer names in computation order."""
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> Layer:
        """Return the layer called ``name`` or raise `ConfigError` listing the known names."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"The model has no layer {name!r}. Its layers: {', '.join(self.names)}.")

    def is_output(self, name: str) -> bool:
        """True if no other layer lies downstream of ``name`` (a maximal element)."""
        return not self.downstream[name]


def _kind(module: nn.Module) -> str:
    for types, kind in _KINDS:
        if isinstance(module, types):
            return kind
    return "other"


def layer_graph(model: nn.Module) -> LayerGraph:
    """Return the named layers of ``model`` in computation-graph order."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as e:  # noqa: BLE001 - any tracing failure means: fall back
        warnings.warn(
            f"{type(model).__name__} cannot be traced by torch.fx ({type(e).__name__}: {e}); "
            "layers are taken in registration order and the graph checks of NoT are skipped.",
            FedNotWarning,
            stacklevel=2,
        )
        return _untraced_graph(model)
    modules = dict(model.named_modules())
    parameters = {name for name, _ in model.named_parameters()}
    nodes: dict[str, list[fx.Node]] = {}
    layers: list[Layer] = []
    for node in graph.nodes:
        layer = _layer_of(node, modules, parameters)
        if layer is None:
            continue
        if layer.name not in nodes:
            layers.append(layer)
        nodes.setdefault(layer.name, []).append(node)
    owner = {n: name for name, group in nodes.items() for n in group}
    downstream = {
        name: frozenset(owner[n] for n in _reachable(group) if n in owner) - {name}
        for name, group in nodes.items()
    }
    kinds = {layer.name: layer.kind for layer in layers}
    direct = {
        name: frozenset(
            owner[n] for n in _directly_fed(group, modules) if kinds.get(owner.get(n, "")) == "norm"
        )
        for name, group in nodes.items()
    }
    return LayerGraph(tuple(layers), downstream, direct, traced=True)


def _layer_of(node: fx.Node, modules: dict[str, nn.Module], parameters: set[str]) -> Layer | None:
    if node.op == "call_module":
        module = modules[str(node.target)]
        params = tuple(f"{node.target}.{p}" for p, _ in module.named_parameters())
        return Layer(str(node.target), _kind(module), params) if params else None
    if node.op == "get_attr" and str(node.target) in parameters:
        return Layer(str(node.target), "parameter", (str(node.target),))
    return None


def _reachable(start: list[fx.Node]) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = [user for node in start for user in node.users]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.users)
    return seen


def _directly_fed(start: list[fx.Node], modules: dict[str, nn.Module]) -> set[fx.Node]:
    """Nodes reached from ``start`` through shape-only operations (no non-linearity)."""
    found: set[fx.Node] = set()
    stack = [user for node in start for user in node.users]
    while stack:
        node = stack.pop()
        found.add(node)
        if _is_transparent(node, modules):
            stack.extend(node.users)
    return found


def _is_transparent(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], _TRANSPARENT_MODULES)
    return node.op in ("call_function", "call_method") and node.target in _TRANSPARENT_CALLS


def _untraced_graph(model: nn.Module) -> LayerGraph:
    layers: list[Layer] = []
    for name, module in model.named_modules():
        own = tuple(f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False))
        if own:
            layers.append(Layer(name or own[0], _kind(module), own))
    names = [layer.name for layer in layers]
    downstream = {n: frozenset(names[i + 1 :]) for i, n in enumerate(names)}
    return LayerGraph(tuple(layers), downstream, {n: frozenset() for n in names}, traced=False)


def resolve_layers(graph: LayerGraph, spec: str | Sequence[str]) -> tuple[Layer, ...]:
    """Resolve a layer selection to layers.

    Args:
        graph: the model's layer graph.
        spec: ``"first"`` (the first conv or linear layer in computation order, the NoT paper's
            default), ``"last"`` (the output layer), ``"all"``, one layer name, or a list of names.
    """
    if isinstance(spec, str):
        if spec == "first":
            for layer in graph.layers:
                if layer.kind in ("conv", "linear"):
                    return (layer,)
            raise ConfigError("The model has no conv or linear layer for layers='first'.")
        if spec == "last":
            return (graph.layers[-1],)
        if spec == "all":
            return graph.layers
        spec = [spec]
    if not spec:
        raise ConfigError("Expected at least one layer name, got an empty list.")
    chosen = [graph.layer(name) for name in spec]
    duplicates = sorted({name for name in spec if list(spec).count(name) > 1})
    if duplicates:
        raise ConfigError(f"Layers listed twice: {', '.join(duplicates)}.")
    return tuple(chosen)
