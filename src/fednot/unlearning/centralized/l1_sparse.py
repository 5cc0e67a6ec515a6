"""ℓ1-sparse: fine-tuning on the retained data with a decaying ℓ1 penalty.

J. Jia, J. Liu, P. Ram, Y. Yao, G. Liu, Y. Liu, P. Sharma, S. Liu, "Model Sparsity Can Simplify
Machine Unlearning", NeurIPS 2023 (arXiv 2304.04934). Official code: ``OPTML-Group/Unlearn-Sparse``
(``unlearn/FT.py``, ``FT_l1``); docs/methods.md, "L1-sparse".

The model fine-tunes on D_r alone with the loss CE + γ_e·‖θ‖₁, where ‖θ‖₁ sums |θ| over **all**
parameters, BatchNorm affine weights and biases included (paper; code). The penalty decays
linearly over the epochs, γ_e = γ·(1 − e/(E − E_no)) for e < E − E_no and 0 afterwards, with e
counted from 0 and E_no final epochs without the penalty; if E = E_no the penalty stays at γ
throughout (code: `l1_schedule`). The method never reads the forget set: its requirements declare
nothing, so the engine never hands D_f over.

Defaults:
- ``epochs=10``, ``lr=0.01``: the code's README commands for ℓ1-sparse (CIFAR-10);
- ``no_l1_epochs=0``: the code's default;
- ``gamma=1e-4``: ours, the top of the typical range 5e-5 to 1e-4 (the code calls it ``alpha``);
- SGD with ``momentum=0.9``, ``weight_decay=5e-4``, ``batch_size=256``: the code's common setup
  (its MultiStepLR milestones never fire within 10 epochs, so the learning rate is constant).

Ours: one seeded stream (``ctx.generator("train")``) shuffles every epoch and draws the
augmentation; "prune first, then unlearn" (the code's OMP masks) is not part of this baseline.
Cost: E epochs of training steps over D_r; the elementwise ℓ1 term is not counted
(docs/metrics.md, "Computation").
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from fednot.federation.backend import TrainJob
from fednot.federation.local import LocalRecipe
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.centralized.scope import CENTRALIZED, CENTRALIZED_NOTE
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import (
    expect,
    float_in,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range


def l1_schedule(epoch: int, epochs: int, no_l1_epochs: int, gamma: float) -> float:
    """γ_e, the ℓ1 weight of epoch ``epoch`` (counted from 0), as in the official code.

    γ_e = γ·(1 − e/(E − E_no)) for e < E − E_no, then 0; γ throughout if E = E_no.
    """
    active = epochs - no_l1_epochs
    if active == 0:
        return gamma
    if epoch < active:
        return gamma * (1.0 - epoch / active)
    return 0.0


def l1_norm(params: Iterable[Tensor]) -> Tensor:
    """‖θ‖₁: the sum of |θ| over every element of ``params`` (differentiable)."""
    return torch.stack([p.abs().sum() for p in params]).sum()


@register_unlearner
class L1Sparse(Unlearner):
    """Fine-tune on D_r with CE + γ_e·‖θ‖₁ (linear decay of γ_e over the epochs)."""

    name = "l1sparse"
    title = "ℓ1-sparse"
    requirements = Requirements()
    scenarios = CENTRALIZED
    scenario_note = CENTRALIZED_NOTE
    schedule = "none"
    # published: 10 epochs over a CIFAR-10 D_r (~141 batches of 256); MNIST-5k's D_r gives 12
    search_space = {
        "epochs": IntRange(1, 150, log=True),
        "lr": Range(1e-3, 1e-1, log=True),
        "gamma": Range(1e-5, 1e-3, log=True),
    }

    def __init__(
        self,
        *,
        epochs: int = 10,
        no_l1_epochs: int = 0,
        gamma: float = 1e-4,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        batch_size: int = 256,
    ) -> None:
        self.epochs = positive_int(epochs, "epochs")
        self.no_l1_epochs = non_negative_int(no_l1_epochs, "no_l1_epochs")
        in_budget = f"an int in [0, epochs={epochs}]"
        expect(no_l1_epochs <= epochs, "no_l1_epochs", in_budget, no_l1_epochs)
        self.gamma = non_negative_float(gamma, "gamma")
        self.lr = positive_float(lr, "lr")
        self.momentum = float_in(momentum, "momentum", 0, 1, high_open=True)
        self.weight_decay = non_negative_float(weight_decay, "weight_decay")
        self.batch_size = positive_int(batch_size, "batch_size")

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Fine-tune ``state`` on D_r for ``epochs`` epochs with the ℓ1 penalty; no recovery."""
        gammas = [
            l1_schedule(e, self.epochs, self.no_l1_epochs, self.gamma) for e in range(self.epochs)
        ]

        def penalty(model: nn.Module, epoch: int) -> Tensor | None:
            return gammas[epoch] * l1_norm(model.parameters()) if gammas[epoch] else None

        recipe = LocalRecipe(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )
        (holder,) = ctx.retained.ids  # one data holder: the centralized scenario
        (update,) = ctx.train([TrainJob(holder, state, ("train",), recipe, penalty=penalty)])
        out = update.state
        params = [n for n, _ in ctx.model.named_parameters()]
        l1 = float(l1_norm(out[n] for n in params))
        return UnlearnResult(out, schedule="none", notes={"gammas": gammas, "l1_norm": l1})
