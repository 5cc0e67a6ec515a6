"""`fednot tune`: search spaces, the validation request, the tuned preset, resumption."""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.runner import create_methods
from fednot.cli.app import main
from fednot.config import UnlearnConfig
from fednot.configio import load_config, to_toml
from fednot.errors import ConfigError, DivergenceError
from fednot.models.registry import create_model
from fednot.testing import check_unlearner, set_args, tiny_config, tiny_federation
from fednot.tune import Choice, IntRange, LayerChoice, Range
from fednot.tune.objective import ValidationBench
from fednot.tune.validation import validation_request
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.registry import unlearner_class, unlearner_names

REPORTED_SEEDS = (0, 1)
TINY = [
    *set_args(
        "data.num_clients=3",
        "data.server_samples=0",
        "model.name=mlp",
        "model.options.hidden=[32, 16]",
        "train.rounds=1",
        "train.batch_size=64",
        "unlearn.recovery_rounds=1",
        "eval.mia_repeats=2",
        "eval.mia_folds=2",
        f"seeds={list(REPORTED_SEEDS)}",
        'unlearn.methods=["retrain", "ft", "not"]',
    ),
    "--threads",
    "1",
    "-q",
]


def _tune(out: Path, cache: Path, *extra: str) -> int:
    return main(
        [
            "tune",
            *TINY,
            "--set",
            f"cache_dir={cache}",
            "--seeds",
            "1000",
            "--trials",
            "2",
            "--methods",
            "ft,not",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tuning of FT and NoT, 2 trials each, shared by the tests that read its outputs."""
    root = tmp_path_factory.mktemp("tuned")
    assert _tune(root / "out", root / "cache") == 0
    yield root


# -- the search spaces --------------------------------------------------------------------------


@pytest.mark.parametrize("name", unlearner_names())
def test_every_space_holds_the_published_value_of_a_real_option(name: str) -> None:
    cls = unlearner_class(name)
    parameters = inspect.signature(cls.__init__).parameters
    published = cls().options()
    for key, space in cls.search_space.items():
        assert key in parameters and key != "recovery_lr", f"{name}: {key} is no option"
        value = published.get(key, parameters[key].default)
        assert space.contains(value), f"{name}: published {key}={value!r} not in {space}"
    if cls.schedule != "recovery":
        assert "recovery_lr" not in cls.search_space


def test_cifar_budgets_are_covered_by_a_steps_range() -> None:
    steps = {
        "ga": "epochs",
        "badt": "epochs",
        "l1sparse": "epochs",
        "ssd": "batch_size",
        "puf": "epochs",
        "fcu": "iterations",
        "mode": "local_epochs",
    }
    for name, key in steps.items():
        space = unlearner_class(name).search_space[key]
        assert isinstance(space, IntRange) and space.high >= 8 * space.low, name
    assert unlearner_class("retrain").search_space == {}


def test_space_types() -> None:
    assert Range(1e-4, 1e-1, log=True).contains(0.01) and not Range(0.1, 1).contains(True)
    assert IntRange(10, 500, step=10).contains(100) and not IntRange(10, 500, step=10).contains(105)
    assert Choice(("update", "renormalize")).contains("update")
    assert Range(1e-4, 1e-1, log=True).describe() == "log-range [0.0001, 0.1]"
    for bad in (lambda: Range(1.0, 1.0), lambda: Range(0.0, 1.0, log=True), lambda: Choice(())):
        with pytest.raises(ConfigError):
            bad()
    cnn = create_model("cnn", input_shape=(1, 28, 28), num_classes=10)
    assert LayerChoice().resolve(cnn) == Choice(("first", "block2.conv"))  # never the output


class _DeclaresNoRecovery(Unlearner):
    name = "declares_none"
    requirements: ClassVar[Requirements] = Requirements()
    schedule = "none"

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        return UnlearnResult(dict(state))  # schedule "recovery"


def test_conformance_checks_the_declared_schedule() -> None:
    with pytest.raises(AssertionError, match="declares schedule = 'none'"):
        check_unlearner(_DeclaresNoRecovery())


# -- the validation request ---------------------------------------------------------------------


def test_validation_request_is_another_client_and_other_seeds() -> None:
    config = replace(tiny_config(num_clients=4), seeds=REPORTED_SEEDS)
    request = validation_request(config)
    assert request.clients == (1,) and request.seeds == (1000, 1001)
    with pytest.raises(ConfigError, match="among the reported seeds"):
        validation_request(config, seeds=[1, 1000])
    with pytest.raises(ConfigError, match="other than the reported targets"):
        validation_request(config, target=[0])
    two = replace(config, unlearn=replace(config.unlearn, forget_clients=(2, 3)))
    assert validation_request(two).clients == (0, 1)


def test_tuner_never_unlearns_or_evaluates_on_the_reported_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tripwire: every engine call on a reported seed or the reported client raises."""
    seen: list[tuple[int, tuple[int, ...]]] = []

    def armed(original: Any) -> Any:
        def call(self: Experiment, *args: Any, **kwargs: Any) -> Any:
            request: ForgetRequest = self.scenario.request
            clients = request.clients + (args[1].clients if len(args) > 1 else ())
            if self.seed in REPORTED_SEEDS or 0 in clients:
                raise AssertionError(f"the tuner touched seed {self.seed}, clients {clients}")
            seen.append((self.seed, clients))
            return original(self, *args, **kwargs)

        return call

    for stage in ("pretrain", "unlearn", "evaluate"):
        monkeypatch.setattr(Experiment, stage, armed(getattr(Experiment, stage)))
    assert _tune(tmp_path / "out", tmp_path / "cache", "--trials", "1") == 0
    assert {seed for seed, _ in seen} == {1000} and len(seen) >= 6  # the tripwire was armed


# -- the outputs --------------------------------------------------------------------------------


def test_every_method_gets_the_same_trials_and_a_logged_search(tuned: Path) -> None:
    log = json.loads((tuned / "out" / "tune.json").read_text())
    assert log["validation"]["forget_clients"] == [1] and log["validation"]["seeds"] == [1000]
    assert set(log["methods"]) == {"ft", "not"} and log["wall_seconds"] > 0
    assert log["sampler"]["name"] == "TPESampler"
    for entry in log["methods"].values():
        assert entry["n_trials"] == 2 and len(entry["trials"]) == 2
        assert entry["trials"][0]["params"] == entry["published"]  # trial 1: published values
        for trial in entry["trials"]:
            assert trial["state"] == "complete" and trial["objective"] >= 0
            assert trial["seconds"] > 0 and set(trial["params"]) == set(entry["space"])
        assert entry["best"]["objective"] == min(t["objective"] for t in entry["trials"])
    assert set(log["methods"]["ft"]["space"]) == {"recovery_lr"}
    assert log["methods"]["not"]["space"]["layers"] == "choice ['first', 'fc2']"


def test_the_tuned_preset_loads_marks_its_values_and_bench_runs_it(
    tuned: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tuned / "out" / "mnist5k-cnn-tuned.toml"
    text = path.read_text()
    assert text.startswith("# mnist5k-cnn-tuned: ")
    assert "# [tuned] log-range [0.001, 0.1]; published 0.01" in text
    config = load_config(preset=str(path))
    assert config.tuned == {"ft": ("recovery_lr",), "not": ("layers", "recovery_lr")}
    assert set(config.tuned_values("not")) == {"layers", "recovery_lr"}
    assert config.seeds == REPORTED_SEEDS and config.unlearn.forget_clients == (0,)
    assert config.threads is None  # the tuning machine's threads are not pinned

    out = tuned / "bench"
    fast = ["--set", "eval.mia_null_permutations=0", "--set", "eval.curve_every=0"]
    args = ["bench", "--preset", str(path), "--seeds", "0", *fast, "--threads", "1", "-q"]
    assert main([*args, "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())["records"]
    tuned_fields = {r["method"]: r["tuned"] for r in records}
    assert tuned_fields["retrain"] == {} and set(tuned_fields["not"]) == {"layers", "recovery_lr"}
    assert tuned_fields["ft"]["recovery_lr"] == config.unlearn.method_recovery_lr["ft"]
    report = (out / "results.md").read_text()
    assert "| FT ♯ |" in report and "| NoT ♯ |" in report and "| Retrain |" in report
    assert "♯ Tuned by `fednot tune`" in report and "NoT: layers = " in report


def test_a_second_invocation_runs_no_new_trial_and_resumes_identically(
    tuned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy: this test grows the log, and the tests sharing ``tuned`` may run after it.
    out, cache = tmp_path / "out", tuned / "cache"
    shutil.copytree(tuned / "out", out)
    before = json.loads((out / "tune.json").read_text())

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished trial ran again")

    with monkeypatch.context() as patched:
        patched.setattr(ValidationBench, "run", forbidden)
        assert _tune(out, cache) == 0
    after = json.loads((out / "tune.json").read_text())
    assert after["methods"] == before["methods"]

    # Interrupted after NoT's first trial: the resumed search draws and scores the same trial.
    cut = json.loads(json.dumps(before))
    cut["methods"]["not"]["trials"] = cut["methods"]["not"]["trials"][:1]
    (out / "tune.json").write_text(json.dumps(cut))
    assert _tune(out, cache) == 0
    again = json.loads((out / "tune.json").read_text())["methods"]["not"]["trials"][1]
    first = before["methods"]["not"]["trials"][1]
    assert again["params"] == first["params"] and again["objective"] == first["objective"]

    assert _tune(out, cache, "--set", "train.lr=0.02") == 2  # another configuration: refused
    assert _tune(out, cache, "--trials", "3") == 0  # a larger budget adds trials to every method
    grown = json.loads((out / "tune.json").read_text())
    assert [e["n_trials"] for e in grown["methods"].values()] == [3, 3] and grown["n_trials"] == 3


def test_a_diverged_trial_is_logged_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Experiment.unlearn

    def diverge_at_high_lr(self: Experiment, *args: Any, **kwargs: Any) -> Any:
        if self.config.unlearn.method_recovery_lr.get("ft", 0.01) != 0.01:
            raise DivergenceError("Recovery of method 'ft' diverged (a test)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "unlearn", diverge_at_high_lr)
    assert _tune(tmp_path / "out", tmp_path / "cache", "--methods", "ft") == 0
    entry = json.loads((tmp_path / "out" / "tune.json").read_text())["methods"]["ft"]
    assert [t["state"] for t in entry["trials"]] == ["complete", "diverged"]
    assert entry["trials"][1]["objective"] is None and "a test" in entry["trials"][1]["error"]
    assert entry["best"]["number"] == 0


# -- the configuration --------------------------------------------------------------------------


def test_a_methods_own_recovery_lr_is_the_one_its_recovery_uses() -> None:
    def ft_state(unlearn: UnlearnConfig) -> StateDict:
        exp = Experiment(tiny_config(unlearn=unlearn), 0, federation=tiny_federation())
        trained = exp.pretrain()
        return exp.unlearn(trained, exp.scenario.request, "ft").state

    base = UnlearnConfig(recovery_rounds=2)
    own = ft_state(replace(base, method_recovery_lr={"ft": 0.3}))
    assert all(torch.equal(v, own[k]) for k, v in ft_state(replace(base, recovery_lr=0.3)).items())
    default = ft_state(base)
    assert not all(torch.equal(v, own[k]) for k, v in default.items())
    # another method's own rate leaves FT's recovery alone
    other = ft_state(replace(base, method_recovery_lr={"not": 0.3}))
    assert all(torch.equal(v, other[k]) for k, v in default.items())


def test_a_divergence_names_the_methods_own_recovery_lr() -> None:
    config = tiny_config(unlearn=UnlearnConfig(method_recovery_lr={"ft": 1000.0}))
    exp = Experiment(config, 0, federation=tiny_federation())
    with pytest.raises(DivergenceError, match=r"lower unlearn\.method_recovery_lr\.ft"):
        exp.unlearn(exp.pretrain(), exp.scenario.request, "ft")


def test_own_recovery_lr_and_tuned_marks_are_checked_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="which unlearn.methods"):
        load_config(overrides=["unlearn.method_recovery_lr.nosuch=0.01"])
    # a registered method that is not run: its settings are not used
    assert load_config(overrides=["unlearn.method_recovery_lr.pgd=0.01"]).unlearn == UnlearnConfig()
    with pytest.raises(ConfigError, match="finite floats > 0"):
        load_config(overrides=["unlearn.method_recovery_lr.ft=0"])
    with pytest.raises(ConfigError, match="not set"):
        load_config(overrides=['tuned.not=["layers"]'])
    with pytest.raises(ConfigError, match="tuned names"):
        load_config(overrides=['tuned.nosuch=["lr"]'])
    config = load_config(
        overrides=[
            "unlearn.method_recovery_lr.not=0.02",
            'options.not.layers="block2.conv"',
            'tuned.not=["layers", "recovery_lr"]',
        ]
    )
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config
    assert config.tuned_values("not") == {"layers": "block2.conv", "recovery_lr": 0.02}
    assert (
        config.unlearn.recovery_lr_of("not") == 0.02 and config.unlearn.recovery_lr_of("ft") is None
    )


def test_an_own_recovery_lr_for_a_method_without_recovery_is_refused() -> None:
    config = load_config(
        overrides=["unlearn.method_recovery_lr.ga=0.01"],
        preset="mnist5k-cnn",
        scenario="centralized",
    )
    with pytest.raises(ConfigError, match="runs no recovery"):
        create_methods(config)


def test_two_jobs_tune_trial_for_trial_as_one_process(tuned: Path, tmp_path: Path) -> None:
    """``--jobs 2 --threads 2``: FT's and NoT's trials in two workers, one thread each."""
    argv = [*TINY[:-3], "--threads", "2", "-q"]  # TINY's "--threads 1" becomes 2, split in 2
    assert argv.count("--threads") == 1
    out = tmp_path / "two"
    code = main(
        [
            "tune",
            *argv,
            "--set",
            f"cache_dir={tmp_path / 'cache'}",
            "--seeds",
            "1000",
            "--trials",
            "2",
            "--methods",
            "ft,not",
            "--jobs",
            "2",
            "--out",
            str(out),
        ]
    )
    torch.set_num_threads(1)
    assert code == 0
    one = json.loads((tuned / "out" / "tune.json").read_text())
    two = json.loads((out / "tune.json").read_text())

    def trials(log: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
        return {
            name: [(t["params"], t["objective"], t["gaps"]) for t in entry["trials"]]
            for name, entry in log["methods"].items()
        }

    assert trials(two) == trials(one)
    assert two["reference"] == one["reference"]
