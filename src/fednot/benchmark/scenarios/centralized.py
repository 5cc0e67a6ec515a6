"""Centralized unlearning (NoT paper, Table 2): one data holder forgets part of its data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fednot.benchmark.scenarios.base import (
    Scenario,
    ScenarioDefinition,
    random_share,
)
from fednot.config import DataConfig, ScenarioSettings, UnlearnConfig
from fednot.config.rules import changed
from fednot.config.sections import _require
from fednot.data.federated import Federation
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


@dataclass(frozen=True)
class CentralizedScenario(ScenarioSettings):
    """One data holder (``data.num_clients = 1``) forgets ``forget_ratio`` of its training data.

    At random, or the ``classes`` with ``centralized_forget = "class"``.
    """

    kind: str = "centralized"
    centralized_forget: Literal["random", "class"] = "random"
    forget_ratio: float = 0.5  # the `centralized` scenario preset uses 10 % (paper)
    classes: tuple[int, ...] = (0,)  # with centralized_forget = "class"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 < self.forget_ratio < 1, "scenario.forget_ratio must lie in (0, 1).")
        _require(len(self.classes) > 0, "scenario.classes must name at least one class.")

    def check(self, data: DataConfig, unlearn: UnlearnConfig) -> None:
        """One data holder."""
        _require(
            data.num_clients == 1,
            "The centralized scenario has one data holder: set data.num_clients = 1 (the "
            "`centralized` scenario preset does).",
        )

    def unused(self) -> list[str]:
        """``classes`` when forgetting at random, ``forget_ratio`` when forgetting classes."""
        unused = "classes" if self.centralized_forget == "random" else "forget_ratio"
        if changed(self, unused):
            why = f'scenario.centralized_forget is {"not " * (unused == "classes")}"class"'
            return [f"scenario.{unused} ({why})"]
        return []


def build(
    s: CentralizedScenario, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    """The holder's classes, or a seeded share of its samples; the federation is unchanged."""
    if s.centralized_forget == "class":
        request = ForgetRequest(clients=federation.ids, classes=s.classes)
        return Scenario(s.kind, federation, request, classes=s.classes)
    ids = tuple(sorted(random_share(federation, federation.ids[0], s.forget_ratio, streams)))
    return Scenario(s.kind, federation, ForgetRequest(clients=federation.ids, indices=ids))


def describe(s: CentralizedScenario, targets: tuple[int, ...]) -> str:
    """``centralized: a random 10% of the training data forgotten``."""
    if s.centralized_forget == "class":
        return f"centralized: classes {list(s.classes)} forgotten"
    return f"centralized: a random {s.forget_ratio:.0%} of the training data forgotten"


CENTRALIZED = ScenarioDefinition(
    CentralizedScenario,
    build,
    describe,
    "One data holder forgets `forget_ratio` of its data or the `classes` (NoT paper, Table 2).",
)
