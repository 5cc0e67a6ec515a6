"""Retrain: FedAvg from scratch on the retained data; exact unlearning and the gold standard.

NoT paper §6.1, baseline ①. Retrain starts from the run's initial weights (the same ones the
original model started from) and runs the pre-training recipe, stop rule and per-client random
streams on the retained clients only (ours; docs/methods.md, "Retrain"). It is therefore exactly
FedAvg without the forgotten data under the same seed, and every difference from the original
model is due to the forgotten data alone.
"""

from __future__ import annotations

from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.registry import register_unlearner


@register_unlearner
class Retrain(Unlearner):
    """Discard the trained model and train again on the retained data."""

    name = "retrain"
    title = "Retrain"
    requirements = Requirements()
    schedule = "train"  # the full pre-training recipe; nothing to tune

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Return the initial weights; the engine runs the full pre-training recipe from them."""
        return UnlearnResult(dict(ctx.initial_state), schedule="train")
