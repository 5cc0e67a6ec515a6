"""GA: gradient ascent on the forget data (Thudi et al., EuroS&P 2022; Unlearn-Sparse's form)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.errors import ConfigError, MissingRequirementError, UnsupportedScenarioError
from fednot.federation.local import predict
from fednot.federation.outcome import UnlearnOutcome
from fednot.testing import centralized_experiment, forbid_clients, tiny_config, tiny_federation
from fednot.unlearning.base import Unlearner
from fednot.unlearning.centralized.gradient_ascent import GA, ascent_loss
from fednot.unlearning.centralized.rand_label import RandL
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.registry import unlearner_class


def _run(method: GA) -> tuple[Experiment, UnlearnOutcome]:
    exp = centralized_experiment()
    return exp, exp.unlearn(exp.initial_state, exp.scenario.request, method)


def test_ascent_loss_is_negative_cross_entropy() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = torch.tensor([0, 0])
    expected = -(math.log(2.0) + math.log(4.0 / 3.0)) / 2  # p = 1/2 and p = 3/4
    assert ascent_loss(logits, labels).item() == pytest.approx(expected)


def test_forget_loss_increases() -> None:
    exp = centralized_experiment()
    trained = exp.pretrain()
    forget = exp.split(exp.scenario.request).forget
    preprocess = exp.federation.preprocess

    def forget_loss(state: dict[str, torch.Tensor]) -> float:
        exp.model.load_state_dict(state)
        return float(predict(exp.model, forget, preprocess)[0].mean())

    before = forget_loss(trained.state)
    outcome = exp.unlearn(trained, exp.scenario.request, GA(lr=0.05, epochs=3, batch_size=4))
    assert forget_loss(outcome.state) > before + 0.5


def test_end_to_end_keeps_shapes_dtypes_and_counts_forget_batches_only() -> None:
    exp, outcome = _run(GA(epochs=3, batch_size=3))
    assert set(outcome.state) == set(exp.initial_state)
    for key, value in exp.initial_state.items():
        assert outcome.state[key].shape == value.shape and outcome.state[key].dtype == value.dtype
    assert not outcome.log.rounds  # schedule "none": no recovery
    # |D_f| = 8 in batches of 3: 3 + 3 + 2, per epoch; D_r (24 samples) adds nothing
    per_epoch = 2 * exp.flops.train_step((3, 1, 8, 8)) + exp.flops.train_step((2, 1, 8, 8))
    assert outcome.step_costs.flops == 3 * per_epoch
    assert outcome.step_costs.comm_bytes == 0
    assert outcome.notes == {"steps": 9, "forget_samples": 8}
    assert not math.isnan(exp.evaluate(outcome.state).forget_acc)


def _forbidden_retain_context(method: Unlearner) -> UnlearnContext:
    """A context whose retained samples raise on any read; D_f stays readable."""
    exp = centralized_experiment()
    split = exp.split(exp.scenario.request)
    return exp.context(method, replace(split, retained=forbid_clients(split.retained, (0,))))


def test_never_reads_the_retained_data() -> None:
    exp = centralized_experiment()
    result = GA(epochs=2).unlearn(exp.initial_state, _forbidden_retain_context(GA()))
    assert result.schedule == "none"
    with pytest.raises(MissingRequirementError):  # the tripwire is armed: RandL reads D_r
        RandL(epochs=1).unlearn(exp.initial_state, _forbidden_retain_context(RandL()))


def test_refuses_federated_scenarios() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    with pytest.raises(UnsupportedScenarioError, match="centralized"):
        exp.unlearn(exp.initial_state, exp.scenario.request, GA())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": -1}, "`epochs` to be a positive int, got -1"),
        ({"batch_size": 0}, "`batch_size` to be a positive int, got 0"),
        ({"lr": 0}, "`lr` to be a positive float, got 0"),
        ({"weight_decay": -1e-4}, "`weight_decay` to be a non-negative float"),
        ({"momentum": True}, "`momentum` to be a non-negative float, got True"),
    ],
)
def test_hyperparameters_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GA(**options)  # type: ignore[arg-type]


def test_registered_with_its_defaults() -> None:
    assert unlearner_class("ga") is GA
    method = GA()
    assert (method.title, method.requirements.forget_data) == ("GA", True)
    assert method.options() == {
        "epochs": 5,
        "lr": 1e-4,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 256,
    }
