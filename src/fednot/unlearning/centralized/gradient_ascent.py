"""GA: unlearning by gradient ascent on the forget data.

A. Thudi, G. Deza, V. Chandrasekaran, N. Papernot, "Unrolling SGD: Understanding Factors
Influencing Machine Unlearning", IEEE EuroS&P 2022 (arXiv 2109.13398). The paper's step adds
the forget samples' gradients back once; the literature's GA, which fednot ships, is the
multi-epoch form of ``OPTML-Group/Unlearn-Sparse/unlearn/GA.py`` (docs/methods.md, "GA"):
minimise −CE on D_f only, in train mode, with SGD. D_r is never read.

Defaults (code: the ``README.md`` command and ``arg_parser.py`` of ``OPTML-Group/Unlearn-Sparse``):
SGD lr 1e-4 for 5 epochs, momentum 0.9, weight decay 5e-4, batch 256. Ours: a constant learning
rate (the code's MultiStepLR milestones never fire in 5 epochs) and no warm-up.

Cost: E epochs of train steps over |D_f| samples only.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from fednot.errors import ConfigError
from fednot.federation.backend import TrainJob
from fednot.federation.local import LocalRecipe
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.centralized.scope import CENTRALIZED, CENTRALIZED_NOTE
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import non_negative_float, positive_float, positive_int
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range


def ascent_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The loss GA minimises: −CE(logits, labels), batch mean."""
    return -nn.functional.cross_entropy(logits, labels)


@register_unlearner
class GA(Unlearner):
    """Ascend the cross-entropy on D_f for a few epochs; D_r is never read."""

    name = "ga"
    title = "GA"
    requirements = Requirements(forget_data=True)
    scenarios = CENTRALIZED
    scenario_note = CENTRALIZED_NOTE
    schedule = "none"
    # published: 5 epochs over a CIFAR-10 D_f (~16 batches of 256); MNIST-5k's D_f gives 2
    search_space = {"epochs": IntRange(1, 50, log=True), "lr": Range(1e-5, 1e-2, log=True)}

    def __init__(
        self,
        *,
        epochs: int = 5,
        lr: float = 1e-4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        batch_size: int = 256,
    ) -> None:
        self.epochs = positive_int(epochs, "epochs")
        self.lr = positive_float(lr, "lr")
        self.momentum = non_negative_float(momentum, "momentum")
        self.weight_decay = non_negative_float(weight_decay, "weight_decay")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.batch_size = batch_size

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Run the ascent epochs on D_f; the result is final (no recovery follows)."""
        forget = ctx.forget_data
        if len(forget) == 0:
            raise ConfigError(
                "GA ascends the loss on the forget data, but the request selects none."
            )
        recipe = LocalRecipe(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )
        holder = ctx.request.clients[0]
        job = TrainJob(holder, state, ("train",), recipe, "forget", loss=ascent_loss)
        (update,) = ctx.train([job])
        steps = self.epochs * math.ceil(len(forget) / self.batch_size)
        notes = {"steps": steps, "forget_samples": len(forget)}
        return UnlearnResult(update.state, schedule="none", notes=notes)
