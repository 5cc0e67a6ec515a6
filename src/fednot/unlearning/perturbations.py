"""Perturbations of chosen layers: the NoT paper's ablation of negation against other edits.

NoT paper §6.2, Fig. 5 (all on ViT ``conv_proj``): negation gives the lowest average gap;
random re-initialisation and additive noise behave like FT (no perturbation); kernel flips and
rotations ("likely layer-wise optimality preserving") improve slightly on FT but stay behind
negation. fednot's set of perturbations (docs/not.md, "Perturbations"; the definitions are ours):

- ``negate``: θ → −θ (NoT's own step).
- ``none``: θ unchanged; with the engine's recovery this is FT.
- ``reinit``: the layer's default initialiser (its ``reset_parameters``), seeded.
- ``noise``: θ + 2‖θ‖·ε/‖ε‖ per tensor, ε ~ N(0, I): Gaussian noise whose displacement has the
  norm of negation's, ‖−θ − θ‖ = 2‖θ‖ (ours, so that noise and negation move the weights
  equally far). ``noise_scale=s`` gives the std-scaled form θ + s·std(θ)·ε of docs/not.md
  ("Perturbations") instead.
- ``flip``: each conv kernel mirrored along its width axis; biases unchanged.
- ``rot90`` / ``rot180``: each square conv kernel rotated in its spatial plane; biases unchanged.

Each perturbation is a pure function of the state: it returns a new state dict whose untouched
tensors are the very objects of the input. `Perturb` runs one of them as an unlearning method,
so the engine's recovery phase follows, exactly as for NoT.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from fednot.errors import ConfigError, NegationWarning
from fednot.models.layers import Layer, layer_graph, resolve_layers
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.negation import check_layers, negate, negation_targets
from fednot.unlearning.options import layer_selection, non_negative_float, one_of, optional
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import LayerChoice

Kind = Literal["negate", "none", "reinit", "noise", "flip", "rot90", "rot180"]


def _replace(state: StateDict, new: dict[str, Tensor]) -> StateDict:
    unknown = [t for t in new if t not in state]
    if unknown:
        raise ConfigError(f"Cannot perturb {unknown}: not in the state dict.")
    return {k: new.get(k, v) for k, v in state.items()}


def _is_bias(name: str) -> bool:
    return name.rsplit(".", 1)[-1].endswith("bias")


def keep(state: StateDict, targets: Sequence[str]) -> StateDict:
    """The identity (``none``): a new dict holding the same tensors."""
    return _replace(state, {})


def add_noise(
    state: StateDict,
    targets: Sequence[str],
    *,
    generator: torch.Generator,
    scale: float | None = None,
) -> StateDict:
    """Add Gaussian noise ε ~ N(0, I) from ``generator`` to each tensor in ``targets``.

    Args:
        state: the state to perturb.
        targets: the tensors to perturb, each with its own ε, drawn in this order.
        generator: the source of ε.
        scale: ``None``: θ + 2‖θ‖·ε/‖ε‖, a displacement of negation's norm (ours);
            a number s: θ + s·std(θ)·ε (docs/not.md, "Perturbations").
    """
    new = {}
    for name in targets:
        theta = state[name]
        eps = torch.randn(theta.shape, generator=generator, dtype=torch.float64)
        theta64 = theta.double().cpu()
        if scale is None:
            step = eps * (2 * theta64.norm() / eps.norm())
        else:
            spread = theta64.std() if theta.numel() > 1 else torch.zeros((), dtype=torch.float64)
            step = eps * (scale * spread)
        new[name] = (theta64 + step).to(theta.dtype).to(theta.device)
    return _replace(state, new)


def _kernels(state: StateDict, targets: Sequence[str], what: str, min_dim: int) -> list[str]:
    """The kernel tensors among ``targets`` (biases are skipped); refuses non-conv weights."""
    kernels = [t for t in targets if not _is_bias(t)]
    for name in kernels:
        if state[name].dim() < min_dim:
            raise ConfigError(
                f"A {what} applies to convolution kernels; {name} has shape "
                f"{tuple(state[name].shape)}, not a conv weight. Choose a conv layer."
            )
    return kernels


def flip_kernels(state: StateDict, targets: Sequence[str]) -> StateDict:
    """Mirror each conv kernel in ``targets`` along its width axis; biases stay unchanged."""
    kernels = _kernels(state, targets, "kernel flip", min_dim=3)
    return _replace(state, {k: state[k].flip(-1) for k in kernels})


def rotate_kernels(state: StateDict, targets: Sequence[str], *, quarter_turns: int) -> StateDict:
    """Rotate each 2-D conv kernel in ``targets`` by ``quarter_turns`` × 90° in its plane.

    Biases stay unchanged; kernels must be square (a rotation would change their shape).
    """
    kernels = _kernels(state, targets, "kernel rotation", min_dim=4)
    for name in kernels:
        shape = tuple(state[name].shape)
        if len(shape) != 4 or shape[-1] != shape[-2]:
            raise ConfigError(
                f"A kernel rotation needs square 2-D conv kernels; {name} has shape {shape}."
            )
    return _replace(
        state, {k: torch.rot90(state[k], quarter_turns, dims=(-2, -1)) for k in kernels}
    )


def reinitialise(
    state: StateDict, targets: Sequence[str], model: nn.Module, *, generator: torch.Generator
) -> StateDict:
    """Draw each target afresh from its module's default initialiser (``reset_parameters``).

    A copy of each owning module is reset on the CPU under a forked global RNG seeded from
    ``generator`` (one seed per module, in target order), so the global RNG is left untouched
    and the same generator gives the same tensors.
    """
    owners: dict[str, list[str]] = {}
    for name in targets:
        owners.setdefault(name.rsplit(".", 1)[0] if "." in name else "", []).append(name)
    new = {}
    for owner, names in owners.items():
        module = model.get_submodule(owner)
        reset = getattr(module, "reset_parameters", None)
        own = dict(module.named_parameters(recurse=False))
        local = [n.rsplit(".", 1)[-1] for n in names]
        if not callable(reset) or not all(p in own for p in local):
            raise ConfigError(
                f"Cannot re-initialise {names}: {owner or 'the model'} "
                f"({type(module).__name__}) has no default initialiser (reset_parameters)."
            )
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = copy.deepcopy(module).cpu()
            fresh.reset_parameters()  # type: ignore[operator]
        values = dict(fresh.named_parameters(recurse=False))
        for name, param in zip(names, local, strict=True):
            new[name] = values[param].detach().to(state[name].dtype).to(state[name].device)
    return _replace(state, new)


Perturbation = Callable[[StateDict, Sequence[str], nn.Module, torch.Generator], StateDict]

PERTURBATIONS: dict[str, Perturbation] = {
    "negate": lambda s, t, m, g: negate(s, t),
    "none": lambda s, t, m, g: keep(s, t),
    "reinit": lambda s, t, m, g: reinitialise(s, t, m, generator=g),
    "noise": lambda s, t, m, g: add_noise(s, t, generator=g),
    "flip": lambda s, t, m, g: flip_kernels(s, t),
    "rot90": lambda s, t, m, g: rotate_kernels(s, t, quarter_turns=1),
    "rot180": lambda s, t, m, g: rotate_kernels(s, t, quarter_turns=2),
}
"""Perturbation name → function ``(state, targets, model, generator) -> state``."""

DESCRIPTIONS: dict[str, str] = {
    "negate": "weight negation θ → −θ (NoT)",
    "none": "no perturbation (= FT)",
    "reinit": "random re-initialisation (the layer's default initialiser)",
    "noise": "Gaussian noise with negation's displacement norm 2‖θ‖",
    "flip": "horizontal kernel flip",
    "rot90": "90° kernel rotation",
    "rot180": "180° kernel rotation",
}
"""A few words per perturbation, for legends and reports."""


def describe(kind: str, *, noise_scale: float | None = None) -> str:
    """A few words on the perturbation ``kind`` (with ``noise``'s scale, if one is given)."""
    if kind == "noise" and noise_scale is not None:
        return f"Gaussian noise {noise_scale:g}·std(θ)·ε"
    return DESCRIPTIONS[kind]


def perturbation_targets(
    model: nn.Module, layers: str | Sequence[str], *, negate_bias: bool = False
) -> tuple[tuple[Layer, ...], tuple[str, ...]]:
    """The layers a selection resolves to on ``model`` (as NoT resolves them) and their tensors."""
    chosen = resolve_layers(layer_graph(model), layers)
    return chosen, negation_targets(chosen, negate_bias=negate_bias)


def perturb(
    state: StateDict,
    model: nn.Module,
    layers: str | Sequence[str],
    kind: str,
    *,
    generator: torch.Generator,
    negate_bias: bool = False,
    noise_scale: float | None = None,
) -> StateDict:
    """Apply the perturbation ``kind`` to the ``layers`` of ``state``.

    Args:
        state: the state to perturb (not modified).
        model: a model of the architecture, for the layer graph and the initialisers.
        layers: ``"first"``, ``"last"``, ``"all"``, a layer name or names (as for NoT).
        kind: a key of `PERTURBATIONS`.
        generator: the randomness of ``reinit`` and ``noise``.
        negate_bias: include the layers' biases (as NoT's option of that name).
        noise_scale: for ``noise``: ``None`` matches negation's displacement norm, a number s
            gives θ + s·std(θ)·ε.
    """
    if kind not in PERTURBATIONS:
        raise ConfigError(f"Unknown perturbation {kind!r}. Known: {', '.join(PERTURBATIONS)}.")
    chosen, targets = perturbation_targets(model, layers, negate_bias=negate_bias)
    other = [layer.name for layer in chosen if layer.kind != "conv"]
    if kind in ("flip", "rot90", "rot180") and other:
        raise ConfigError(
            f"The {DESCRIPTIONS[kind]} applies to convolution kernels; {', '.join(other)} is "
            "not a convolution. Choose a conv layer."
        )
    if not targets:
        raise ConfigError(f"Layers {layers!r} have no parameter to perturb.")
    if kind == "noise" and noise_scale is not None:
        return add_noise(state, targets, generator=generator, scale=noise_scale)
    return PERTURBATIONS[kind](state, targets, model, generator)


@register_unlearner
class Perturb(Unlearner):
    """Perturb chosen layers of the global model; the engine then fine-tunes on retained data.

    The ablation of the NoT paper's Fig. 5: ``kind="negate"`` is NoT without its graph checks,
    ``kind="none"`` is FT. Needs nothing beyond the model, like NoT.
    """

    name = "perturb"
    title = "Perturb"
    requirements = Requirements()
    search_space = {"layers": LayerChoice()}  # as NoT's

    def __init__(
        self,
        *,
        kind: Kind = "negate",
        layers: str | tuple[str, ...] = "first",
        negate_bias: bool = False,
        noise_scale: float | None = None,
    ) -> None:
        self.kind = one_of(kind, "kind", tuple(PERTURBATIONS))
        self.layers = layer_selection(layers, "layers")
        self.negate_bias = negate_bias
        self.noise_scale = optional(noise_scale, non_negative_float, "noise_scale")

    def validate(self, model: nn.Module) -> None:
        """Check that the perturbation applies to the chosen layers of ``model``."""
        state = {k: v.detach() for k, v in model.state_dict().items()}
        perturb(
            state,
            model,
            self.layers,
            self.kind,
            generator=torch.Generator().manual_seed(0),
            negate_bias=self.negate_bias,
            noise_scale=self.noise_scale,
        )

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Perturb the chosen layers of ``state``; recovery follows in the engine."""
        layers, targets = perturbation_targets(ctx.model, self.layers, negate_bias=self.negate_bias)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NegationWarning)
            issued = check_layers(layer_graph(ctx.model), layers, strict=False)
        new = perturb(
            state,
            ctx.model,
            self.layers,
            self.kind,
            generator=ctx.generator(self.kind),
            negate_bias=self.negate_bias,
            noise_scale=self.noise_scale,
        )
        notes: dict[str, Any] = {
            "kind": self.kind,
            "perturbation": describe(self.kind, noise_scale=self.noise_scale),
            "perturbed_layers": [layer.name for layer in layers],
            "perturbed_parameters": [t for t in targets if new[t] is not state[t]],
            "warnings": issued,
        }
        return UnlearnResult(new, notes=notes)
