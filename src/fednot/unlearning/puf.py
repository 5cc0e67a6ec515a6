"""PUF: federated unlearning with negated pseudo-gradients.

A. Mora, C. Mazzocca, R. Montanari, P. Bellavista, "Federated Unlearning Made Practical: Seamless
Integration via Negated Pseudo-Gradients", arXiv 2504.05822 (2025). Official code:
``alessiomora/puf_unlearning`` (``puf_unlearning/main_puf.py``, ``conf/base.yaml``);
docs/methods.md, "PUF".

At the unlearning round the target trains normally from θ for ``epochs`` local epochs on D_u with
the run's FL optimiser; its pseudo-gradient is Δ_u = θ_u − θ. The server negates and scales it:

- ``variant="special"``: only the target(s) take part,
  θ ← θ − α·Σ_u (n_u / Σ_targets n) Δ_u.
- ``variant="regular"``: the round is an ordinary FL round in which the remaining clients also
  train one round from θ, θ ← θ + Σ_{k≠u} w_k Δ_k − α·Σ_u w_u Δ_u, w_k = n_k / (Σ_{k≠u} n_k +
  Σ_u n_u).

The server learning rate is 1. As in the official code (whose Keras weights include the
BatchNorm statistics), every float tensor is updated; integer buffers keep θ's values, and a
BatchNorm running variance pushed below zero by the negated step is clamped to 0 (ours).

Defaults: ``variant="regular"`` (ours: it keeps the round an ordinary FL round); ``alpha=None``
resolves to the official config values, 20.0 for ``regular`` and 2.0 for ``special``;
``epochs=1`` (E_unl, official). Partial forgetting (class- and instance-wise): the target trains
on D_u, and in ``regular`` its retained data D_r^u trains with the other clients; it then recovers
on D_r^u in the engine's recovery. Several targets are simulated as one participant holding the
union D_u (the engine hands D_u as one view); each target is charged its own transfers.

Traffic (docs/metrics.md, "Communication"): the unlearning round's transfers, θ down and the
update up for the target(s) and, in ``regular``, for every remaining client (a client in both
roles downloads once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, get_args

from fednot.errors import ConfigError
from fednot.federation.backend import TrainJob
from fednot.types import StateDict
from fednot.unlearning.base import FEDERATED_SCENARIOS, Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import non_negative_float, one_of, optional, positive_int
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range

Variant = Literal["regular", "special"]
_DEFAULT_ALPHA: dict[str, float] = {"regular": 20.0, "special": 2.0}  # conf/base.yaml


def pseudo_gradient(local: StateDict, start: StateDict) -> StateDict:
    """Δ = local − start for the float tensors, in float64."""
    return {k: local[k].double() - v.double() for k, v in start.items() if v.is_floating_point()}


def puf_update(
    state: StateDict,
    target_deltas: Sequence[StateDict],
    target_weights: Sequence[float],
    *,
    alpha: float,
    other_deltas: Sequence[StateDict] = (),
    other_weights: Sequence[float] = (),
) -> StateDict:
    """θ + Σ_k w_k Δ_k − α·Σ_u w_u Δ_u, with w = n / (Σ_k n_k + Σ_u n_u).

    Without ``other_deltas`` this is the ``special`` variant, θ − α·Σ_u (n_u/Σ n) Δ_u. Float
    tensors are updated in float64 and cast back; the other tensors are ``state``'s.

    Args:
        state: the global model θ.
        target_deltas: the targets' pseudo-gradients Δ_u (float tensors only).
        target_weights: their sample counts n_u.
        alpha: the scale α of the negated update (server learning rate 1).
        other_deltas: the remaining clients' pseudo-gradients Δ_k (``regular``).
        other_weights: their sample counts n_k.
    """
    if len(target_deltas) != len(target_weights) or len(other_deltas) != len(other_weights):
        raise ConfigError(
            f"Expected one weight per update, got {len(target_deltas)} target updates with "
            f"{len(target_weights)} weights and {len(other_deltas)} other updates with "
            f"{len(other_weights)} weights."
        )
    weights = [*target_weights, *other_weights]
    total = float(sum(weights))
    if not target_deltas or total <= 0 or any(w < 0 for w in weights):
        raise ConfigError(
            f"Expected at least one target update and non-negative sample counts with a positive "
            f"sum, got targets {list(target_weights)} and others {list(other_weights)}."
        )
    out: StateDict = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
            continue
        acc = value.double()
        for delta, n in zip(other_deltas, other_weights, strict=True):
            acc = acc + (n / total) * delta[key].double()
        for delta, n in zip(target_deltas, target_weights, strict=True):
            acc = acc - alpha * ((n / total) * delta[key].double())
        out[key] = acc.to(value.dtype)
    return out


def clamp_running_variances(state: StateDict) -> StateDict:
    """``state`` with every BatchNorm ``running_var`` clamped to be non-negative."""
    return {
        k: v.clamp_min(0.0) if k.endswith("running_var") and v.is_floating_point() else v
        for k, v in state.items()
    }


@register_unlearner
class PUF(Unlearner):
    """Apply the target's negated, scaled pseudo-gradient in one FL round."""

    name = "puf"
    title = "PUF"
    requirements = Requirements(forget_data=True, target_participation=True)
    scenarios = FEDERATED_SCENARIOS
    scenario_note = "a federated method: the target unlearns inside a federation"
    # published: 1 epoch of a CIFAR-sized share (~125 batches of 32); an MNIST-5k share gives
    # ~9 batches, so epochs up to 20 covers the published steps; alpha covers both variants'
    search_space = {"epochs": IntRange(1, 20, log=True), "alpha": Range(1.0, 50.0, log=True)}

    def __init__(
        self, *, variant: Variant = "regular", alpha: float | None = None, epochs: int = 1
    ) -> None:
        self.variant: Variant = one_of(variant, "variant", get_args(Variant))
        alpha = optional(alpha, non_negative_float, "alpha")
        self.alpha = _DEFAULT_ALPHA[variant] if alpha is None else alpha
        self.epochs = positive_int(epochs, "epochs")

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """One PUF round from ``state``; recovery follows in the engine."""
        theta = dict(state)
        targets = ctx.request.clients
        recipe = replace(ctx.recipe, epochs=self.epochs)
        jobs = [TrainJob(targets[0], theta, ("local", "target"), recipe, "forget")]
        retained = ctx.retained.ids if self.variant == "regular" else ()
        jobs += [TrainJob(k, theta, ("local", "retained", k), ctx.recipe) for k in retained]
        target, *rest = ctx.train(jobs)
        others = [pseudo_gradient(u.state, theta) for u in rest]
        counts = [float(u.num_samples) for u in rest]
        participants = set(targets) | set(retained)
        downloads, uploads = len(participants), len(targets) + len(others)
        ctx.transfer(theta, downloads + uploads)
        new = puf_update(
            theta,
            [pseudo_gradient(target.state, theta)],
            [float(target.num_samples)],
            alpha=self.alpha,
            other_deltas=others,
            other_weights=counts,
        )
        notes = {"variant": self.variant, "alpha": self.alpha, "target_samples": target.num_samples}
        return UnlearnResult(clamp_running_variances(new), notes=notes)
