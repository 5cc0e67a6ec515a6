"""BadT: distillation from a competent and an incompetent teacher (Chundawat et al., AAAI 2023)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.errors import ConfigError, UnsupportedScenarioError
from fednot.federation.costs import state_bytes
from fednot.federation.outcome import UnlearnOutcome
from fednot.testing import centralized_experiment, tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.centralized.bad_teacher import (
    BadT,
    bad_teacher_loss,
    retain_subset_size,
    target_distribution,
)
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.registry import unlearner_class

LN3 = math.log(3.0)


def _run(method: BadT) -> tuple[Experiment, UnlearnOutcome]:
    exp = centralized_experiment()
    return exp, exp.unlearn(exp.initial_state, exp.scenario.request, method)


# -- pure pieces ------------------------------------------------------------------------------


def test_target_distribution_picks_the_teacher_per_sample() -> None:
    competent = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    incompetent = torch.tensor([[LN3, 0.0], [LN3, 0.0]])
    target = target_distribution(competent, incompetent, torch.tensor([True, False]))
    assert torch.allclose(target, torch.tensor([[0.75, 0.25], [0.5, 0.5]]))
    hot = target_distribution(competent, 2 * incompetent, torch.tensor([True, True]), 2.0)
    assert torch.allclose(hot, torch.tensor([[0.75, 0.25], [0.75, 0.25]]))  # softmax(z / T)


def test_bad_teacher_loss_by_hand() -> None:
    student = torch.tensor([[LN3, 0.0]])  # q = (3/4, 1/4)
    target = torch.tensor([[0.5, 0.5]])
    kl = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert bad_teacher_loss(student, target).item() == pytest.approx(kl / 2)  # mean over B × C
    one_hot = torch.tensor([[1.0, 0.0]])  # 0 · log 0 = 0
    assert bad_teacher_loss(student, one_hot).item() == pytest.approx(-math.log(0.75) / 2)
    assert bad_teacher_loss(2 * student, target, 2.0).item() == pytest.approx(kl / 2)


def test_bad_teacher_loss_equals_the_codes_kl_div() -> None:
    generator = torch.Generator().manual_seed(0)
    student, teacher = (
        torch.randn(5, 4, generator=generator),
        torch.randn(5, 4, generator=generator),
    )
    target = teacher.softmax(dim=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div warns that "mean" is not the batch mean
        expected = torch.nn.functional.kl_div(student.log_softmax(dim=1), target)
    assert torch.allclose(bad_teacher_loss(student, target), expected)


def test_retain_subset_size_floors_like_the_code() -> None:
    assert retain_subset_size(24, 0.3) == 7
    assert retain_subset_size(10, 0.3) == 3
    assert retain_subset_size(45_000, 0.3) == 13_500
    assert retain_subset_size(5, 0.0) == 0 and retain_subset_size(5, 1.0) == 5


# -- the method -------------------------------------------------------------------------------


def test_end_to_end_uses_thirty_percent_of_retained_and_counts_flops() -> None:
    exp, outcome = _run(BadT(batch_size=4))
    assert set(outcome.state) == set(exp.initial_state)
    for key, value in exp.initial_state.items():
        assert outcome.state[key].shape == value.shape and outcome.state[key].dtype == value.dtype
    assert not outcome.log.rounds  # schedule "none": no recovery
    # 8 forget + floor(0.3 · 24) = 7 retained samples: batches of 4, 4, 4, 3
    assert outcome.notes["retain_samples"] == 7 and outcome.notes["forget_samples"] == 8
    assert outcome.notes["steps"] == 4
    meter = exp.flops

    def batch(size: int) -> int:
        shape = (size, 1, 8, 8)
        return meter.train_step(shape) + 2 * meter.forward(shape)

    assert outcome.step_costs.flops == 3 * batch(4) + batch(3)
    assert outcome.step_costs.comm_bytes == 0
    assert outcome.notes["working_bytes"] == 2 * state_bytes(exp.initial_state)
    assert not math.isnan(exp.evaluate(outcome.state).forget_acc)


def _context(exp: Experiment) -> UnlearnContext:
    return exp.context(BadT(), exp.split(exp.scenario.request))


def _kl_to(exp: Experiment, student: StateDict, teacher: StateDict) -> float:
    """Mean per-sample KL(teacher ‖ student) on D_f, in eval mode."""
    images, _ = exp.split(exp.scenario.request).forget.fetch(torch.arange(8))
    x = exp.federation.preprocess(images)
    model = exp.model.eval()
    with torch.no_grad():
        model.load_state_dict(teacher)
        target = model(x).softmax(dim=1)
        model.load_state_dict(student)
        return float(bad_teacher_loss(model(x), target) * target.shape[1])


def test_forget_samples_move_towards_the_incompetent_teacher() -> None:
    exp = centralized_experiment()
    trained = exp.pretrain().state
    ctx = _context(exp)
    result = BadT(lr=0.01, epochs=5, batch_size=8).unlearn(trained, ctx)
    incompetent = ctx.fresh_state("incompetent")  # the same seeded stream the method drew
    before, after = _kl_to(exp, trained, incompetent), _kl_to(exp, result.state, incompetent)
    assert after < 0.5 * before


def test_the_retain_fraction_sets_the_retained_subset() -> None:
    _, first = _run(BadT(lr=1e-3, batch_size=4))
    _, other = _run(BadT(lr=1e-3, batch_size=4, retain_fraction=0.5))
    assert other.notes["retain_samples"] == 12
    assert any(not torch.equal(first.state[k], other.state[k]) for k in first.state)


def test_refuses_federated_scenarios() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    with pytest.raises(UnsupportedScenarioError, match="centralized"):
        exp.unlearn(exp.initial_state, exp.scenario.request, BadT())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "`epochs` to be a positive int, got 0"),
        ({"batch_size": -3}, "`batch_size` to be a positive int, got -3"),
        ({"lr": "fast"}, "`lr` to be a positive float, got 'fast'"),
        ({"temperature": 0.0}, "`temperature` to be a positive float, got 0.0"),
        ({"retain_fraction": 1.5}, r"`retain_fraction` to be a float in \[0, 1\], got 1.5"),
    ],
)
def test_hyperparameters_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BadT(**options)  # type: ignore[arg-type]


def test_registered_with_its_defaults() -> None:
    assert unlearner_class("badt") is BadT
    method = BadT()
    assert (method.title, method.requirements.forget_data) == ("BadT", True)
    assert method.options() == {
        "epochs": 1,
        "lr": 1e-4,
        "batch_size": 256,
        "temperature": 1.0,
        "retain_fraction": 0.3,
    }
