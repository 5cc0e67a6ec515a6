"""Deletion requests over time: the targets leave one after another, training goes on between.

``unlearn.forget_clients`` lists the requests in the order they arrive, one client each
(``[0, 3, 7]``: client 0 first, then 3, then 7). Between two requests the federation trains
``rounds_between`` rounds of ordinary FedAvg (the pre-training recipe) on the clients still in
it. `fednot.benchmark.sequence` runs it: each method unlearns every request from its own
current model, against a Retrain without every client that has left so far. The scenario a
seed builds here is the first request's; its methods and metrics are the client scenario's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fednot.benchmark.scenarios.base import Scenario, ScenarioDefinition
from fednot.config import RunConfig, ScenarioSettings
from fednot.config.sections import _require
from fednot.data.federated import Federation
from fednot.errors import ConfigError
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


@dataclass(frozen=True)
class SequenceScenario(ScenarioSettings):
    """Client requests in the order of ``unlearn.forget_clients``, with training between them."""

    kind: str = "sequence"
    rounds_between: int = 10  # ours: FedAvg rounds on the clients left between two requests

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.rounds_between >= 0, "scenario.rounds_between must be >= 0.")


def build(
    s: SequenceScenario, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    """The first request (its target leaves with all its data); the federation is unchanged."""
    return Scenario(s.kind, federation, ForgetRequest(clients=targets[:1]))


def describe(s: SequenceScenario, targets: tuple[int, ...]) -> str:
    """``clients 0, 3, 7 forgotten one after another (10 FedAvg rounds between requests)``."""
    order = ", ".join(str(t) for t in targets)
    return (
        f"clients {order} forgotten one after another, each a request of its own "
        f"({s.rounds_between} FedAvg rounds between requests)"
    )


SEQUENCE = ScenarioDefinition(
    SequenceScenario,
    build,
    describe,
    "Client requests one after another, with FedAvg training between them.",
    serves="client",
)


def refuse_sequence(config: RunConfig, what: str) -> None:
    """Raise `ConfigError` if ``config`` is a sequence: ``what`` serves a single request."""
    if config.scenario.kind == SequenceScenario.kind:
        raise ConfigError(
            f"{what} serves a single request, and scenario.kind = 'sequence' is a sequence of "
            "requests: run it with `fednot bench --scenario sequence` (or `fednot run`), or "
            "choose another scenario (scenario.kind = 'client' for one client-wise request)."
        )
