"""The contract between an unlearning method and the engine.

A method is a class with one abstract hook, `Unlearner.unlearn`, and a class attribute
`Unlearner.requirements` declaring what it needs. The engine (`fednot.benchmark.experiment`) owns
everything else: the forget split, the recovery rounds that follow the method's own step,
seeding, cost meters and evaluation. The `fednot.unlearning.context.UnlearnContext` a method
receives exposes only what its requirements declare; reaching for anything else raises
`MissingRequirementError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from torch import nn

from fednot.federation.costs import Costs
from fednot.federation.history import HistorySpec
from fednot.types import StateDict
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.requirements import Requirements
from fednot.unlearning.space import Space

__all__ = [
    "ALL_SCENARIOS",
    "FEDERATED_SCENARIOS",
    "Requirements",
    "Schedule",
    "UnlearnResult",
    "Unlearner",
]


Schedule = Literal["recovery", "train", "none"]

FEDERATED_SCENARIOS: frozenset[str] = frozenset({"client", "class", "instance", "backdoor"})
"""Scenarios with a federation of several clients."""
ALL_SCENARIOS: frozenset[str] = FEDERATED_SCENARIOS | {"centralized"}


@dataclass(frozen=True)
class UnlearnResult:
    """What a method's own step returns; the engine then runs recovery from ``state``.

    Attributes:
        state: the global state after the method's step.
        schedule: ``"recovery"``: the run's fine-tuning budget and stop rule; ``"none"``: no
            recovery, the method's step is the whole unlearning (centralized baselines with
            their own epochs); ``"train"``: the full pre-training recipe with its per-client
            streams, from the initial weights (Retrain).
        costs: communication and computation of the method's own step.
        notes: facts worth recording (e.g. the layers NoT negated).
    """

    state: StateDict
    schedule: Schedule = "recovery"
    costs: Costs = Costs()
    notes: dict[str, Any] = field(default_factory=dict)


class Unlearner(ABC):
    """Base class of every unlearning method.

    Subclasses set ``name`` (the registry name) and ``requirements``, take their hyperparameters
    as keyword-only constructor arguments with the paper's defaults, and implement `unlearn`.
    They may declare ``search_space`` (what ``fednot tune`` varies) and must declare
    ``schedule`` when their step is not followed by the engine's recovery. A method declaring
    ``schedule = "train"`` (Retrain) takes no step in the engine: it is the pre-training recipe
    run anew from the run's initial weights on the retained clients, cached under its name (its
    `unlearn` returns those weights, for drivers that run the training themselves, such as the
    Flower `UnlearningStrategy`). Where a deployment runs a step (on the server or on the
    target's node) is decided beside the contract: `fednot.integrations.placement`.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""  # display name as in its paper (default: ``name``)
    requirements: ClassVar[Requirements] = Requirements()
    scenarios: ClassVar[frozenset[str]] = ALL_SCENARIOS  # the scenarios the method can serve
    scenario_note: ClassVar[str] = ""  # why it cannot serve the others
    # what its `unlearn` returns as `UnlearnResult.schedule`: "recovery" (the engine's recovery
    # follows, so `fednot tune` also tunes its recovery learning rate), "none" or "train" (the
    # engine trains anew instead of stepping; see the class docstring)
    schedule: ClassVar[Schedule] = "recovery"
    # what `fednot tune` may vary: constructor option -> `fednot.unlearning.space` type, each
    # holding the published value (the constructor default); docs/tuning.md
    search_space: ClassVar[Mapping[str, Space]] = {}

    def not_applicable(self, scenario: str) -> str | None:
        """Why the method cannot serve ``scenario``, or ``None`` if it can."""
        if scenario in self.scenarios:
            return None
        note = f" ({self.scenario_note})" if self.scenario_note else ""
        return (
            f"{self.title or self.name} does not apply to the {scenario} scenario{note}; it "
            f"serves: {', '.join(sorted(self.scenarios))}."
        )

    def history_spec(self) -> HistorySpec | None:
        """What the method needs recorded during training (``None``: no history)."""
        return None

    def validate(self, model: nn.Module) -> None:  # noqa: B027 - an optional hook
        """Check the method's options against ``model`` before any training (default: nothing)."""

    @abstractmethod
    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Apply the method's own step to the trained global ``state``."""

    def options(self) -> dict[str, Any]:
        """The method's resolved hyperparameters, for the record (public attributes)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
