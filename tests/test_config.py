from __future__ import annotations

from pathlib import Path

import pytest

from fednot.benchmark.experiment import Experiment
from fednot.config import RunConfig
from fednot.configio import load_config, parse_override, to_toml
from fednot.errors import ConfigError
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest
from fednot.unlearning.registry import create_unlearner


def test_defaults_load_without_a_file() -> None:
    assert load_config() == RunConfig()


def test_toml_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('seeds = [4]\n[train]\nlr = 0.1\nrounds = 7\n[options.not]\nlayers = ["fc1"]\n')
    config = load_config(path, ["train.rounds=9", "data.dataset=cifar10", "data.root=/x"])
    assert config.seeds == (4,)
    assert config.train.lr == 0.1 and config.train.rounds == 9
    assert config.data.dataset == "cifar10" and config.data.root == "/x"
    assert config.options == {"not": {"layers": ["fc1"]}}


def test_round_trip_through_toml(tmp_path: Path) -> None:
    config = load_config(
        None, ["train.patience=5", "unlearn.target_val_acc=97.5", "options.not.negate_bias=false"]
    )
    path = tmp_path / "resolved.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrr=0.1", r"Unknown configuration key `train.lrr`.*lr"),
        ("trian.lr=0.1", r"Unknown configuration key `trian`"),
        ("train.rounds=ten", r"Expected `train.rounds` to be int, got 'ten'"),
        ("train.rounds=2.5", r"Expected `train.rounds` to be int"),
        ("train.lr=true", r"Expected `train.lr` to be float"),
        ("data.partition=random", r"data.partition.*one of \['iid', 'dirichlet', 'shards'\]"),
        ("seeds={ first = 0 }", r"Expected `seeds` to be a list"),  # `seeds=0` is [0]
        ("train.lr=-1", r"train.lr must be > 0"),
        ("unlearn.forget_clients=[10]", r"forget_clients \[10\] out of range: client ids are 0..9"),
        ("unlearn.forget_clients=[0,1,2,3,4,5,6,7,8,9]", r"leaves no retained data"),
        ("unlearn.forget_clients=[]", r"must name a client"),
        ("options.pgd.x=1", r"Unknown option `x` for method 'pgd'"),
        ("options.nosuch.x=1", r"options given for \['nosuch'\]"),
    ],
)
def test_bad_values_get_clear_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_override_syntax() -> None:
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=plain text") == (["a"], "plain text")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("novalue")


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_method_options_are_checked_by_name_and_type() -> None:
    with pytest.raises(ConfigError, match=r"Unknown option `layer` for method 'not'.*layers"):
        create_unlearner("not", {"layer": "first"})
    with pytest.raises(ConfigError, match="negate_bias"):
        create_unlearner("not", {"negate_bias": "yes"})
    with pytest.raises(ConfigError, match=r"Unknown unlearner 'nto'. Known: .*not"):
        create_unlearner("nto")


def test_unknown_layer_name_is_refused_before_training() -> None:
    exp = Experiment(
        tiny_config(options={"not": {"layers": ["conv1"]}}), 0, federation=tiny_federation()
    )
    with pytest.raises(ConfigError, match=r"no layer 'conv1'. Its layers: fc1, fc2"):
        exp.unlearn(exp.initial_state, ForgetRequest(clients=(0,)), "not")


def test_client_id_out_of_range_in_a_request() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    with pytest.raises(ConfigError, match=r"No client 7; the federation's clients are \[0, 1, 2\]"):
        exp.unlearn(exp.initial_state, ForgetRequest(clients=(7,)), "not")


def test_empty_retained_set_is_refused() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    with pytest.raises(ConfigError, match="leaves no client to recover on"):
        exp.unlearn(exp.initial_state, ForgetRequest(clients=(0, 1, 2)), "ft")


def test_unknown_model_and_model_option() -> None:
    with pytest.raises(ConfigError, match=r"Unknown model 'resnet19'.*resnet18"):
        Experiment(load_config(None, ["model.name=resnet19"]), 0, federation=tiny_federation(10))
    with pytest.raises(ConfigError, match=r"Unknown option `depth` for model 'cnn'"):
        Experiment(load_config(None, ["model.options.depth=3"]), 0, federation=tiny_federation(10))


def test_override_keys_may_quote_parts_holding_dots_or_colons() -> None:
    from fednot.configio import apply_overrides, as_overrides, parse_override

    assert parse_override('options."pkg.mod:Cls".x=2') == (["options", "pkg.mod:Cls", "x"], 2)
    with pytest.raises(ConfigError, match="Expected a key"):
        parse_override("a..b=1")
    data = {"options": {"pkg.mod:Cls": {"x": 1}}, "train": {"lr": 0.5}}
    assert apply_overrides({}, as_overrides(data)) == data
