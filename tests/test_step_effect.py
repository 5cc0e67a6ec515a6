"""benchmarks/step_effect.py: the step-alone measurement on a tiny federation.

A step that changes nothing must measure 0 % changed predictions and no weight change; a step
that moves every logit towards one class must measure a positive share (the measurement can
fail); FCU's and NegSub's steps run through it; the search summary finds the smallest rate;
merging the published result reproduces it.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fednot.benchmark.experiment import Experiment
from fednot.federation.history import HistorySpec
from fednot.federation.outcome import Trained
from fednot.progress import Silent
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fcu import FCU, classifier_name
from fednot.unlearning.fine_tune import FT
from fednot.unlearning.neg_sub import NegSub

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
PUBLISHED = ROOT / "docs" / "results" / "step-effect.json"
REQUEST = ForgetRequest(clients=(0,))


def load_script(name: str) -> ModuleType:
    """Import benchmarks/<name>.py as running it would: its folder (its siblings) on sys.path."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def measure() -> ModuleType:
    return load_script("step_effect_measure")


@pytest.fixture(scope="module")
def trained() -> tuple[Experiment, Trained]:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation(), progress=Silent())
    return exp, exp.pretrain(history=HistorySpec(last_local_models=True))


class OneClass(Unlearner):
    """A step that adds a large bias to class 0 of the classifier: every prediction becomes 0."""

    name = "one_class"

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        out = dict(state)
        key = f"{classifier_name(ctx.model)}.bias"
        out[key] = state[key].clone()
        out[key][0] += 1e4
        return UnlearnResult(out)


def test_a_step_that_does_nothing_changes_no_prediction(
    measure: ModuleType, trained: tuple[Experiment, Trained]
) -> None:
    exp, original = trained
    row = measure.step_effect(exp, original, REQUEST, FT())
    assert row["diverged"] is False
    assert row["changed"] == 0.0 and row["changed_test"] == 0.0 and row["rel_l2"] == 0.0
    assert row["forget_after"] == row["forget_before"]


def test_a_step_that_moves_the_model_changes_predictions(
    measure: ModuleType, trained: tuple[Experiment, Trained]
) -> None:
    exp, original = trained
    split = exp.split(REQUEST)
    labels = split.forget.labels
    row = measure.step_effect(exp, original, REQUEST, OneClass())
    before = measure.predictions(exp, original.state, split)["forget"]
    expected = 100.0 * float((before != 0).double().mean())  # every prediction is now class 0
    assert expected > 0
    assert row["changed"] == pytest.approx(expected)
    assert row["forget_after"] == pytest.approx(100.0 * float((labels == 0).double().mean()))
    assert row["rel_l2"] > 0


def test_fcu_and_negsub_steps_run_through_the_measurement(
    measure: ModuleType, trained: tuple[Experiment, Trained]
) -> None:
    exp, original = trained
    negsub = measure.step_effect(exp, original, REQUEST, NegSub(scaling="renormalize"))
    assert negsub["diverged"] is False and 0.0 <= negsub["changed"] <= 100.0
    assert negsub["rel_l2"] > 0
    # On an MLP, FCU's fusion rebuilds only the classifier weight, which gets no gradient, and
    # reverts every other tensor to the original's: its step returns the original model exactly.
    fcu = FCU(iterations=20, fusion_interval=10, batch_size=16, lr=1e-1)
    row = measure.step_effect(exp, original, REQUEST, fcu)
    assert row["changed"] == 0.0 and row["rel_l2"] == 0.0


def test_smallest_rate_needs_the_threshold_on_every_seed(measure: ModuleType) -> None:
    def row(seed: int, lr: float, changed: float) -> dict[str, object]:
        setting = {"iterations": 100, "low_freq_from": "unlearned", "lr": lr}
        return {"seed": seed, **setting, "diverged": False, "changed": changed}

    rows = [row(0, 1e-4, 2.0), row(1, 1e-4, 0.5), row(0, 1e-3, 20.0), row(1, 1e-3, 12.0)]
    assert measure.smallest(rows, 1.0, [0, 1]) == {"100": {"unlearned": 1e-3}}
    assert measure.smallest(rows, 50.0, [0, 1]) == {"100": {"unlearned": None}}


def test_merging_the_published_result_reproduces_it(tmp_path: Path) -> None:
    # --merge recomputes the summaries from the rows; only the seconds' keys name the inputs.
    cli = load_script("step_effect")
    out = tmp_path / "merged.json"
    cli.merge([PUBLISHED], out)
    merged, published = json.loads(out.read_text()), json.loads(PUBLISHED.read_text())
    seconds = {f"{k} ({PUBLISHED.name})": v for k, v in published.pop("seconds").items()}
    assert merged.pop("seconds") == seconds
    assert merged == published
