"""Configuration: frozen dataclasses, one per concern, and the run that groups them.

A TOML file plus ``--set key=value`` overrides load into these classes (`fednot.configio`);
unknown keys and wrong types are errors. The resolved configuration is written next to every
result. `sections` holds the sections, `methods` the method selector of ``unlearn.methods``,
`scenario` each scenario kind's settings, `rules` the checks across sections, `run` the
`RunConfig` that groups them.
"""

from fednot.config.methods import CENTRALIZED, FEDERATED, METHOD_GROUPS, select_methods
from fednot.config.run import RunConfig
from fednot.config.scenario import (
    ScenarioSettings,
    register_scenario_settings,
    scenario_kinds,
    scenario_settings_class,
)
from fednot.config.sections import (
    FLOAT32_MAX,
    MEMORY_FORMATS,
    TUNED_RECOVERY_LR,
    DataConfig,
    EvalConfig,
    ModelConfig,
    PartitionScheme,
    TrainConfig,
    UnlearnConfig,
)

__all__ = [
    "CENTRALIZED",
    "FEDERATED",
    "FLOAT32_MAX",
    "MEMORY_FORMATS",
    "METHOD_GROUPS",
    "TUNED_RECOVERY_LR",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "PartitionScheme",
    "RunConfig",
    "ScenarioSettings",
    "TrainConfig",
    "UnlearnConfig",
    "register_scenario_settings",
    "scenario_kinds",
    "scenario_settings_class",
    "select_methods",
]
