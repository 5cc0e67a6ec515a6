"""Backdoor removal (NoT paper, Table 7): the first target poisons its data, then leaves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fednot.benchmark.scenarios.base import Scenario, ScenarioDefinition
from fednot.config import ScenarioSettings
from fednot.config.sections import _require
from fednot.data.backdoor import Trigger, poison, triggered_test_set
from fednot.data.federated import ClientData, Federation, Samples
from fednot.data.source import ImageSet
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


@dataclass(frozen=True)
class BackdoorScenario(ScenarioSettings):
    """The first target stamps a BadNets trigger on ``poison_fraction`` of its training samples.

    They are relabelled ``target_label``; the client then leaves (client-wise).
    """

    kind: str = "backdoor"
    poison_fraction: float = 0.8  # the PGD authors' notebook poisons 80 % of the client's data
    trigger_size: int = 3  # a 3x3 checkerboard, close to ART's "pattern" trigger (ours)
    trigger_position: tuple[int, int] = (-4, -4)  # top-left corner; negative = from bottom/right
    target_label: int = 0  # poisoned samples are relabelled to this class

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 < self.poison_fraction <= 1, "scenario.poison_fraction must lie in (0, 1].")
        _require(self.trigger_size >= 1, "scenario.trigger_size must be >= 1.")


def build(
    s: BackdoorScenario, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    """The federation with the malicious client's samples poisoned, and the triggered test set."""
    trigger = Trigger(s.trigger_size, s.trigger_position, s.target_label)
    train = federation.client(targets[0]).train
    count = max(1, int(round(s.poison_fraction * len(train))))
    chosen = streams.numpy("poison").choice(train.indices.numpy(), size=count, replace=False)
    poisoned = poison(train.source, torch.from_numpy(np.sort(chosen)), trigger)
    federation = repoint(federation, train.source, poisoned)
    test = federation.test
    clean_test = ImageSet(test.source.images[test.indices], test.labels, test.source.classes)
    triggered = triggered_test_set(clean_test, trigger)
    triggered_view = Samples(triggered, torch.arange(len(triggered)))
    request = ForgetRequest(clients=targets)
    return Scenario(s.kind, federation, request, triggered_view, s.target_label)


def repoint(federation: Federation, old: ImageSet, new: ImageSet) -> Federation:
    """The federation with every view over ``old`` moved to ``new`` (same indices)."""

    def move(view: Samples) -> Samples:
        return Samples(new, view.indices) if view.source is old else view

    clients = [ClientData(c.id, move(c.train), move(c.val)) for c in federation.clients]
    server = None if federation.server is None else move(federation.server)
    return Federation(
        tuple(clients),
        move(federation.test),
        federation.preprocess,
        federation.num_classes,
        federation.input_shape,
        server,
    )


def describe(s: BackdoorScenario, targets: tuple[int, ...]) -> str:
    """What the malicious client does."""
    return (
        f"backdoor: client {targets[0]} stamps a {s.trigger_size}x{s.trigger_size} trigger at "
        f"{s.trigger_position} on {s.poison_fraction:.0%} of its samples, relabelled "
        f"{s.target_label}, and is forgotten"
    )


BACKDOOR = ScenarioDefinition(
    BackdoorScenario,
    build,
    describe,
    "The first target poisons its data with a trigger, then leaves (NoT paper, Table 7).",
)
