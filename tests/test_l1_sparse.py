"""ℓ1-sparse: the penalty schedule, its sparsifying effect, an oracle, the engine contract."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fednot.benchmark.experiment import Experiment
from fednot.config import UnlearnConfig
from fednot.errors import ConfigError, UnsupportedScenarioError
from fednot.federation.costs import FlopMeter
from fednot.federation.outcome import Trained
from fednot.seeding import SeedStreams
from fednot.testing import centralized_experiment, tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.centralized.l1_sparse import L1Sparse, l1_norm, l1_schedule
from fednot.unlearning.registry import create_unlearner


@pytest.fixture(scope="module")
def trained() -> tuple[Experiment, Trained]:
    exp = centralized_experiment()
    return exp, exp.pretrain()


def _run(exp: Experiment, trained: Trained, method: L1Sparse) -> StateDict:
    return exp.unlearn(trained, exp.scenario.request, method).state


# -- the schedule, by hand ---------------------------------------------------------------------


def test_schedule_decays_linearly_from_epoch_zero_then_switches_off() -> None:
    # E = 5, E_no = 1: four ℓ1 epochs with γ·(1 - e/4), then none
    got = [l1_schedule(e, 5, 1, 0.2) for e in range(5)]
    assert got == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0])
    assert got[-1] == 0.0


def test_schedule_without_free_epochs_ends_at_gamma_over_e() -> None:
    assert [l1_schedule(e, 4, 0, 1.0) for e in range(4)] == [1.0, 0.75, 0.5, 0.25]


def test_schedule_keeps_gamma_throughout_when_every_epoch_is_free() -> None:
    # the official code's special case E = E_no
    assert [l1_schedule(e, 3, 3, 0.5) for e in range(3)] == [0.5, 0.5, 0.5]


def test_l1_norm_sums_absolute_values_of_every_tensor() -> None:
    params = [torch.tensor([[1.0, -2.0]]), torch.tensor([-0.5]), torch.tensor([])]
    assert float(l1_norm(params)) == 3.5


# -- the defining property ---------------------------------------------------------------------


def test_a_large_penalty_shrinks_the_weights_l1_norm(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    plain = _run(exp, original, L1Sparse(epochs=5, gamma=0.0, batch_size=8))
    sparse = _run(exp, original, L1Sparse(epochs=5, gamma=0.05, batch_size=8))
    names = [n for n, _ in exp.model.named_parameters()]
    norm_plain = float(l1_norm(plain[n] for n in names))
    norm_sparse = float(l1_norm(sparse[n] for n in names))
    assert norm_sparse < 0.97 * norm_plain


def _reference(
    exp: Experiment, state: StateDict, gammas: list[float], batch_size: int
) -> StateDict:
    """ℓ1 fine-tuning on D_r written out directly, with the official code's ℓ1 form."""
    model = copy.deepcopy(exp.model)
    model.load_state_dict(state)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    retain = exp.split(exp.scenario.request).retain
    generator = SeedStreams(0).torch("unlearn", "l1sparse", "train")
    for gamma in gammas:
        order = torch.randperm(len(retain), generator=generator)
        for images, labels in retain.batches(batch_size, order):
            x = exp.federation.preprocess(images, generator)
            flat = torch.cat([p.view(-1) for p in model.parameters()])
            loss = nn.functional.cross_entropy(model(x), labels)
            loss = loss + gamma * torch.linalg.norm(flat, ord=1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_equals_a_direct_l1_fine_tuning_on_the_retained_data(
    trained: tuple[Experiment, Trained],
) -> None:
    exp, original = trained
    gamma = 0.01
    outcome = exp.unlearn(
        original,
        exp.scenario.request,
        L1Sparse(epochs=3, no_l1_epochs=1, gamma=gamma, batch_size=10),
    )
    gammas = [gamma, gamma / 2, 0.0]
    assert outcome.notes["gammas"] == pytest.approx(gammas)
    expected = _reference(exp, original.state, gammas, 10)
    for key, value in expected.items():
        assert torch.equal(outcome.state[key], value), key


# -- costs and the engine contract -------------------------------------------------------------


def test_counts_one_train_step_per_retained_batch_and_no_traffic(
    trained: tuple[Experiment, Trained],
) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, exp.scenario.request, L1Sparse(epochs=2, batch_size=10))
    retained = len(exp.split(exp.scenario.request).retain)
    assert retained == 24  # 32 samples, a quarter forgotten: batches of 10, 10 and 4
    meter = FlopMeter(exp.model)
    per_epoch = 2 * meter.train_step((10, 1, 8, 8)) + meter.train_step((4, 1, 8, 8))
    assert outcome.step_costs.flops == 2 * per_epoch > 0
    assert outcome.step_costs.comm_bytes == 0
    assert outcome.log.rounds == [] and outcome.log.costs.flops == 0  # no recovery follows


def test_end_to_end_through_the_registry(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    method = create_unlearner("l1sparse", {"epochs": 2, "batch_size": 8})
    outcome = exp.unlearn(original, exp.scenario.request, method)
    metrics = exp.evaluate(outcome.state)
    assert 0.0 <= metrics.retain_acc <= 100.0 and 0.0 <= metrics.forget_acc <= 100.0
    assert outcome.log.stop_reason.startswith("no recovery")


def test_serves_only_the_centralized_scenario() -> None:
    exp = Experiment(
        tiny_config(unlearn=UnlearnConfig(recovery_rounds=0)), 0, federation=tiny_federation()
    )
    with pytest.raises(UnsupportedScenarioError, match="centralized"):
        exp.unlearn(exp.initial_state, exp.scenario.request, L1Sparse())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "`epochs` to be a positive int"),
        ({"batch_size": 2.5}, "`batch_size` to be a positive int"),
        ({"no_l1_epochs": 11}, r"`no_l1_epochs` to be an int in \[0, epochs=10\]"),
        ({"no_l1_epochs": -1}, "`no_l1_epochs`"),
        ({"gamma": -1e-4}, "`gamma` to be a non-negative float"),
        ({"lr": 0}, "`lr` to be a positive float"),
        ({"momentum": 1.0}, "`momentum`"),
        ({"weight_decay": -1}, "`weight_decay`"),
    ],
)
def test_rejects_bad_hyperparameters(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        L1Sparse(**options)  # type: ignore[arg-type]


def test_defaults() -> None:
    method = L1Sparse()
    assert method.options() == {
        "epochs": 10,
        "no_l1_epochs": 0,
        "gamma": 1e-4,
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 256,
    }
    assert method.requirements.describe() == "none"
