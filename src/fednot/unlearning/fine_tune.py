"""FT: fine-tune the trained model on the retained data ("natural forgetting").

NoT paper §6.1, baseline ②. FT is NoT without the negation: it runs exactly the recovery budget
and stop rule NoT gets, so the comparison isolates the effect of negating (docs/methods.md,
"FT").
"""

from __future__ import annotations

from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.registry import register_unlearner


@register_unlearner
class FT(Unlearner):
    """Continue FedAvg from the trained model on the retained data only."""

    name = "ft"
    title = "FT"
    requirements = Requirements()

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Change nothing; the engine's recovery phase does the fine-tuning."""
        return UnlearnResult(dict(state))
