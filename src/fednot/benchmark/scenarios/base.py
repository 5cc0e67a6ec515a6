"""What a forgetting scenario is: its settings, how it is built for a seed, and its registry.

A scenario kind is one `ScenarioDefinition`, registered with `register_scenario`: its settings
class (the keys of ``[scenario]`` for that kind, `fednot.config.scenario`), a builder that turns
the settings, the targets (``unlearn.forget_clients``), the federation and the seed's streams
into a `Scenario`, and the kind whose methods and metrics it shares (``serves``: a method lists
the kinds it can serve, a metric the kinds it applies to). A kind that varies another (another
default, another builder) names that kind there, so every method and metric treats it alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from fednot.config import RunConfig, ScenarioSettings, register_scenario_settings
from fednot.data.federated import Federation, Samples
from fednot.errors import ConfigError
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


@dataclass(frozen=True, eq=False)
class Scenario:
    """A scenario made concrete for one seed.

    Attributes:
        kind: the scenario's registered kind.
        federation: the federation to train on.
        request: what the targets ask to forget.
        triggered_test: the backdoor's triggered test set (true labels ≠ the target label).
        target_label: the backdoor's target label.
        classes: the forgotten classes of a class-wise request.
        serves: the kind whose methods and metrics apply, set by `build_scenario` from the
            definition (a builder leaves it empty).
    """

    kind: str
    federation: Federation
    request: ForgetRequest
    triggered_test: Samples | None = None
    target_label: int | None = None
    classes: tuple[int, ...] | None = None
    serves: str = ""


Builder = Callable[[Any, tuple[int, ...], Federation, SeedStreams], Scenario]
"""``(settings, targets, federation, streams) -> Scenario`` of kind ``settings.kind``."""

Describer = Callable[[Any, tuple[int, ...]], str]
"""``(settings, targets) -> text``: what is forgotten, in a few words (results.md's setup)."""


@dataclass(frozen=True)
class ScenarioDefinition:
    """A registered scenario kind.

    Attributes:
        settings: its settings class; the default of its ``kind`` field is the kind's name.
        build: its `Builder`.
        describe: its `Describer`.
        description: one sentence for listings (``fednot methods``, the docs).
        serves: the kind whose methods and metrics apply to it (empty: its own kind).
    """

    settings: type[ScenarioSettings]
    build: Builder
    describe: Describer
    description: str
    serves: str = ""

    @property
    def kind(self) -> str:
        """The registered name."""
        return self.settings().kind

    @property
    def shared_kind(self) -> str:
        """The kind whose methods and metrics apply: ``serves``, else its own."""
        return self.serves or self.kind


_DEFINITIONS: dict[str, ScenarioDefinition] = {}


def register_scenario(definition: ScenarioDefinition) -> ScenarioDefinition:
    """Register ``definition`` (and its settings class, so configurations can name it)."""
    register_scenario_settings(definition.settings)
    kind = definition.kind
    if kind in _DEFINITIONS and _DEFINITIONS[kind] != definition:
        raise ConfigError(f"A scenario kind {kind!r} is already registered.")
    _DEFINITIONS[kind] = definition
    return definition


def scenario_definition(kind: str) -> ScenarioDefinition:
    """The registered definition of ``kind``."""
    if kind not in _DEFINITIONS:
        raise ConfigError(f"Unknown scenario kind {kind!r}. Kinds: {', '.join(_DEFINITIONS)}.")
    return _DEFINITIONS[kind]


def scenario_definitions() -> list[ScenarioDefinition]:
    """Every registered definition, in registration order."""
    return list(_DEFINITIONS.values())


def shared_kind(kind: str) -> str:
    """The kind whose methods and metrics apply to the scenario ``kind``."""
    return scenario_definition(kind).shared_kind


def build_scenario(config: RunConfig, federation: Federation, streams: SeedStreams) -> Scenario:
    """The scenario of ``config`` on ``federation``, seeded by the run's streams."""
    definition = scenario_definition(config.scenario.kind)
    targets = tuple(config.unlearn.forget_clients)
    built = definition.build(config.scenario, targets, federation, streams)
    return replace(built, serves=definition.shared_kind)


def random_share(
    federation: Federation, client: int, ratio: float, streams: SeedStreams
) -> list[int]:
    """A seeded ``ratio`` of ``client``'s training sample ids (at least one)."""
    indices = federation.client(client).train.indices.numpy()
    count = max(1, int(round(ratio * len(indices))))
    chosen = streams.numpy("request", client).choice(indices, size=count, replace=False)
    return [int(i) for i in chosen]
