"""Scenarios as registered components: one module and one TOML add a kind; validation by kind."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.report import scenario_text
from fednot.benchmark.scenarios import (
    ClassFederationScenario,
    ClassScenario,
    Scenario,
    ScenarioDefinition,
    base,
    client,
    register_scenario,
    scenario_definitions,
)
from fednot.config import RunConfig, ScenarioSettings, scenario_kinds
from fednot.config import scenario as config_scenario
from fednot.configio import load_config, to_toml
from fednot.errors import ConfigError
from fednot.presets import scenario_names
from fednot.testing import tiny_config, tiny_federation
from fednot.unlearning.registry import create_unlearner


def _exp(settings: ScenarioSettings) -> Experiment:
    return Experiment(tiny_config(scenario=settings), 0, federation=tiny_federation())


def test_every_registered_kind_has_a_fragment_and_loads_into_its_own_class() -> None:
    kinds = [d.kind for d in scenario_definitions()]
    assert kinds == scenario_kinds() and kinds[0] == "client"
    for kind in kinds:
        assert kind in scenario_names()
        config = load_config(preset="mnist5k-cnn", scenario=kind)
        assert type(config.scenario) is next(
            d.settings for d in scenario_definitions() if d.kind == kind
        )


def test_the_added_kind_is_the_class_scenario_with_another_default() -> None:
    config = load_config(preset="mnist5k-cnn", scenario="class_federation")
    assert isinstance(config.scenario, ClassFederationScenario)
    assert config.scenario.class_scope == "federation"
    assert ClassFederationScenario().class_scope != ClassScenario().class_scope
    # the same request as the class scenario at that scope, so the same numbers
    added = _exp(ClassFederationScenario(classes=(1,)))
    plain = _exp(ClassScenario(classes=(1,), class_scope="federation"))
    assert (added.scenario.kind, added.scenario.serves) == ("class_federation", "class")
    assert added.scenario.request == plain.scenario.request
    state = plain.pretrain().state
    assert added.evaluate(state).values == plain.evaluate(state).values
    assert added.evaluate(state).get("forget_class_acc") is not None  # the class-wise metrics
    # and the methods that serve the class scenario serve it; FedEraser serves neither
    assert create_unlearner("federaser").not_applicable(added.scenario.serves) is not None
    assert create_unlearner("pgd").not_applicable(added.scenario.serves) is None
    assert "every client" in scenario_text(tiny_config(scenario=ClassFederationScenario()))


def test_a_key_that_the_kind_lacks_is_unknown_and_names_the_kinds_that_have_it() -> None:
    with pytest.raises(ConfigError, match=r"scenario.kind 'client'.*kinds .*instance"):
        load_config(overrides=["scenario.forget_ratio=0.3"])
    with pytest.raises(ConfigError, match="Unknown scenario.kind 'weird'"):
        load_config(overrides=["scenario.kind=weird"])
    with pytest.raises(ConfigError, match="takes the settings ClassScenario"):
        ScenarioSettings(kind="class")
    assert load_config(overrides=["scenario.kind=class", "scenario.classes=1,2"]).scenario == (
        ClassScenario(classes=(1, 2))
    )


@dataclass(frozen=True)
class _HalfClient(ScenarioSettings):
    kind: str = "half_client"
    share: float = 0.5


def test_a_kind_registered_by_a_plugin_runs_and_round_trips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "_DEFINITIONS", dict(base._DEFINITIONS))
    monkeypatch.setattr(config_scenario, "_SETTINGS", dict(config_scenario._SETTINGS))

    def build(
        s: _HalfClient, targets: tuple[int, ...], federation: object, streams: object
    ) -> Scenario:
        return client.build(s, targets, federation, streams)  # type: ignore[arg-type]

    register_scenario(
        ScenarioDefinition(_HalfClient, build, lambda s, t: "half", "Half.", "client")
    )
    config = load_config(overrides=["scenario.kind=half_client", "scenario.share=0.25"])
    assert config.scenario == _HalfClient(share=0.25)
    assert load_config_text(to_toml(config)) == config
    exp = _exp(config.scenario)
    assert (exp.scenario.kind, exp.scenario.serves) == ("half_client", "client")
    with pytest.raises(ConfigError, match="already registered"):
        register_scenario(ScenarioDefinition(_HalfClient, build, lambda s, t: "", "", "class"))


def load_config_text(text: str) -> RunConfig:
    import tomllib

    from fednot.configio import from_dict

    return from_dict(RunConfig, tomllib.loads(text))


def test_a_flat_scenario_table_of_fednot_0_3_still_loads() -> None:
    # run folders, checkpoints and tuned presets of 0.3 list every key of the single table
    flat = {"kind": "backdoor", "classes": [0], "class_scope": "target", "forget_ratio": 0.5}
    flat |= {"forget_ids": None, "centralized_forget": "random", "target_label": 2}
    assert load_config_text_of({"scenario": flat}).scenario.target_label == 2  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="Unknown configuration key `scenario.classes`"):
        load_config_text_of({"scenario": {"kind": "client", "classes": [3]}})  # changed: refused


def load_config_text_of(data: dict[str, object]) -> RunConfig:
    from fednot.configio import from_dict

    return from_dict(RunConfig, data)
