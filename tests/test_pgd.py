"""PGD: the ball, the reference model, and the target's projected ascent."""

from __future__ import annotations

import math

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import ModelConfig
from fednot.errors import ConfigError
from fednot.federation.aggregate import weighted_average
from fednot.federation.costs import state_bytes
from fednot.federation.fedavg import TrainLog
from fednot.federation.outcome import Trained, UnlearnOutcome
from fednot.models.registry import create_model
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.pgd import (
    PGD,
    ball_radius,
    project_to_ball,
    reference_model,
    squared_distance,
)
from fednot.unlearning.registry import create_unlearner

REQUEST = ForgetRequest(clients=(0,))


def _experiment(**sections: object) -> Experiment:
    federation = sections.pop("federation", None) or tiny_federation()
    return Experiment(tiny_config(**sections), seed=0, federation=federation)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained() -> Trained:
    return _experiment().pretrain(history=PGD().history_spec())


def _step_only(
    exp: Experiment, trained: Trained, request: ForgetRequest, method: PGD
) -> UnlearnOutcome:
    """Run the method through the engine with recovery switched off: the method's own output."""
    exp._recover = lambda state, *_: (state, TrainLog())  # type: ignore[method-assign]
    return exp.unlearn(trained, request, method)


def _params(exp: Experiment) -> list[str]:
    return [n for n, _ in exp.model.named_parameters()]


def _reference(trained: Trained, client: int = 0) -> StateDict:
    history = trained.history
    assert history is not None
    share = history.last_weights[client] / sum(history.last_weights.values())
    return reference_model(trained.state, [history.last_local[client]], [share])


# -- pure functions, hand-computed -----------------------------------------------------------


def test_project_to_ball_scales_onto_the_sphere() -> None:
    w = {"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([100.0]), "n": torch.tensor(7)}
    ref = {"a": torch.zeros(2), "b": torch.zeros(1), "n": torch.tensor(0)}
    out = project_to_ball(w, ref, 2.5, names=["a"])  # only "a" counts: ‖(3, 4)‖ = 5
    assert torch.equal(out["a"], torch.tensor([1.5, 2.0]))
    assert out["b"] is w["b"] and out["n"] is w["n"]
    assert math.isclose(math.sqrt(squared_distance(out, ref, ["a"])), 2.5)


def test_project_to_ball_leaves_points_inside_untouched() -> None:
    w = {"a": torch.tensor([3.0, 4.0])}
    ref = {"a": torch.tensor([1.0, 1.0])}  # distance sqrt(13) < 4
    out = project_to_ball(w, ref, 4.0)
    assert out["a"] is w["a"]
    with pytest.raises(ConfigError, match="non-negative radius"):
        project_to_ball(w, ref, -1.0)


def test_ball_radius_is_a_third_of_the_mean_squared_distance() -> None:
    ref = {"w": torch.zeros(2), "bn.running_mean": torch.zeros(1)}
    randoms = [
        {"w": torch.tensor([3.0, 0.0]), "bn.running_mean": torch.tensor([1e6])},
        {"w": torch.tensor([0.0, 6.0]), "bn.running_mean": torch.tensor([1e6])},
    ]
    # (9 + 36) / 2 / 3 = 7.5; the buffer is not a parameter and is left out
    assert math.isclose(ball_radius(ref, randoms, ["w"]), math.sqrt(7.5))


def test_reference_model_removes_the_target_by_hand() -> None:
    theta = {"w": torch.tensor([3.0, 1.0]), "count": torch.tensor(5)}
    local = {"w": torch.tensor([1.0, 1.0]), "count": torch.tensor(9)}
    ref = reference_model(theta, [local], [0.25])
    # (3 - 0.25) / 0.75 = 11/3 ; (1 - 0.25) / 0.75 = 1
    torch.testing.assert_close(ref["w"], torch.tensor([11 / 3, 1.0]))
    assert ref["count"] is theta["count"]


def test_reference_of_two_equal_clients_is_the_other_local_model() -> None:
    gen = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(5, 3, generator=gen), "b": torch.randn(3, generator=gen)}
    b = {"w": torch.randn(5, 3, generator=gen), "b": torch.randn(3, generator=gen)}
    theta = weighted_average([a, b], [10, 10])
    ref = reference_model(theta, [a], [0.5])
    for key in b:
        torch.testing.assert_close(ref[key], b[key], rtol=0, atol=1e-6)


def test_reference_refuses_to_remove_every_client() -> None:
    theta = {"w": torch.ones(2)}
    with pytest.raises(ConfigError, match="removing every client"):
        reference_model(theta, [theta, theta], [0.5, 0.5])


# -- the method ------------------------------------------------------------------------------


def test_options_are_validated_at_construction() -> None:
    with pytest.raises(ConfigError, match="Expected `epochs` to be a positive int, got 0"):
        PGD(epochs=0)
    with pytest.raises(ConfigError, match="`tau`"):
        PGD(tau=1.5)
    with pytest.raises(ConfigError, match="`distance_threshold`"):
        PGD(distance_threshold=-2.2)
    assert create_unlearner("pgd", {"tau": 0.5}).options()["tau"] == 0.5
    assert PGD.title == "PGD" and PGD.requirements.history and PGD.requirements.forget_data


def test_pgd_never_leaves_its_ball(trained: Trained) -> None:
    exp = _experiment()
    # a huge step size so that every step leaves the ball and the projection is active
    method = PGD(lr=5.0, batch_size=8, epochs=2, tau=0.0)
    outcome = _step_only(exp, trained, REQUEST, method)
    notes = outcome.notes
    assert notes["steps"] >= 4 and notes["projections"] >= 1
    assert notes["max_distance"] <= notes["radius"] + 1e-6  # ‖w - w_ref‖ after every step
    ref = _reference(trained)  # independent w_ref from the stored history
    final = math.sqrt(squared_distance(outcome.state, ref, _params(exp)))
    assert final <= notes["radius"] + 1e-6
    assert final == pytest.approx(notes["radius"], rel=1e-5)  # the projection was binding
    for name, _ in exp.model.named_buffers():
        assert torch.equal(outcome.state[name], ref[name])


def test_radius_follows_the_random_initialisations(trained: Trained) -> None:
    exp = _experiment()
    notes = _step_only(exp, trained, REQUEST, PGD(epochs=1)).notes
    ref = _reference(trained)
    names = _params(exp)
    mean = sum(squared_distance(ref, r.state_dict(), names) for r in _randoms(exp)) / 10
    assert notes["radius"] == pytest.approx(math.sqrt(mean / 3), rel=1e-9)


def _randoms(exp: Experiment) -> list[torch.nn.Module]:
    return [
        create_model(
            "mlp",
            input_shape=(1, 8, 8),
            num_classes=4,
            options={"hidden": (16,)},
            generator=exp.streams.torch("unlearn", "pgd", "init", "radius", i),
        )
        for i in range(10)
    ]


def test_costs_traffic_and_flops(trained: Trained) -> None:
    exp = _experiment()
    outcome = _step_only(exp, trained, REQUEST, PGD())
    assert outcome.step_costs.comm_bytes == 2 * state_bytes(trained.state)  # w_ref down, w up
    # 32 forget samples < batch 128: one ascent step and one accuracy check per epoch
    steps = outcome.notes["steps"]
    shape = (32, 1, 8, 8)
    assert outcome.step_costs.flops == steps * (
        exp.flops.train_step(shape) + exp.flops.forward(shape)
    )
    assert outcome.storage_bytes > 0  # the last local models were kept


def test_two_targets_each_pay_their_transfers(trained: Trained) -> None:
    outcome = _step_only(_experiment(), trained, ForgetRequest(clients=(0, 1)), PGD(epochs=1))
    assert outcome.step_costs.comm_bytes == 4 * state_bytes(trained.state)


def test_distance_threshold_stops_after_the_first_step(trained: Trained) -> None:
    outcome = _step_only(_experiment(), trained, REQUEST, PGD(distance_threshold=1e-12))
    assert outcome.notes["steps"] == 1
    assert "distance" in str(outcome.notes["stop_reason"])


def test_end_to_end_with_recovery_and_determinism(trained: Trained) -> None:
    def once() -> UnlearnOutcome:
        exp = _experiment()
        return exp.unlearn(exp.pretrain(history=PGD().history_spec()), REQUEST, PGD())

    first, second = once(), once()
    assert first.log.rounds and all(r.clients == (1, 2) for r in first.log.rounds)
    assert first.notes == second.notes
    for key, value in first.state.items():
        assert torch.equal(value, second.state[key]), key


def test_partial_forgetting_ascends_around_the_global_model(trained: Trained) -> None:
    exp = _experiment()
    request = ForgetRequest(clients=(0,), classes=(1,))
    outcome = _step_only(exp, trained, request, PGD(lr=5.0, batch_size=4, tau=0.0))
    distance = math.sqrt(squared_distance(outcome.state, trained.state, _params(exp)))
    assert 0 < distance <= outcome.notes["radius"] + 1e-6  # the ball is centred on θ_T


def test_keys_shapes_and_dtypes_with_batchnorm() -> None:
    model = ModelConfig(name="resnet18", options={"width": 4})
    exp = _experiment(model=model, federation=tiny_federation(shape=(3, 8, 8)))
    trained = exp.pretrain(history=PGD().history_spec())
    outcome = _step_only(exp, trained, REQUEST, PGD(epochs=1))
    assert set(outcome.state) == set(trained.state)
    for key, value in trained.state.items():
        assert outcome.state[key].shape == value.shape and outcome.state[key].dtype == value.dtype
    ref = _reference(trained)
    for name, _ in exp.model.named_buffers():  # BatchNorm statistics and counters from w_ref
        assert torch.equal(outcome.state[name], ref[name]), name
