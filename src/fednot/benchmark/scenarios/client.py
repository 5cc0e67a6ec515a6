"""Client-wise forgetting (the NoT paper's Table 1): the targets leave with all their data."""

from __future__ import annotations

from fednot.benchmark.scenarios.base import Scenario, ScenarioDefinition
from fednot.config import ScenarioSettings
from fednot.data.federated import Federation
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


def build(
    s: ScenarioSettings, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    """The targets' whole data are forgotten; the federation is unchanged."""
    return Scenario(s.kind, federation, ForgetRequest(clients=targets))


def describe(s: ScenarioSettings, targets: tuple[int, ...]) -> str:
    """``clients [0] forgotten (client-wise)``."""
    return f"clients {list(targets)} forgotten (client-wise)"


CLIENT = ScenarioDefinition(
    ScenarioSettings,
    build,
    describe,
    "The targets leave with all their data (NoT paper, Table 1).",
)
