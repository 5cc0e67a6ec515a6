"""benchmarks/step_effect.py: the step-alone measurement on a tiny federation.

A step that changes nothing must measure 0 % changed predictions and no weight change; a step
that moves every logit towards one class must measure a positive share (the measurement can
fail); FCU's and NegSub's steps run through it; the search summary finds the smallest rate.
"""

from __future__ import annotations

import importlib.util
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

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_effect.py"
REQUEST = ForgetRequest(clients=(0,))


@pytest.fixture(scope="module")
def step_effect() -> ModuleType:
    spec = importlib.util.spec_from_file_location("step_effect", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["step_effect"] = module
    spec.loader.exec_module(module)
    return module


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
    step_effect: ModuleType, trained: tuple[Experiment, Trained]
) -> None:
    exp, original = trained
    row = step_effect.step_effect(exp, original, REQUEST, FT())
    assert row["diverged"] is False
    assert row["changed"] == 0.0 and row["changed_test"] == 0.0 and row["rel_l2"] == 0.0
    assert row["forget_after"] == row["forget_before"]


def test_a_step_that_moves_the_model_changes_predictions(
    step_effect: ModuleType, trained: tuple[Experiment, Trained]
) -> None:
    exp, original = trained
    split = exp.split(REQUEST)
    labels = split.forget.labels
    row = step_effect.step_effect(exp, original, REQUEST, OneClass())
    before = step_effect.predictions(exp, original.state, split)["forget"]
    expected = 100.0 * float((before != 0).double().mean())  # every prediction is now class 0
    assert expected > 0
    assert row["changed"] == pytest.approx(expected)
    assert row["forget_after"] == pytest.approx(100.0 * float((labels == 0).double().mean()))
    assert row["rel_l2"] > 0


def test_fcu_and_negsub_steps_run_through_the_measurement(
    step_effect: ModuleType, trained: tuple[Experiment, Trained]
) -> None:
    exp, original = trained
    negsub = step_effect.step_effect(exp, original, REQUEST, NegSub(scaling="renormalize"))
    assert negsub["diverged"] is False and 0.0 <= negsub["changed"] <= 100.0
    assert negsub["rel_l2"] > 0
    # On an MLP, FCU's fusion rebuilds only the classifier weight, which gets no gradient, and
    # reverts every other tensor to the original's: its step returns the original model exactly.
    fcu = FCU(iterations=20, fusion_interval=10, batch_size=16, lr=1e-1)
    row = step_effect.step_effect(exp, original, REQUEST, fcu)
    assert row["changed"] == 0.0 and row["rel_l2"] == 0.0


def test_smallest_rate_needs_the_threshold_on_every_seed(step_effect: ModuleType) -> None:
    def row(seed: int, lr: float, changed: float) -> dict[str, object]:
        setting = {"iterations": 100, "low_freq_from": "unlearned", "lr": lr}
        return {"seed": seed, **setting, "diverged": False, "changed": changed}

    rows = [row(0, 1e-4, 2.0), row(1, 1e-4, 0.5), row(0, 1e-3, 20.0), row(1, 1e-3, 12.0)]
    assert step_effect.smallest(rows, 1.0, [0, 1]) == {"100": {"unlearned": 1e-3}}
    assert step_effect.smallest(rows, 50.0, [0, 1]) == {"100": {"unlearned": None}}
