"""FUKD: subtract the target's accumulated updates, then repair by server-side distillation.

C. Wu, S. Zhu, P. Mitra, "Federated Unlearning with Knowledge Distillation", arXiv 2201.09441
(2022); docs/methods.md, "FUKD". No official code was found.

1. Subtraction: M' = M_T − Σ_{t=1..T} p_u^t ΔM_t^u, where p_u^t is the weight with which the
   target's update ΔM_t^u = θ_u^t − θ^t entered round t's FedAvg average. The server keeps the
   running sum per client during training (`HistorySpec(update_sums=True)`); several targets
   subtract each of their sums.
2. Distillation: the teacher is the original model M_T (frozen, eval mode), the student starts at
   M' and minimises τ²·KL(softmax(z_T/τ) ‖ softmax(z_S/τ)) over the server's unlabeled data.
   Clean proxy data never fires a backdoor trigger, so the backdoor does not transfer.

The server data is a held-out slice of the training pool reserved before partitioning
(``data.server_samples``): no client holds those samples, so FUKD uses no client's data, as the
paper requires. The engine hands it over as an `fednot.data.federated.UnlabeledSamples` view,
and FUKD never reads its labels. Without it the engine raises a `ConfigError` saying how to
reserve it.

Defaults (ours; the paper's values could not be confirmed): τ = 2, 10 epochs, SGD with lr 0.01
and momentum 0.9 (no weight decay), batch 64. ``epochs=0`` gives the subtraction alone.
The subtraction touches floating-point tensors only (parameters and BatchNorm statistics) and
leaves integer buffers at their trained values. Only client-wise removal is defined.

Costs: the teacher's forward pass and the student's training step per batch, at the server; no
client traffic before recovery.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fednot.errors import UnsupportedScenarioError
from fednot.federation.history import HistorySpec
from fednot.federation.local import LocalRecipe
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import float_in, non_negative_int, positive_float, positive_int
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range


def subtract_updates(state: StateDict, sums: Sequence[StateDict]) -> StateDict:
    """M_T − Σ_i S_i over the keys of the sums (float tensors); other tensors are untouched."""
    result = dict(state)
    for key, value in state.items():
        parts = [s[key] for s in sums if key in s]
        if parts:
            delta = torch.stack([p.double() for p in parts]).sum(0)
            result[key] = (value.double() - delta).to(value.dtype)
    return result


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """τ²·KL(softmax(z_T/τ) ‖ softmax(z_S/τ)), averaged over the batch."""
    log_student = nn.functional.log_softmax(student_logits / temperature, dim=1)
    log_teacher = nn.functional.log_softmax(teacher_logits / temperature, dim=1)
    kl = nn.functional.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


@register_unlearner
class FUKD(Unlearner):
    """Subtract the target's historical updates, then distil from the original at the server."""

    name = "fukd"
    title = "FUKD"
    requirements = Requirements(history=True, server_data=True)
    scenarios = frozenset({"client", "backdoor"})
    scenario_note = "it defines the removal of whole clients"
    search_space = {
        "epochs": IntRange(1, 40, log=True),
        "lr": Range(1e-3, 1e-1, log=True),
        "temperature": Range(1.0, 8.0, log=True),
    }

    def __init__(
        self,
        *,
        temperature: float = 2.0,
        epochs: int = 10,
        lr: float = 0.01,
        momentum: float = 0.9,
        batch_size: int = 64,
    ) -> None:
        self.temperature = positive_float(temperature, "temperature")
        self.epochs = non_negative_int(epochs, "epochs")
        self.lr = positive_float(lr, "lr")
        self.momentum = float_in(momentum, "momentum", 0, 1, high_open=True)
        self.batch_size = positive_int(batch_size, "batch_size")

    def history_spec(self) -> HistorySpec:
        """Each client's weighted updates, summed over rounds."""
        return HistorySpec(update_sums=True)

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Subtract the targets' sums, then distil; recovery follows in the engine."""
        if ctx.request.kind != "client":
            raise UnsupportedScenarioError(
                f"FUKD defines client removal only, not {ctx.request.kind}-wise forgetting. "
                "Supported scenarios: client-wise and backdoor (client-wise) forgetting."
            )
        sums = ctx.history.update_sums
        targets = ctx.request.clients
        subtracted = subtract_updates(state, [sums[u] for u in targets if u in sums])
        update = ctx.train_on_server(
            subtracted,
            ctx.server_data,
            "distill",
            recipe=self.recipe(),
            teacher=state,
            loss=functools.partial(distillation_loss, temperature=self.temperature),
        )
        notes = {"never_participated": [u for u in targets if u not in sums]}
        return UnlearnResult(update.state, notes=notes)

    def recipe(self) -> LocalRecipe:
        """The distillation's SGD (no weight decay) over the server's data."""
        return LocalRecipe(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=0.0,
        )
