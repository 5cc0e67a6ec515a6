"""Forgetting scenarios: what is forgotten, and what the data look like before training.

A `Scenario` is built once per seed, before pre-training, from ``[scenario]`` and
``unlearn.forget_clients``. It holds the federation the run trains on (for the backdoor
scenario: with the malicious client's samples poisoned), the forget request, and what the
scenario's extra metrics need (the triggered test set, the forgotten classes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fednot.config import RunConfig, ScenarioConfig
from fednot.data.backdoor import Trigger, poison, triggered_test_set
from fednot.data.federated import ClientData, Federation, Samples
from fednot.data.source import ImageSet
from fednot.errors import ConfigError
from fednot.paths import check_input_file
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


@dataclass(frozen=True, eq=False)
class Scenario:
    """A scenario made concrete for one seed.

    Attributes:
        kind: the scenario's name (``client``, ``class``, ``instance``, ``backdoor``,
            ``centralized``).
        federation: the federation to train on.
        request: what the targets ask to forget.
        triggered_test: the backdoor's triggered test set (true labels ≠ the target label).
        target_label: the backdoor's target label.
        classes: the forgotten classes of a class-wise request.
    """

    kind: str
    federation: Federation
    request: ForgetRequest
    triggered_test: Samples | None = None
    target_label: int | None = None
    classes: tuple[int, ...] | None = None


def build_scenario(config: RunConfig, federation: Federation, streams: SeedStreams) -> Scenario:
    """The scenario of ``config`` on ``federation``, seeded by the run's streams."""
    builder = _BUILDERS[config.scenario.kind]
    return builder(config.scenario, tuple(config.unlearn.forget_clients), federation, streams)


def _client(
    s: ScenarioConfig, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    return Scenario("client", federation, ForgetRequest(clients=targets))


def _class(
    s: ScenarioConfig, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    clients = federation.ids if s.class_scope == "federation" else targets
    request = ForgetRequest(clients=clients, classes=s.classes)
    return Scenario("class", federation, request, classes=s.classes)


def _instance(
    s: ScenarioConfig, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    if s.forget_ids is not None:
        ids = read_sample_ids(Path(s.forget_ids))
    else:
        ids = tuple(sorted(i for k in targets for i in _random_share(federation, k, s, streams)))
    return Scenario("instance", federation, ForgetRequest(clients=targets, indices=ids))


def _random_share(
    federation: Federation, client: int, s: ScenarioConfig, streams: SeedStreams
) -> list[int]:
    indices = federation.client(client).train.indices.numpy()
    count = max(1, int(round(s.forget_ratio * len(indices))))
    chosen = streams.numpy("request", client).choice(indices, size=count, replace=False)
    return [int(i) for i in chosen]


def _backdoor(
    s: ScenarioConfig, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
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
    return Scenario("backdoor", federation, request, triggered_view, s.target_label)


def _centralized(
    s: ScenarioConfig, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    if s.centralized_forget == "class":
        request = ForgetRequest(clients=federation.ids, classes=s.classes)
        return Scenario("centralized", federation, request, classes=s.classes)
    ids = tuple(sorted(_random_share(federation, federation.ids[0], s, streams)))
    return Scenario("centralized", federation, ForgetRequest(clients=federation.ids, indices=ids))


_BUILDERS: dict[
    str, Callable[[ScenarioConfig, tuple[int, ...], Federation, SeedStreams], Scenario]
] = {
    "client": _client,
    "class": _class,
    "instance": _instance,
    "backdoor": _backdoor,
    "centralized": _centralized,
}


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


def read_sample_ids(path: Path) -> tuple[int, ...]:
    """Sample ids from a file: a JSON list, or one integer per line (``#`` starts a comment)."""
    check_input_file(path, "the forget-ids file")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"Cannot read the forget-ids file {path}: {e}.") from e
    try:
        if text.lstrip().startswith("["):
            values = json.loads(text)
        else:
            values = [line.split("#")[0].strip() for line in text.splitlines()]
            values = [v for v in values if v]
        ids = tuple(int(v) for v in values)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"{path} must hold training-split sample ids (as in partition.json): a JSON list of "
            f"integers or one integer per line ({e})."
        ) from e
    if not ids:
        raise ConfigError(f"The forget-ids file {path} lists no sample.")
    return ids
