"""`fednot tune`: spaces, the validation request, the budget, the tuned preset, resumption."""

from __future__ import annotations

import inspect
import json
import math
import shutil
import sys
import textwrap
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
from fednot.data.registry import read_dataset
from fednot.errors import ConfigError, DivergenceError
from fednot.models.registry import create_model
from fednot.testing import (
    check_unlearner,
    set_args,
    tiny_cli_settings,
    tiny_config,
    tiny_federation,
)
from fednot.tune import Choice, IntRange, LayerChoice, Range
from fednot.tune.log import Trial
from fednot.tune.objective import TrialResult, ValidationBench
from fednot.tune.plan import Plan, TuneSettings
from fednot.tune.refine import refine_params, refinement
from fednot.tune.study import ask
from fednot.tune.validation import DEFAULT_SEEDS, seeds_warning, validation_request
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.registry import unlearner_class, unlearner_names

REPORTED_SEEDS = (0, 1)
TINY = [
    *tiny_cli_settings(REPORTED_SEEDS),
    *set_args('unlearn.methods=["retrain", "ft", "not"]'),
    "--threads",
    "1",
    "-q",
]


SEEDS = ["--seeds", "1000,1001"]  # two validation seeds: fewer than the protocol's 3, for speed


def _tune(out: Path, cache: Path, *extra: str, seeds: list[str] = SEEDS) -> int:
    return main(
        [
            "tune",
            *TINY,
            "--set",
            f"cache_dir={cache}",
            *seeds,
            "--trials-per-knob",
            "1",
            "--methods",
            "ft,not",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tuning of FT (1 knob) and NoT (2 knobs), 1 trial per knob then the refinement."""
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
    assert request.clients == (1,) and request.seeds == DEFAULT_SEEDS == (1000, 1001, 1002)
    assert seeds_warning(request.seeds) == "" and "fewer than the 3" in seeds_warning([1000])
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
    assert _tune(tmp_path / "out", tmp_path / "cache", "--methods", "ft", seeds=[]) == 0
    assert {seed for seed, _ in seen} == set(DEFAULT_SEEDS) and len(seen) >= 18  # it was armed
    # The default validation: 3 seeds, each trial's per-seed gaps and their spread in the log.
    log = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert log["validation"]["seeds"] == [1000, 1001, 1002]
    assert log["validation"]["seeds_warning"] == ""
    for trial in log["methods"]["ft"]["trials"]:
        assert set(trial["gaps"]) == {"1000", "1001", "1002"}
        gaps = list(trial["gaps"].values())
        mean = sum(gaps) / 3
        std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / 2)
        assert trial["spread"]["n"] == 3 and trial["spread"]["std"] == pytest.approx(std)
        assert trial["spread"]["ci95_half_width"] == pytest.approx(4.302653 * std / math.sqrt(3))
        assert trial["objective"] == pytest.approx(mean)


LOADER = """
from fednot.testing import synthetic_images

TRAIN = synthetic_images(600, num_classes=4, seed=0)
TEST = synthetic_images(150, num_classes=4, seed=1)


def load():
    return TRAIN, TEST
"""


def test_tuner_never_evaluates_on_the_reported_test_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a data set with its own test split, no trial, pre-training or Retrain reads it."""
    (tmp_path / "pkgs").mkdir()
    (tmp_path / "pkgs" / "tune_split_data.py").write_text(textwrap.dedent(LOADER))
    monkeypatch.setattr(sys, "path", [str(tmp_path / "pkgs"), *sys.path])
    monkeypatch.delitem(sys.modules, "tune_split_data", raising=False)
    read_dataset.cache_clear()
    dataset = ["--set", "data.dataset=tune_split_data:load"]
    try:
        import tune_split_data  # type: ignore[import-not-found]

        reported = load_config(
            overrides=["data.dataset=tune_split_data:load", "data.num_clients=3"]
        )

        def own_test(images: torch.Tensor) -> bool:
            own = tune_split_data.TEST.images
            return images.shape == own.shape and torch.equal(images, own)

        assert own_test(Experiment(reported, 0).federation.test.source.images)  # a control
        held_out = 0

        def armed(original: Any) -> Any:
            def call(self: Experiment, *args: Any, **kwargs: Any) -> Any:
                nonlocal held_out
                test = self.federation.test
                if own_test(test.source.images):
                    raise AssertionError("the tuner read the data set's own test split")
                assert test.source is self.federation.clients[0].train.source
                held_out += 1
                return original(self, *args, **kwargs)

            return call

        for stage in ("pretrain", "unlearn", "evaluate"):
            monkeypatch.setattr(Experiment, stage, armed(getattr(Experiment, stage)))
        assert _tune(tmp_path / "out", tmp_path / "cache", *dataset, "--methods", "ft") == 0
        assert held_out >= 8  # the tripwire was armed
    finally:
        read_dataset.cache_clear()


# -- the outputs --------------------------------------------------------------------------------


def test_every_method_gets_trials_per_knob_then_a_refined_recovery_lr(tuned: Path) -> None:
    log = json.loads((tuned / "out" / "tune.json").read_text())
    assert log["format"] == 2
    assert log["validation"]["forget_clients"] == [1]
    assert (
        log["validation"]["seeds"] == [1000, 1001]
        and "fewer than" in log["validation"]["seeds_warning"]
    )
    assert set(log["methods"]) == {"ft", "not"} and log["wall_seconds"] > 0
    assert log["sampler"]["name"] == "TPESampler" and log["sampler"]["preset"] == "mnist5k-cnn"
    budget = log["budget"]
    assert budget["trials_per_knob"] == 1 and budget["refinement"]["cap"] == 6
    assert budget["methods"] == {
        "ft": {"knobs": 1, "search_trials": 1, "startup_trials": 2},
        "not": {"knobs": 2, "search_trials": 2, "startup_trials": 2},
    }
    for name, entry in log["methods"].items():
        trials, knobs = entry["trials"], budget["methods"][name]["knobs"]
        search = [t for t in trials if t["phase"] != "refine"]
        assert entry["knobs"] == knobs and len(search) == knobs == entry["search_trials"]
        assert [t["phase"] for t in search] == ["published", "random"][:knobs]
        assert all(t["phase"] == "refine" for t in trials[knobs:]) and len(trials) > knobs
        assert search[0]["params"] == entry["published"]  # trial 1: published values
        for trial in trials:
            assert trial["state"] == "complete" and trial["objective"] >= 0
            assert trial["seconds"] > 0 and set(trial["params"]) == set(entry["space"])
            assert set(trial["gaps"]) == {"1000", "1001"} and trial["spread"]["std"] >= 0
        assert entry["best"]["objective"] == min(t["objective"] for t in trials)
        # No untried gap wider than a factor 2 around the best rate (or it is at the bound).
        best, refined = entry["best"]["params"], entry["refinement"]
        others = {k: v for k, v in best.items() if k != "recovery_lr"}
        rates = [
            t["params"]["recovery_lr"]
            for t in trials
            if {k: v for k, v in t["params"].items() if k != "recovery_lr"} == others
        ]
        b = best["recovery_lr"]
        assert refined["status"] == "met" and refined["best_lr"] == b
        assert b <= 0.001 or any(b / 2 <= r < b for r in rates)
        assert b >= 0.1 or any(b < r <= 2 * b for r in rates)
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
    tuned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
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

    # Interrupted after NoT's first trial: the resumed search draws, refines and scores the same.
    cut = json.loads(json.dumps(before))
    cut["methods"]["not"]["trials"] = cut["methods"]["not"]["trials"][:1]
    (out / "tune.json").write_text(json.dumps(cut))
    assert _tune(out, cache) == 0
    again = json.loads((out / "tune.json").read_text())["methods"]["not"]["trials"]
    first = before["methods"]["not"]["trials"]
    assert [(t["phase"], t["params"], t["objective"]) for t in again] == [
        (t["phase"], t["params"], t["objective"]) for t in first
    ]

    assert _tune(out, cache, "--set", "train.lr=0.02") == 2  # another configuration: refused
    # A larger K adds search trials to every method, then refines again around the best.
    assert _tune(out, cache, "--trials-per-knob", "2") == 0
    grown = json.loads((out / "tune.json").read_text())
    for name, knobs in (("ft", 1), ("not", 2)):
        entry = grown["methods"][name]
        assert sum(t["phase"] != "refine" for t in entry["trials"]) == 2 * knobs
        assert entry["refinement"]["status"] == "met" and grown["budget"]["trials_per_knob"] == 2

    # A log of the previous protocol (no format: --trials, one seed) is refused, not resumed.
    old = json.loads(json.dumps(before))
    del old["format"]
    (out / "tune.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert _tune(out, cache) == 2
    assert "another tuning protocol" in capsys.readouterr().err


def test_a_setting_that_diverges_on_one_validation_seed_is_rejected_though_best_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """FT at recovery rate 0.005 (the refinement's first try, b/2 around the published 0.01)
    matches Retrain exactly on seed 1000 (gap 0, the best possible score) and diverges on seed
    1001: rejected, never chosen, and seed 1002 is not run."""
    original = Experiment.unlearn
    runs: list[tuple[float, int]] = []

    def bad_at_high_lr(self: Experiment, trained: Any, request: Any, method: Any, **kw: Any) -> Any:
        lr = self.config.unlearn.method_recovery_lr.get("ft", 0.01)
        if method == "retrain" or not math.isclose(lr, 0.005):
            return original(self, trained, request, method, **kw)
        runs.append((lr, self.seed))
        if self.seed == 1001:
            raise DivergenceError("Recovery of method 'ft' diverged (a test)")
        return original(self, trained, request, "retrain", **kw)  # Retrain's model: gap 0

    monkeypatch.setattr(Experiment, "unlearn", bad_at_high_lr)
    out = tmp_path / "out"
    assert _tune(out, tmp_path / "cache", "--methods", "ft", seeds=[]) == 0
    entry = json.loads((out / "tune.json").read_text())["methods"]["ft"]
    rejected = [t for t in entry["trials"] if t["state"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["params"]["recovery_lr"] == 0.005
    bad = rejected[0]
    assert bad["phase"] == "refine" and bad["objective"] is None and bad["diverged_seed"] == 1001
    assert bad["gaps"] == {"1000": 0.0} and "a test" in bad["error"]  # best of all on seed 1000
    assert runs == [(0.005, 1000), (0.005, 1001)]  # stopped at the diverged seed: 1002 not run
    assert all(t["state"] == "complete" for t in entry["trials"] if t is not bad)
    assert all(t["objective"] > 0 for t in entry["trials"] if t is not bad)
    assert (
        entry["best"]["params"]["recovery_lr"] != 0.005 and entry["best"]["number"] != bad["number"]
    )
    assert 0.005 in entry["refinement"]["tried_lrs"] and entry["refinement"]["status"] == "met"
    tuned_lr = load_config(preset=str(out / "mnist5k-cnn-tuned.toml")).unlearn.method_recovery_lr
    assert tuned_lr["ft"] == entry["best"]["params"]["recovery_lr"]
    assert "warning" not in capsys.readouterr().err  # 3 seeds: no warning


def test_fewer_than_three_validation_seeds_run_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _tune(tmp_path / "out", tmp_path / "cache", "--methods", "ft", "--seeds", "1000") == 0
    assert "warning: 1 validation seed, fewer than the 3" in capsys.readouterr().err
    log = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert "fewer than the 3" in log["validation"]["seeds_warning"]
    assert all(t["spread"]["std"] is None for t in log["methods"]["ft"]["trials"])


# -- the budget: refinement and the sampler's seed ----------------------------------------------


def _trial(number: int, lr: float, objective: float, phase: str = "refine", **other: Any) -> Trial:
    result = (
        TrialResult(objective)
        if math.isfinite(objective)
        else TrialResult(math.inf, {}, {}, 0.0, "x", 1)
    )
    return Trial(number, phase, {**other, "recovery_lr": lr}, result)


def test_refinement_closes_every_factor_two_gap_around_the_best_rate() -> None:
    plan = Plan("ft", {"recovery_lr": Range(0.001, 0.1, log=True)}, {"recovery_lr": 0.01})
    trials = [_trial(0, 0.01, 1.0, "published")]
    assert refine_params(plan, trials, 6) == {"recovery_lr": 0.005}  # below b first
    trials.append(_trial(1, 0.005, 2.0))
    assert refine_params(plan, trials, 6) == {"recovery_lr": 0.02}  # then above
    trials.append(_trial(2, 0.02, 0.5))  # a new best: refine around it
    assert refine_params(plan, trials, 6) == {"recovery_lr": 0.04}  # 0.01 closes its lower side
    trials.append(_trial(3, 0.04, math.inf))  # rejected, but tried: closes the upper side
    state = refinement(plan, trials, 6)
    assert state is not None and state.status == "met" and refine_params(plan, trials, 6) is None
    assert (
        state.best_lr == 0.02 and (state.below.closed_by, state.above.closed_by) == ("tried",) * 2
    )
    assert refinement(plan, trials[:2], 1) is not None
    assert refinement(plan, trials[:2], 1).status == "stopped by the cap"  # type: ignore[union-attr]
    assert refine_params(plan, trials[:2], 1) is None

    # Clipped to the space, and closed at the bound.
    near = [_trial(0, 0.0015, 1.0, "tpe")]
    assert refine_params(plan, near, 6) == {"recovery_lr": 0.001}
    at_bound = [_trial(0, 0.1, 1.0, "tpe"), _trial(1, 0.05, 2.0)]
    assert refinement(plan, at_bound, 6).status == "met"  # type: ignore[union-attr]
    # Only trials with the best's other values count as tried.
    two = Plan("not", {"layers": Choice(("first", "fc2")), **plan.space}, {})
    mixed = [
        _trial(0, 0.01, 1.0, "tpe", layers="first"),
        _trial(1, 0.005, 2.0, "tpe", layers="fc2"),
    ]
    assert refine_params(two, mixed, 6) == {"layers": "first", "recovery_lr": 0.005}
    # Nothing to refine without a recovery learning rate, or when every trial was rejected.
    assert refinement(Plan("x", {"epochs": IntRange(1, 5)}, {}), near, 6) is None
    assert refine_params(plan, [_trial(0, 0.01, math.inf)], 6) is None


def test_the_sampler_draws_other_candidates_per_data_set_and_preset() -> None:
    plan = Plan("ft", {"recovery_lr": Range(0.001, 0.1, log=True)}, {"recovery_lr": 0.01})
    settings = TuneSettings(trials_per_knob=3, seed=0)
    done = [_trial(0, 0.01, 1.0, "published")]
    draws = {
        scope: ask(plan, done, settings, 1, scope)["recovery_lr"]
        for scope in (("mnist5k", "mnist5k-cnn"), ("fashion_mnist", "fmnist-cnn"), ("mnist5k", "x"))
    }
    assert len(set(draws.values())) == 3
    assert (
        ask(plan, done, settings, 1, ("mnist5k", "mnist5k-cnn"))["recovery_lr"]
        == draws[("mnist5k", "mnist5k-cnn")]
    )
    with pytest.raises(ConfigError, match="--trials-per-knob"):
        TuneSettings(trials_per_knob=0)


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
            *SEEDS,
            "--trials-per-knob",
            "1",
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
            name: [(t["phase"], t["params"], t["objective"], t["gaps"]) for t in entry["trials"]]
            for name, entry in log["methods"].items()
        }

    assert trials(two) == trials(one)
    assert two["reference"] == one["reference"]
