"""NoT: federated unlearning via weight negation.

Y. H. Khalil, L. Brunswic, S. Lamghari, X. Li, M. Beitollahi, X. Chen, "NoT: Federated
Unlearning via Weight Negation", CVPR 2025 (arXiv 2503.05657).

On a request the server negates the parameters of chosen layers of the converged global model,
θ' = (−θ*_ℓ)_{ℓ∈L_neg} ⊕ (θ*_ℓ)_{ℓ∉L_neg} (paper Eq. 3), then fine-tunes θ' with FedAvg on the
retained data (the engine's recovery phase). Negation breaks the co-adaptation between layers,
which forgets, while keeping each layer's weights in a state from which training recovers fast.
The method needs no stored history, never sees the forget data, and sends nothing beyond the
request: its `requirements` declare nothing, so the engine hands it no forget sample.

Two registered variants (docs/not.md, "Weights or weights and bias"):
- ``not`` (title "NoT"): the paper as written. ``layers="first"`` and ``negate_bias=False``: "we
  only negate the weights of the first layer" (§5.3); the public ports negate the weight tensor
  only. Negating the weight alone maps the layer's pre-activation Y = Wx + b to −Y + 2b.
- ``not_wb`` (title "NoT (w+b)"): negates weight and bias, which maps Y to −Y exactly (ours).

Checks (paper Thm 4, §5.3, footnote 4), on the model's computation graph:
- the output layer is refused (negating it breaks layer-wise optimality); ``strict=False`` turns
  this into a warning, for ablations;
- two negated layers on one path are allowed with a warning (recovery slows down);
- a layer negated together with the normalisation that directly follows it warns: the two
  negations cancel, (−N)(−C)(x) = NC(x).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from torch import nn

from fednot.errors import ConfigError, NegationWarning
from fednot.models.layers import Layer, LayerGraph, layer_graph, resolve_layers
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import layer_selection
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import LayerChoice


def negate(state: StateDict, targets: Iterable[str]) -> StateDict:
    """Return a new state dict with the tensors named in ``targets`` negated.

    Untouched tensors are the same objects as in ``state`` (states are treated as immutable);
    ``negate(negate(s, t), t)`` equals ``s`` exactly.
    """
    targets = list(targets)
    unknown = [t for t in targets if t not in state]
    if unknown:
        raise ConfigError(f"Cannot negate {unknown}: not in the state dict.")
    return {k: (-v if k in targets else v) for k, v in state.items()}


def negation_targets(layers: Iterable[Layer], *, negate_bias: bool) -> tuple[str, ...]:
    """Parameter names to negate for ``layers``; biases only if ``negate_bias``."""
    names = [p for layer in layers for p in layer.parameters]
    return tuple(p for p in names if negate_bias or not p.rsplit(".", 1)[-1].endswith("bias"))


def check_layers(graph: LayerGraph, layers: tuple[Layer, ...], *, strict: bool) -> list[str]:
    """Apply the theory's checks; return the warnings issued (raises for refusals)."""
    names = {layer.name for layer in layers}
    issued: list[str] = []

    def warn(message: str) -> None:
        warnings.warn(message, NegationWarning, stacklevel=3)
        issued.append(message)

    outputs = [n for n in names if graph.is_output(n)]
    if outputs:
        message = (
            f"NoT cannot negate {', '.join(sorted(outputs))} (the output layer): negating a "
            "maximal layer breaks layer-wise optimality (NoT paper, Thm 4)."
        )
        if strict:
            raise ConfigError(
                f"{message} Choose an earlier layer, or pass strict=False for an ablation."
            )
        warn(message)
    for layer in layers:
        cancelled = sorted(graph.direct_norms.get(layer.name, frozenset()) & names)
        if cancelled:
            warn(
                f"Negating {layer.name} together with {', '.join(cancelled)}, the normalisation "
                "that directly follows it, cancels out: (-N)(-C)(x) = NC(x) (NoT paper, "
                "footnote 4). Negate only one of them."
            )
        downstream = sorted((graph.downstream[layer.name] & names) - set(cancelled))
        if downstream:
            warn(
                f"{layer.name} and {', '.join(downstream)} lie on one path of the computation "
                "graph; negating both slows recovery (NoT paper §5.3, Thm 4 asks for an antichain)."
            )
    return issued


@register_unlearner
class NoT(Unlearner):
    """Negate chosen layers of the global model; the engine then fine-tunes on retained data.

    As the paper states it: the weights of the layers, not their biases (module docstring).
    """

    name = "not"
    title = "NoT"
    requirements = Requirements()
    # the layer to negate: the published "first" or one of the next early layers
    search_space = {"layers": LayerChoice()}

    def __init__(
        self,
        *,
        layers: str | tuple[str, ...] = "first",
        negate_bias: bool = False,
        strict: bool = True,
    ) -> None:
        self.layers = layer_selection(layers, "layers")
        self.negate_bias = negate_bias
        self.strict = strict

    def resolve(self, model: nn.Module) -> tuple[LayerGraph, tuple[Layer, ...]]:
        """The model's layer graph and the layers this NoT negates."""
        graph = layer_graph(model)
        return graph, resolve_layers(graph, self.layers)

    def validate(self, model: nn.Module) -> None:
        """Resolve the layers on ``model`` and apply the checks, before any training."""
        graph, layers = self.resolve(model)
        check_layers(graph, layers, strict=self.strict)
        if not negation_targets(layers, negate_bias=self.negate_bias):
            raise ConfigError(
                f"Layers {[layer.name for layer in layers]} have no weight to negate with "
                "negate_bias=False."
            )

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Negate the chosen layers of ``state``; recovery follows in the engine."""
        graph, layers = self.resolve(ctx.model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NegationWarning)  # validate() has shown them
            issued = check_layers(graph, layers, strict=self.strict)
        targets = negation_targets(layers, negate_bias=self.negate_bias)
        return UnlearnResult(
            negate(state, targets),
            notes={
                "negated_layers": [layer.name for layer in layers],
                "negated_parameters": list(targets),
                "warnings": issued,
            },
        )


@register_unlearner
class NoTWeightBias(NoT):
    """NoT negating each chosen layer's weight and bias, so its pre-activation maps to −Y exactly.

    A fednot variant, listed next to the paper's weights-only `NoT` (module docstring).
    """

    name = "not_wb"
    title = "NoT (w+b)"

    def __init__(
        self,
        *,
        layers: str | tuple[str, ...] = "first",
        negate_bias: bool = True,
        strict: bool = True,
    ) -> None:
        super().__init__(layers=layers, negate_bias=negate_bias, strict=strict)
