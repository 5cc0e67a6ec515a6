"""The method contract: one context factory, the ``"train"`` schedule, placement beside it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.errors import ConfigError, MissingRequirementError
from fednot.federation.backend import TrainJob
from fednot.federation.local import LocalRecipe
from fednot.integrations import placement
from fednot.integrations.placement import runs_on_target, step_on_target, target_step_methods
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Requirements, Schedule, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fcu import FCU
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.negation import NoT
from fednot.unlearning.pgd import PGD
from fednot.unlearning.retrain import Retrain

REQUEST = ForgetRequest(clients=(0,))


def _experiment(cache: Path | None = None) -> Experiment:
    config = tiny_config(cache_dir=str(cache) if cache else "")
    return Experiment(config, seed=0, federation=tiny_federation())


class _Scratch(Unlearner):
    """A plugin that declares the training schedule: the engine trains anew, never steps it."""

    name = "scratch"
    schedule: ClassVar[Schedule] = "train"

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        raise AssertionError("the engine does not step a method of schedule 'train'")


# -- schedule = "train" -----------------------------------------------------------------------


def test_a_plugin_of_schedule_train_is_trained_anew_like_retrain(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    trained = exp.pretrain()
    retrain = exp.unlearn(trained, REQUEST, Retrain())
    scratch = exp.unlearn(trained, REQUEST, _Scratch())
    assert scratch.method == "scratch" and not scratch.cached
    assert scratch.log.rounds and all(0 not in r.clients for r in scratch.log.rounds)
    for key, value in retrain.state.items():  # the same recipe and streams: the same model
        assert torch.equal(scratch.state[key], value), key
    again = exp.unlearn(trained, REQUEST, _Scratch())
    assert again.cached  # cached under its own name
    curve = (exp.config.eval.curve_every, exp.config.eval.curve_subset)
    key = exp.cache_key("scratch", request=REQUEST.to_dict(), curve=curve)
    assert (tmp_path / f"{key}.pt").is_file()


def test_retrains_cache_key_is_unchanged(tmp_path: Path) -> None:
    """Retrain's models cached by earlier versions are found: the key is ``retrain-<hash>``."""
    exp = _experiment(tmp_path)
    exp.unlearn(exp.pretrain(), REQUEST, "retrain")
    curve = (exp.config.eval.curve_every, exp.config.eval.curve_subset)
    key = exp.cache_key("retrain", request=REQUEST.to_dict(), curve=curve)
    assert key.startswith("retrain-") and (tmp_path / f"{key}.pt").is_file()
    assert exp.unlearn(exp.pretrain(), REQUEST, "retrain").cached


# -- the factory ------------------------------------------------------------------------------


def _parts() -> ModelParts:
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=4, options={"hidden": (8,)})
    return ModelParts(model, dict(model.state_dict()), name="mlp", options={"hidden": (8,)})


def test_a_context_from_the_request_alone_refuses_client_data() -> None:
    ctx = UnlearnContext.create(NoT(), REQUEST, _parts(), SeedStreams(0))
    assert ctx.request == REQUEST and ctx.method == "not"
    state = dict(ctx.initial_state)
    assert ctx.on_server("no data").initial_state is ctx.initial_state
    for reach in (
        lambda: ctx.retained,
        lambda: ctx.preprocess,
        lambda: ctx.fresh_state("x"),
        lambda: ctx.fedavg_round(state),
        lambda: ctx.train([TrainJob(1, state, ("x",), LocalRecipe())]),
    ):
        with pytest.raises(MissingRequirementError, match="request alone"):
            reach()
    reads = UnlearnContext.create(FCU(), REQUEST, _parts(), SeedStreams(0))
    with pytest.raises(MissingRequirementError, match="request alone"):
        reads.forget_data  # noqa: B018 - the access is the test


def test_a_context_holds_only_what_the_method_declares() -> None:
    exp = _experiment()
    split = exp.split(REQUEST)
    plain = exp.context(NoT(), split)
    assert plain.retained is split.retained and plain.request == REQUEST
    with pytest.raises(MissingRequirementError, match="requirements.forget_data"):
        plain.forget_data  # noqa: B018
    assert len(exp.context(FCU(), split).forget_data) == len(split.forget)
    with pytest.raises(MissingRequirementError, match="requirements.history"):
        exp.context(PGD(), split).history  # noqa: B018 - none was handed over


# -- placement, beside the contract -----------------------------------------------------------


def test_placement_is_not_part_of_the_method_contract() -> None:
    assert not hasattr(Unlearner, "step_on_target")
    assert runs_on_target(FCU()) and runs_on_target(PGD) and runs_on_target("fcu")
    assert not runs_on_target(NoT()) and not runs_on_target("retrain")
    assert target_step_methods() == ["fcu", "pgd"]


def test_a_plugin_declares_that_it_steps_on_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "_ON_TARGET", set(placement._ON_TARGET))

    @step_on_target
    class ReadsItsSamples(Unlearner):
        name = "reads_its_samples"
        requirements: ClassVar[Requirements] = Requirements(forget_data=True)

        def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
            return UnlearnResult(dict(state))

    assert runs_on_target(ReadsItsSamples()) and runs_on_target("reads_its_samples")
    with pytest.raises(ConfigError, match="Unlearner subclass"):
        step_on_target(dict)  # type: ignore[type-var]


def test_the_outcome_carries_the_state_after_the_step() -> None:
    # what a deployment reports as "after the step" (Flower read it through a side channel)
    exp = _experiment()
    trained = exp.pretrain()
    outcome = exp.unlearn(trained, exp.scenario.request, NoT(layers="first"))
    assert outcome.step_state is not None
    negated = [
        k for k in outcome.step_state if not torch.equal(outcome.step_state[k], trained.state[k])
    ]
    assert negated and all(torch.equal(outcome.step_state[k], -trained.state[k]) for k in negated)
    assert exp.unlearn(trained, exp.scenario.request, Retrain()).step_state is None
