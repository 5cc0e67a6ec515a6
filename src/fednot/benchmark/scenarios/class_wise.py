"""Class-wise forgetting: the targets forget their samples of some classes and stay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fednot.benchmark.scenarios.base import Scenario, ScenarioDefinition
from fednot.config import DataConfig, ScenarioSettings, UnlearnConfig
from fednot.config.sections import _require
from fednot.data.federated import Federation
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


@dataclass(frozen=True)
class ClassScenario(ScenarioSettings):
    """``classes`` forgotten by the targets, or by every client (``class_scope = "federation"``).

    The targets stay and recover on the rest of their data.
    """

    kind: str = "class"
    classes: tuple[int, ...] = (0,)  # the classes to forget (ours: class 0)
    class_scope: Literal["target", "federation"] = "target"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(len(self.classes) > 0, "scenario.classes must name at least one class.")

    def check(self, data: DataConfig, unlearn: UnlearnConfig) -> None:
        """Nothing: the targets stay, so every client may ask."""


def build(
    s: ClassScenario, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    """A class-wise request over the targets (or every client); the federation is unchanged."""
    clients = federation.ids if s.class_scope == "federation" else targets
    request = ForgetRequest(clients=clients, classes=s.classes)
    return Scenario(s.kind, federation, request, classes=s.classes)


def describe(s: ClassScenario, targets: tuple[int, ...]) -> str:
    """``classes [0] of every client forgotten (class-wise)``."""
    scope = "every client" if s.class_scope == "federation" else f"clients {list(targets)}"
    return f"classes {list(s.classes)} of {scope} forgotten (class-wise)"


CLASS = ScenarioDefinition(
    ClassScenario,
    build,
    describe,
    "The targets forget their samples of `classes` and stay.",
)
