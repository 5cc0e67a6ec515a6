"""BadT: unlearning by distillation from a competent and an incompetent teacher.

V. S. Chundawat, A. K. Tarun, M. Mandal, M. Kankanhalli, "Can Bad Teaching Induce Forgetting?
Unlearning in Deep Networks Using an Incompetent Teacher", AAAI 2023 (arXiv 2205.08096). Code:
``vikram2000b/bad-teaching-unlearning/unlearn.py``; ``blindspot`` in
``if-loops/selective-synaptic-dampening/src/forget_random_strategies.py`` (docs/methods.md,
"BadT").

The student starts from the original model. It is distilled on D_f (flag "forget") together with
a random fraction of D_r (flag "retain"), shuffled together. Per sample, the target distribution
is the incompetent teacher's softmax(z/T) for forget samples and the competent teacher's for
retain samples (`target_distribution`). The loss is KL(target ‖ softmax(z_s/T)) with the code's
``F.kl_div`` default mean reduction over all batch × class entries (`bad_teacher_loss`).

- The competent teacher is the frozen original model; the incompetent one is a fresh seeded
  random initialisation of the architecture (paper). Both run in eval mode (code).
- Defaults (code, ``blindspot``): Adam lr 1e-4 with no weight decay, 1 epoch, batch 256, T = 1,
  ``retain_fraction`` 0.3 of D_r drawn without replacement; the subset has ⌊0.3·|D_r|⌋ samples,
  as the code's ``int(0.3 * len(...))``.
- Ours: the student trains in train mode; augmentation (where the data set has it) applies to
  the batch all three models see.

Cost per batch: two teacher forward passes plus the student's train step. The two teacher copies
are transient working memory: ``notes["working_bytes"]`` = 2 · bytes(θ) (docs/metrics.md,
"Storage").
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from fednot.errors import ConfigError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import state_bytes
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.centralized.rand_label import fetch_joint
from fednot.unlearning.centralized.scope import CENTRALIZED, CENTRALIZED_NOTE
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import positive_float, positive_int, unit_float
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range


def target_distribution(
    competent: Tensor, incompetent: Tensor, is_forget: Tensor, temperature: float = 1.0
) -> Tensor:
    """Per-sample teacher: softmax(incompetent/T) where ``is_forget``, else softmax(competent/T)."""
    good = nn.functional.softmax(competent / temperature, dim=1)
    bad = nn.functional.softmax(incompetent / temperature, dim=1)
    return torch.where(is_forget.view(-1, 1), bad, good)


def bad_teacher_loss(student: Tensor, target: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(target ‖ softmax(student/T)), averaged over all B × C entries (``kl_div``'s "mean").

    Equals the per-sample KL divergence's batch mean divided by the number of classes.
    """
    log_student = nn.functional.log_softmax(student / temperature, dim=1)
    return (torch.xlogy(target, target) - target * log_student).mean()


def retain_subset_size(retained: int, fraction: float) -> int:
    """How many retained samples BadT uses: ⌊fraction · retained⌋ (the code's ``int``)."""
    return int(fraction * retained)


@register_unlearner
class BadT(Unlearner):
    """Distil the original model on retained data and a random model on forget data."""

    name = "badt"
    title = "BadT"
    requirements = Requirements(forget_data=True)
    scenarios = CENTRALIZED
    scenario_note = CENTRALIZED_NOTE
    schedule = "none"
    # published: 1 epoch over a CIFAR-10 D_f + 30 % of D_r (~58 batches of 256); MNIST-5k: ~5
    search_space = {"epochs": IntRange(1, 20, log=True), "lr": Range(1e-5, 1e-2, log=True)}

    def __init__(
        self,
        *,
        epochs: int = 1,
        lr: float = 1e-4,
        batch_size: int = 256,
        temperature: float = 1.0,
        retain_fraction: float = 0.3,
    ) -> None:
        self.epochs = positive_int(epochs, "epochs")
        self.lr = positive_float(lr, "lr")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.temperature = positive_float(temperature, "temperature")
        self.retain_fraction = unit_float(retain_fraction, "retain_fraction")
        self.retain_fraction = float(retain_fraction)

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Distil the student from both teachers; the result is final (no recovery follows)."""
        forget, retained = ctx.forget_data, ctx.retained.pooled_train()
        if len(forget) == 0:
            raise ConfigError("BadT distils on the forget data, but the request selects none.")
        count = retain_subset_size(len(retained), self.retain_fraction)
        retain = retained.subsample(count, ctx.generator("retain_subset"))
        student = ctx.model
        student.load_state_dict(state)
        teachers = self._teachers(student.to(ctx.device), ctx)
        optimizer = torch.optim.Adam(student.parameters(), lr=self.lr)
        generator = ctx.generator("train")
        steps = 0
        for _ in range(self.epochs):
            order = torch.randperm(len(forget) + len(retain), generator=generator)
            for start in range(0, len(order), self.batch_size):
                positions = order[start : start + self.batch_size]
                images, _, is_forget = fetch_joint(forget, retain, positions)
                x = ctx.preprocess(images, generator).to(ctx.device)
                self._step(student, teachers, x, is_forget.to(ctx.device), optimizer)
                shape = tuple(x.shape)
                ctx.add_costs(flops=ctx.flops.train_step(shape) + 2 * ctx.flops.forward(shape))
                steps += 1
        notes = {
            "steps": steps,
            "forget_samples": len(forget),
            "retain_samples": len(retain),
            # the two teachers (docs/metrics.md, "Storage")
            "working_bytes": 2 * state_bytes(state),
        }
        return UnlearnResult(clone_state(student.state_dict()), schedule="none", notes=notes)

    @staticmethod
    def _teachers(student: nn.Module, ctx: UnlearnContext) -> tuple[nn.Module, nn.Module]:
        """The competent (a frozen copy of ``student``) and incompetent (random) teachers."""
        competent = copy.deepcopy(student).eval()
        incompetent = copy.deepcopy(student)
        incompetent.load_state_dict(ctx.fresh_state("incompetent"))
        return competent, incompetent.eval()

    def _step(
        self,
        student: nn.Module,
        teachers: tuple[nn.Module, nn.Module],
        x: Tensor,
        is_forget: Tensor,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        """One distillation step of the student towards the per-sample teacher."""
        student.train()
        with torch.no_grad():
            good, bad = (teacher(x) for teacher in teachers)
            target = target_distribution(good, bad, is_forget, self.temperature)
        loss = bad_teacher_loss(student(x), target, self.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
