"""Presets that select: groups and exclusions, scenarios that add, subsets of tuned presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from fednot.benchmark.cells import CellRunner
from fednot.benchmark.runner import create_methods
from fednot.config import CENTRALIZED, FEDERATED, RunConfig, UnlearnConfig, select_methods
from fednot.configio import load_config, to_toml
from fednot.errors import ConfigError
from fednot.presets import load_preset, preset_names, preset_text
from fednot.testing import tiny_config
from fednot.tune.preset import diff_toml, tuned_config
from fednot.unlearning.registry import unlearner_class, unlearner_names


def test_groups_name_registered_methods_of_their_kind() -> None:
    serves_client = {n for n in unlearner_names() if "client" in unlearner_class(n).scenarios}
    assert set(FEDERATED) == serves_client - {"perturb"}  # the ablation tool is not a baseline
    assert set(CENTRALIZED) <= set(unlearner_names()) and not set(CENTRALIZED) & set(FEDERATED)


def test_a_selector_keeps_order_and_its_exclusions_win() -> None:
    assert select_methods(["not", "federated", "-fukd", "-federaser"]) == (
        "not",
        *(m for m in FEDERATED if m not in ("not", "fukd", "federaser")),
    )
    assert select_methods(["-ga", "centralized"]) == tuple(m for m in CENTRALIZED if m != "ga")
    assert UnlearnConfig(methods=("ft", "ft", "not")).methods == ("ft", "not")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["ft", "-not"], r"leaves out \['not'\], which it does not select"),
        (["ft", "-ft"], "selects no method"),
        ([], "selects no method"),
        (["ft", "-"], "empty entry"),
    ],
)
def test_a_selector_that_says_nothing_useful_is_refused(entries: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        UnlearnConfig(methods=tuple(entries))


@pytest.mark.parametrize("scenario", ["backdoor", "noniid", "class", "instance"])
def test_a_scenario_adds_methods_and_keeps_the_presets_exclusions(scenario: str) -> None:
    # the bug: the fragment replaced unlearn.methods and re-added FedEraser and FUKD
    methods = load_config(preset="cifar10-resnet18", scenario=scenario).unlearn.methods
    assert "federaser" not in methods and "fukd" not in methods
    assert set(methods) == (set(FEDERATED) - {"federaser", "fukd"}) | set(CENTRALIZED)
    assert set(load_config(preset="mnist5k-cnn", scenario=scenario).unlearn.methods) == set(
        FEDERATED + CENTRALIZED
    )


def test_an_explicit_method_list_replaces_the_selection() -> None:
    config = load_config(overrides=["unlearn.methods=retrain,fukd"], preset="cifar10-resnet18")
    assert config.unlearn.methods == ("retrain", "fukd")
    chosen = ["unlearn.methods=retrain,ft"]
    config = load_config(overrides=chosen, preset="mnist5k-cnn", scenario="class")
    assert config.unlearn.methods == ("retrain", "ft")


@pytest.mark.parametrize("preset", ["fmnist-cnn-tuned", "mnist5k-cnn-tuned"])
def test_a_tuned_preset_runs_any_subset_of_its_methods(preset: str) -> None:
    config = load_config(overrides=["unlearn.methods=retrain,ft,not"], preset=preset)
    full = load_config(preset=preset)
    assert config.unlearn.methods == ("retrain", "ft", "not")
    assert set(config.options) == {"not"} and config.options["not"] == full.options["not"]
    assert set(config.tuned) == {"ft", "not"}
    assert config.unlearn.method_recovery_lr == {
        m: full.unlearn.method_recovery_lr[m] for m in ("ft", "not")
    }
    # settings that no method knows stay errors, run or not
    with pytest.raises(ConfigError, match="Unknown option `epochz` for method 'fukd'"):
        typo = ["unlearn.methods=retrain,ft", "options.fukd.epochz=3"]
        load_config(overrides=typo, preset=preset)


def test_shipped_tuned_presets_are_diffs_over_their_base() -> None:
    for name in (n for n in preset_names() if n.endswith("-tuned")):
        base = name.removesuffix("-tuned")
        assert f'extends = "{base}"' in preset_text(name)
        tuned, plain = load_config(preset=name), load_config(preset=base)
        assert tuned.data == plain.data and tuned.train == plain.train
        assert tuned.unlearn.methods == plain.unlearn.methods and tuned.tuned


def test_a_preset_file_extends_a_shipped_preset_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "fmnist-cnn"\n[train]\nlr = 0.05\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.toml").write_text('extends = "../a.toml"\nseeds = [7]\n')
    config = load_config(preset=str(tmp_path / "sub" / "b.toml"))
    assert config.train.lr == 0.05 and config.seeds == (7,)
    assert config.data == load_config(preset="fmnist-cnn").data
    (tmp_path / "a.toml").write_text('extends = "sub/b.toml"\n')
    with pytest.raises(ConfigError, match="in a circle"):
        load_preset(str(tmp_path / "a.toml"))
    (tmp_path / "a.toml").write_text("extends = 3\n")
    with pytest.raises(ConfigError, match="`extends` names the preset"):
        load_preset(str(tmp_path / "a.toml"))


def test_a_written_tuned_preset_is_a_diff_that_loads_back(tmp_path: Path) -> None:
    base = load_config(preset="mnist5k-cnn")
    best = {"ft": {"recovery_lr": 0.03}, "not": {"layers": "block2.conv"}}
    tuned = tuned_config(base, best)
    text = diff_toml(tuned, "mnist5k-cnn", tmp_path)
    assert text.startswith('extends = "mnist5k-cnn"') and "[train]" not in text
    (tmp_path / "t.toml").write_text(text)
    assert load_config(preset=str(tmp_path / "t.toml")) == tuned
    # a path preset is named relative to the folder the tuned preset is written in
    (tmp_path / "base.toml").write_text(to_toml(base))
    (tmp_path / "out").mkdir()
    text = diff_toml(tuned, str(tmp_path / "base.toml"), tmp_path / "out")
    assert text.startswith('extends = "../base.toml"')
    (tmp_path / "out" / "t.toml").write_text(text)
    assert load_config(preset=str(tmp_path / "out" / "t.toml")) == tuned


def test_a_missing_server_slice_is_refused_before_any_training() -> None:
    config: RunConfig = tiny_config(unlearn=UnlearnConfig(methods=("retrain", "fukd")))
    pool = CellRunner(config, create_methods(config), history=None)
    with pytest.raises(ConfigError, match="data.server_samples"):
        pool.experiment(0)  # builds the data and checks; pre-training comes after
    assert not pool._trained
