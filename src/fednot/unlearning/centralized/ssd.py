"""SSD: selective synaptic dampening, unlearning without any training.

J. Foster, S. Schoepf, A. Brintrup, "Fast Machine Unlearning Without Retraining Through Selective
Synaptic Dampening", AAAI 2024 (arXiv 2308.07707). Official code:
``if-loops/selective-synaptic-dampening`` (``src/ssd.py``, ``src/forget_random_main.py``);
docs/methods.md, "SSD".

1. Importances are diagonal Fisher estimates from batch gradients, I = mean over mini-batches of
   (∂CE/∂θ)², with the model in eval mode (paper; code): I_f on D_f and I_D on the full training
   data D = D_r ∪ D_f (`diagonal_fisher`).
2. Every parameter element with I_f > α·I_D is dampened, θ ← θ·min(λ·I_D/I_f, 1); the others are
   untouched, so no weight ever grows (paper; code: `dampen`). Buffers (BatchNorm
   statistics) are never changed.

Defaults: ``alpha=10`` and ``lam=1`` (paper and code, for ResNet-18 and ViT on CIFAR; the code
calls them ``selection_weighting`` and ``dampening_constant``). ``batch_size=128`` for **both**
passes is ours: the code uses 128 for D_f but the run's batch size for D, and the scale of I
depends on the batch size, so the comparison I_f > α·I_D is only fair with one batch size.
Ours too: D is D_r followed by D_f, both passes read their data in view order without
augmentation (the code's loaders do not shuffle), so SSD draws no random numbers at all.

Cost: one training step (forward and backward) per batch of each pass; the dampening itself is
elementwise and not counted (docs/metrics.md, "Computation").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from fednot.data.federated import Samples, concat
from fednot.errors import ConfigError
from fednot.federation.aggregate import clone_state
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.centralized.scope import CENTRALIZED, CENTRALIZED_NOTE
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import expect, non_negative_float, positive_int
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range


def diagonal_fisher(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> StateDict:
    """Mean over ``batches`` of the squared gradient of the batch-mean cross-entropy.

    The model is used as it is (SSD puts it in eval mode first); its ``.grad`` fields are left
    untouched. Parameters that receive no gradient get zero importance.

    Args:
        model: the network; one importance tensor per named parameter.
        batches: preprocessed ``(inputs, labels)`` on the model's device.

    Returns:
        Importances by parameter name, shaped like the parameters.
    """
    params = dict(model.named_parameters())
    totals = {name: torch.zeros_like(p) for name, p in params.items()}
    count = 0
    for x, labels in batches:
        loss = nn.functional.cross_entropy(model(x), labels)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, grad in zip(params, grads, strict=True):
            if grad is not None:
                totals[name] += grad.detach() ** 2
        count += 1
    if count == 0:
        raise ConfigError("SSD needs at least one batch to estimate importances, got none.")
    return {name: total / count for name, total in totals.items()}


def dampen(
    params: Mapping[str, Tensor],
    importance_forget: Mapping[str, Tensor],
    importance_full: Mapping[str, Tensor],
    alpha: float,
    lam: float,
) -> StateDict:
    """θ ← θ·min(λ·I_D/I_f, 1) wherever I_f > α·I_D; every other element is kept exactly.

    Args:
        params: the tensors to dampen, by name (parameters, not buffers).
        importance_forget: I_f, one tensor per name in ``params``.
        importance_full: I_D, one tensor per name in ``params``.
        alpha: the selection threshold α ≥ 0 (``inf`` selects nothing).
        lam: the dampening constant λ ≥ 0.

    Returns:
        New tensors by name; no element's magnitude exceeds the input's.
    """
    missing = sorted(set(params) - (set(importance_forget) & set(importance_full)))
    if missing:
        raise ConfigError(f"Expected importances for every parameter, missing {missing}.")
    out: StateDict = {}
    for name, theta in params.items():
        i_f, i_d = importance_forget[name], importance_full[name]
        selected = i_f > alpha * i_d  # false where α·I_D is NaN (α = ∞, I_D = 0)
        factor = (lam * i_d / torch.where(selected, i_f, 1.0)).clamp(max=1.0)
        out[name] = torch.where(selected, theta * factor.to(theta.dtype), theta)
    return out


@register_unlearner
class SSD(Unlearner):
    """Dampen the parameters far more important to D_f than to D; no training."""

    name = "ssd"
    title = "SSD"
    requirements = Requirements(forget_data=True)
    scenarios = CENTRALIZED
    scenario_note = CENTRALIZED_NOTE
    schedule = "none"
    # no training; the importances average ~32 batches of 128 over a CIFAR-10 D_f, 3 over
    # MNIST-5k's: batch sizes down to 8 cover the published number of batches
    search_space = {
        "alpha": Range(1.0, 100.0, log=True),
        "lam": Range(0.1, 10.0, log=True),
        "batch_size": IntRange(8, 128, log=True),
    }

    def __init__(self, *, alpha: float = 10.0, lam: float = 1.0, batch_size: int = 128) -> None:
        self.alpha = non_negative_float(alpha, "alpha")  # inf selects nothing
        self.lam = non_negative_float(lam, "lam")
        expect(math.isfinite(lam), "lam", "a non-negative finite float", lam)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.batch_size = batch_size

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Compute I_f and I_D in eval mode, then dampen; the result is final (no recovery)."""
        forget = ctx.forget_data
        if len(forget) == 0:
            raise ConfigError("SSD needs forget samples, but the request selects none.")
        full = concat([ctx.retained.pooled_train(), forget])
        model = ctx.model
        model.load_state_dict(state)
        model.to(ctx.device).eval()
        importance_forget = diagonal_fisher(model, self._batches(forget, ctx))
        importance_full = diagonal_fisher(model, self._batches(full, ctx))
        params = {name: p.detach() for name, p in model.named_parameters()}
        dampened = dampen(params, importance_forget, importance_full, self.alpha, self.lam)
        out = clone_state(state)
        out.update(clone_state(dampened))
        changed = sum(int((dampened[n] != params[n]).sum()) for n in params)
        total = sum(p.numel() for p in params.values())
        notes = {"dampened": changed, "parameters": total, "full_samples": len(full)}
        return UnlearnResult(out, schedule="none", notes=notes)

    def _batches(self, data: Samples, ctx: UnlearnContext) -> Iterable[tuple[Tensor, Tensor]]:
        """``data`` in view order, without augmentation; counts one train step per batch."""
        for images, labels in data.batches(self.batch_size):
            x = ctx.preprocess(images).to(ctx.device)
            ctx.add_costs(flops=ctx.flops.train_step(tuple(x.shape)))
            yield x, labels.to(ctx.device)
