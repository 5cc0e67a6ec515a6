"""SSD: importances and dampening by hand, weights never grow, α = ∞ is the identity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.scenarios import CentralizedScenario
from fednot.config import ModelConfig, UnlearnConfig
from fednot.errors import ConfigError, UnsupportedScenarioError
from fednot.federation.costs import FlopMeter
from fednot.federation.outcome import Trained
from fednot.testing import centralized_experiment, tiny_config, tiny_federation
from fednot.unlearning.centralized.ssd import SSD, dampen, diagonal_fisher
from fednot.unlearning.registry import create_unlearner


@pytest.fixture(scope="module")
def trained() -> tuple[Experiment, Trained]:
    exp = centralized_experiment()
    return exp, exp.pretrain()


# -- the pure functions, by hand ---------------------------------------------------------------


def test_dampen_by_hand() -> None:
    params = {"w": torch.tensor([1.0, -2.0, 3.0, 4.0])}
    i_f = {"w": torch.tensor([1.0, 10.0, 0.5, 20.0])}
    i_d = {"w": torch.tensor([1.0, 0.5, 0.1, 1.0])}
    # selected where I_f > 10·I_D: elements 1 and 3, scaled by λ·I_D/I_f = 0.05
    out = dampen(params, i_f, i_d, alpha=10.0, lam=1.0)
    torch.testing.assert_close(out["w"], torch.tensor([1.0, -0.1, 3.0, 0.2]))
    out = dampen(params, i_f, i_d, alpha=10.0, lam=4.0)  # factors 0.2
    torch.testing.assert_close(out["w"], torch.tensor([1.0, -0.4, 3.0, 0.8]))
    out = dampen(params, i_f, i_d, alpha=10.0, lam=30.0)  # factors 1.5, bounded by 1
    assert torch.equal(out["w"], params["w"])
    out = dampen(params, i_f, i_d, alpha=0.0, lam=1.0)  # every element with I_f > 0 is selected
    torch.testing.assert_close(out["w"], torch.tensor([1.0, -0.1, 0.6, 0.2]))


def test_dampen_zeroes_weights_the_full_data_does_not_need() -> None:
    out = dampen(
        {"w": torch.tensor([2.0, 3.0])},
        {"w": torch.tensor([1.0, 0.0])},
        {"w": torch.tensor([0.0, 0.0])},
        alpha=10.0,
        lam=1.0,
    )
    assert out["w"].tolist() == [0.0, 3.0]  # I_f = I_D = 0 is not selected (no 0/0)


@pytest.mark.parametrize("seed", range(20))
def test_dampening_never_increases_a_weights_magnitude(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    shape = (7, 5)
    theta = torch.randn(shape, generator=g) * 10
    i_f = torch.rand(shape, generator=g) ** 4 * 10  # heavy spread, some tiny values
    i_d = torch.rand(shape, generator=g) ** 4
    i_d[torch.rand(shape, generator=g) < 0.2] = 0.0
    alpha = float(torch.rand(1, generator=g)) * 3
    lam = float(torch.rand(1, generator=g)) * 5
    out = dampen({"w": theta}, {"w": i_f}, {"w": i_d}, alpha, lam)["w"]
    assert (out.abs() <= theta.abs()).all()
    assert ((out == 0) | (out.sign() == theta.sign())).all()
    assert out.dtype == theta.dtype and out.shape == theta.shape


def test_infinite_alpha_changes_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(4, 3, generator=g)
    i_f = torch.rand(4, 3, generator=g) + 1.0
    i_d = torch.zeros(4, 3)  # ∞·0 is NaN: still not selected
    i_d[0] = 1e-9
    out = dampen({"w": theta}, {"w": i_f}, {"w": i_d}, float("inf"), 1.0)
    assert torch.equal(out["w"], theta)


def test_dampen_requires_importances_for_every_parameter() -> None:
    with pytest.raises(ConfigError, match="missing \\['b'\\]"):
        dampen(
            {"w": torch.ones(1), "b": torch.ones(1)},
            {"w": torch.ones(1)},
            {"w": torch.ones(1)},
            10.0,
            1.0,
        )


def _linear() -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()  # uniform softmax: dCE/dz = (0.5, 0.5) - onehot(y)
    return layer


def test_importance_by_hand_on_a_linear_model() -> None:
    x1, x2 = torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 0.0]])
    y1, y2 = torch.tensor([0]), torch.tensor([1])
    # sample 1: dz = (-0.5, 0.5), dW = dz ⊗ x1 = [[-0.5, -1], [0.5, 1]], db = (-0.5, 0.5)
    # sample 2: dz = (0.5, -0.5), dW = [[1, 0], [-1, 0]], db = (0.5, -0.5)
    one_per_batch = diagonal_fisher(_linear(), [(x1, y1), (x2, y2)])
    torch.testing.assert_close(one_per_batch["weight"], torch.tensor([[0.625, 0.5], [0.625, 0.5]]))
    torch.testing.assert_close(one_per_batch["bias"], torch.tensor([0.25, 0.25]))
    # one batch of both: the batch-mean gradient is squared, so the scale depends on batching
    together = diagonal_fisher(_linear(), [(torch.cat([x1, x2]), torch.cat([y1, y2]))])
    torch.testing.assert_close(together["weight"], torch.tensor([[0.0625, 0.25], [0.0625, 0.25]]))
    torch.testing.assert_close(together["bias"], torch.tensor([0.0, 0.0]))


def test_importance_leaves_the_models_gradients_alone() -> None:
    layer = _linear()
    diagonal_fisher(layer, [(torch.ones(1, 2), torch.tensor([0]))])
    assert layer.weight.grad is None and layer.bias.grad is None


# -- real runs ---------------------------------------------------------------------------------


def test_a_real_run_dampens_some_weights_and_grows_none(
    trained: tuple[Experiment, Trained],
) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, exp.scenario.request, SSD(alpha=1.0, batch_size=8))
    assert outcome.notes["dampened"] > 0 and outcome.notes["full_samples"] == 32
    for key, before in original.state.items():
        assert (outcome.state[key].abs() <= before.abs()).all(), key


def test_infinite_alpha_returns_the_trained_model(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, exp.scenario.request, SSD(alpha=float("inf")))
    assert outcome.notes["dampened"] == 0
    assert all(torch.equal(outcome.state[k], v) for k, v in original.state.items())


def test_counts_one_train_step_per_batch_of_each_pass_and_no_traffic(
    trained: tuple[Experiment, Trained],
) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, exp.scenario.request, SSD(batch_size=5))
    meter = FlopMeter(exp.model)
    step = {n: meter.train_step((n, 1, 8, 8)) for n in (5, 3, 2)}
    forget = step[5] + step[3]  # 8 forget samples
    full = 6 * step[5] + step[2]  # all 32 samples
    assert outcome.step_costs.flops == forget + full
    assert outcome.step_costs.comm_bytes == 0 and outcome.log.rounds == []


def test_buffers_are_untouched_and_keys_shapes_dtypes_kept() -> None:
    exp = centralized_experiment(model=ModelConfig(name="resnet18", options={"width": 4}))
    original = exp.pretrain()
    outcome = exp.unlearn(original, exp.scenario.request, SSD(alpha=1.0, batch_size=16))
    state = outcome.state
    assert set(state) == set(original.state)
    params = {n for n, _ in exp.model.named_parameters()}
    buffers = [k for k in original.state if k not in params]
    assert any("running_mean" in k for k in buffers)
    assert any(original.state[k].dtype == torch.int64 for k in buffers)
    for key, value in original.state.items():
        assert state[key].shape == value.shape and state[key].dtype == value.dtype
        if key in buffers:
            assert torch.equal(state[key], value), key
    assert outcome.notes["dampened"] > 0


def test_end_to_end_through_the_registry(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, exp.scenario.request, create_unlearner("ssd"))
    metrics = exp.evaluate(outcome.state)
    assert 0.0 <= metrics.forget_acc <= 100.0 and 0.0 <= metrics.test_acc <= 100.0
    assert outcome.log.stop_reason.startswith("no recovery")


def test_class_wise_request_runs() -> None:
    config = tiny_config(
        num_clients=1,
        scenario=CentralizedScenario(centralized_forget="class", classes=(1,)),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=0),
    )
    exp = Experiment(config, 0, federation=tiny_federation(num_clients=1))
    outcome = exp.unlearn(exp.pretrain(), exp.scenario.request, SSD())
    assert outcome.notes["full_samples"] == 32


def test_serves_only_the_centralized_scenario() -> None:
    exp = Experiment(
        tiny_config(unlearn=UnlearnConfig(recovery_rounds=0)), 0, federation=tiny_federation()
    )
    with pytest.raises(UnsupportedScenarioError, match="centralized"):
        exp.unlearn(exp.initial_state, exp.scenario.request, SSD())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": -1.0}, "`alpha` to be a non-negative float"),
        ({"alpha": float("nan")}, "`alpha`"),
        ({"lam": -0.5}, "`lam` to be a non-negative"),
        ({"lam": float("inf")}, "`lam`"),
        ({"batch_size": 0}, "`batch_size` to be a positive int"),
        ({"batch_size": True}, "`batch_size`"),
    ],
)
def test_rejects_bad_hyperparameters(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SSD(**options)  # type: ignore[arg-type]


def test_defaults() -> None:
    method = SSD()
    assert method.options() == {"alpha": 10.0, "lam": 1.0, "batch_size": 128}
    assert method.requirements.forget_data
