"""Forgetting scenarios: what is forgotten, and what the data look like before training.

A `Scenario` is built once per seed, before pre-training, from ``[scenario]`` and
``unlearn.forget_clients``. It holds the federation the run trains on (for the backdoor
scenario: with the malicious client's samples poisoned), the forget request, and what the
scenario's extra metrics need (the triggered test set, the forgotten classes). Each kind is one
module here, declaring its settings, builder and wording in a `ScenarioDefinition`; this package
registers the built-in kinds in a fixed order (a plugin calls `register_scenario` itself).
"""

from fednot.benchmark.scenarios import (
    backdoor,
    centralized,
    class_federation,
    class_wise,
    client,
    instance,
    sequence,
)
from fednot.benchmark.scenarios.backdoor import BackdoorScenario, repoint
from fednot.benchmark.scenarios.base import (
    Scenario,
    ScenarioDefinition,
    build_scenario,
    register_scenario,
    scenario_definition,
    scenario_definitions,
    shared_kind,
)
from fednot.benchmark.scenarios.centralized import CentralizedScenario
from fednot.benchmark.scenarios.class_federation import ClassFederationScenario
from fednot.benchmark.scenarios.class_wise import ClassScenario
from fednot.benchmark.scenarios.instance import InstanceScenario, read_sample_ids
from fednot.benchmark.scenarios.sequence import SequenceScenario

for _definition in (  # the built-in kinds, in the order of listings
    client.CLIENT,
    class_wise.CLASS,
    instance.INSTANCE,
    backdoor.BACKDOOR,
    centralized.CENTRALIZED,
    class_federation.CLASS_FEDERATION,
    sequence.SEQUENCE,
):
    register_scenario(_definition)

__all__ = [
    "BackdoorScenario",
    "CentralizedScenario",
    "ClassFederationScenario",
    "ClassScenario",
    "InstanceScenario",
    "Scenario",
    "ScenarioDefinition",
    "SequenceScenario",
    "backdoor",
    "build_scenario",
    "centralized",
    "class_federation",
    "class_wise",
    "client",
    "instance",
    "read_sample_ids",
    "register_scenario",
    "repoint",
    "scenario_definition",
    "scenario_definitions",
    "sequence",
    "shared_kind",
]
