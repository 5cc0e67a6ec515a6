"""What the engine's stages return: a pre-trained model and a method's unlearned model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fednot.federation.costs import Costs
from fednot.federation.fedavg import TrainLog
from fednot.federation.history import TrainingHistory
from fednot.types import StateDict


@dataclass(frozen=True)
class Trained:
    """A pre-trained global model, the rounds that produced it, and the recorded history."""

    state: StateDict
    log: TrainLog
    cached: bool = False
    history: TrainingHistory | None = None


@dataclass(frozen=True)
class UnlearnOutcome:
    """A method's unlearned model, its costs and its recovery rounds.

    Attributes:
        method: the method's registry name.
        state: the final global state.
        step_costs: the method's own step (before recovery).
        log: the recovery rounds (Retrain: all its training rounds).
        notes: what the method recorded (e.g. the negated layers).
        start: metrics right after the method's step, before recovery (round 0 of the curves).
        cached: whether the result came from the cache.
        storage_bytes: the history the server had to keep for this method.
        step_state: the global state right after the method's step, before recovery (``None``
            for a method trained anew, which takes no step: its step state is a fresh model).
    """

    method: str
    state: StateDict
    step_costs: Costs
    log: TrainLog
    notes: dict[str, Any] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    storage_bytes: int = 0
    step_state: StateDict | None = None

    @property
    def costs(self) -> Costs:
        """Unlearning step plus recovery: what the NoT paper's Comm. and Comp. columns count."""
        return self.step_costs + self.log.costs
