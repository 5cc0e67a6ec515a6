"""FedEraser: the calibration math by hand, the replay oracles, and the engine's accounting."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from fednot.benchmark.experiment import Experiment
from fednot.config import TrainConfig, UnlearnConfig
from fednot.data.federated import Federation
from fednot.data.forget import split_request
from fednot.errors import ConfigError, UnsupportedScenarioError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import state_bytes
from fednot.federation.fedavg import FedAvg, StopRule
from fednot.federation.history import HistorySpec, Snapshot, TrainingHistory
from fednot.federation.local import LocalRecipe, LocalUpdate, local_train
from fednot.seeding import SeedStreams
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.federaser import (
    FedEraser,
    calibrated_step,
    calibration_steps,
    per_layer_step,
    replay,
    uncalibrated_step,
)
from fednot.unlearning.model_parts import ModelParts

REQUEST = ForgetRequest(clients=(0,))
RECIPE = LocalRecipe(batch_size=8, lr=0.05)


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def _bn_model() -> nn.Module:
    """A tiny MLP with BatchNorm: float running statistics and an integer counter."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)
        )


def _bn_run(
    federation: Federation, rounds: int, every: int
) -> tuple[StateDict, StateDict, TrainingHistory]:
    """FedAvg of the BN model with history: (initial state, final state, history)."""
    model = _bn_model()
    history = TrainingHistory(HistorySpec(every=every))
    fedavg = FedAvg(model, federation, RECIPE, SeedStreams(0), phase="pretrain", history=history)
    start = clone_state(model.state_dict())
    final, _ = fedavg.run(dict(start), StopRule(rounds))
    return start, final, history


def _context(
    method: FedEraser, history: TrainingHistory, request: ForgetRequest = REQUEST
) -> UnlearnContext:
    federation = tiny_federation()
    model = _bn_model()
    return UnlearnContext.create(
        method,
        split_request(federation, request),
        ModelParts(model, clone_state(model.state_dict())),
        SeedStreams(0),
        recipe=RECIPE,
        history=history.restrict(method.history_spec()),
    )


def _experiment(federation: Federation | None = None, rounds: int = 3) -> Experiment:
    config = tiny_config(
        train=TrainConfig(rounds=rounds, batch_size=8, lr=0.05),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=0),
    )
    return Experiment(config, seed=0, federation=federation or tiny_federation())


# -- the pure steps, by hand ------------------------------------------------------------------


def test_uncalibrated_step_is_the_weighted_average_of_updates() -> None:
    state = {"w": _t(1.0, 2.0), "count": torch.tensor(5)}
    updates = {1: {"w": _t(2.0, 0.0)}, 2: {"w": _t(0.0, 4.0)}}
    out = uncalibrated_step(state, updates, {1: 1.0, 2: 3.0})
    assert torch.equal(out["w"], _t(1.5, 5.0))  # 1 + 2/4, 2 + 3·4/4
    assert out["count"] is state["count"]


def test_calibrated_step_takes_magnitude_from_storage_direction_from_calibration() -> None:
    state = {"a": _t(0.0), "b": _t(1.0)}
    stored = {1: {"a": _t(3.0), "b": _t(4.0)}, 2: {"a": _t(1.0), "b": _t(0.0)}}  # norms 5, 1
    new = {1: {"a": _t(0.0), "b": _t(2.0)}, 2: {"a": _t(-3.0), "b": _t(0.0)}}  # directions
    out = calibrated_step(state, stored, new, {1: 1.0, 2: 1.0})
    # Ũ_1 = 5·(0, 1) and Ũ_2 = 1·(−1, 0): one global norm per client, across tensors
    assert torch.equal(out["a"], _t(-0.5)) and torch.equal(out["b"], _t(3.5))


def test_per_layer_step_is_the_official_per_tensor_rule() -> None:
    state = {"a": _t(0.0), "b": _t(1.0)}
    stored = {1: {"a": _t(3.0), "b": _t(4.0)}, 2: {"a": _t(1.0), "b": _t(0.0)}}  # means 2, 2
    new = {1: {"a": _t(0.0), "b": _t(2.0)}, 2: {"a": _t(-2.0), "b": _t(2.0)}}  # means −1, 2
    out = per_layer_step(state, stored, new)
    assert torch.equal(out["a"], _t(-2.0)) and torch.equal(out["b"], _t(3.0))
    paper = calibrated_step(state, stored, new, {1: 1.0, 2: 1.0})
    assert not torch.equal(paper["a"], out["a"])


def test_a_zero_calibration_update_contributes_nothing() -> None:
    state = {"w": _t(1.0, 1.0)}
    out = calibrated_step(state, {1: {"w": _t(3.0, 4.0)}}, {1: {"w": _t(0.0, 0.0)}}, {1: 1.0})
    assert torch.equal(out["w"], state["w"])
    assert torch.equal(
        per_layer_step(state, {1: {"w": _t(3.0, 4.0)}}, {1: {"w": _t(0, 0)}})["w"], state["w"]
    )


# -- replay oracles -----------------------------------------------------------------------------


def test_replay_weights_the_retained_clients_by_sample_count() -> None:
    updates = {0: {"w": _t(4.0)}, 1: {"w": _t(8.0)}, 2: {"w": _t(2.0)}}
    snapshot = Snapshot(1, {"w": _t(0.0)}, updates, {0: 1.0, 1: 1.0, 2: 3.0})
    assert torch.equal(replay([snapshot], {1, 2})["w"], _t(3.5))  # (1·8 + 3·2) / 4
    # the official code averages with equal weights
    assert torch.equal(replay([snapshot], {1, 2}, calibration="per_layer_mean")["w"], _t(5.0))


def test_nothing_forgotten_and_no_calibration_replays_the_original_trajectory() -> None:
    federation = tiny_federation()
    start, final, history = _bn_run(federation, rounds=3, every=1)
    assert "2.running_mean" in history.snapshots[0].updates[0]  # BN statistics are updates
    assert "2.num_batches_tracked" not in history.snapshots[0].updates[0]
    out = replay(history.snapshots, federation.ids, calibration="none")
    assert set(out) == set(final)
    for key, value in final.items():
        if value.is_floating_point():
            torch.testing.assert_close(out[key], value, rtol=1e-5, atol=1e-6)
            assert not torch.allclose(value, start[key]), key  # training moved every tensor
        else:  # integer buffers are not stored as updates: those of the replay start
            assert torch.equal(out[key], start[key])


def test_first_reconstructed_round_equals_retrains_first_round() -> None:
    federation = tiny_federation()
    _, _, history = _bn_run(federation, rounds=2, every=1)

    def refuse(*_: object) -> dict[int, StateDict]:
        raise AssertionError("the first stored round needs no calibration")

    out = replay(history.snapshots[:1], {1, 2}, calibration="per_client", train=refuse)
    # Retrain's first round: FedAvg without client 0 from the same start, same client streams
    fedavg = FedAvg(_bn_model(), federation.without([0]), RECIPE, SeedStreams(0), phase="pretrain")
    expected, _ = fedavg.round(clone_state(_bn_model().state_dict()), 1, validate=False)
    for key, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(out[key], value, rtol=1e-5, atol=1e-6)


# -- calibration training ---------------------------------------------------------------------


def test_a_step_budget_equals_local_training_for_whole_epochs() -> None:
    federation = tiny_federation()
    data = federation.client(1).train
    recipe = LocalRecipe(epochs=2, batch_size=8, lr=0.05)
    model = _bn_model()
    start = clone_state(model.state_dict())
    meter = FedAvg(model, federation, recipe, SeedStreams(0), phase="p").flops

    def train(recipe: LocalRecipe) -> LocalUpdate:
        return local_train(
            model,
            start,
            data,
            federation.preprocess,
            recipe,
            torch.Generator().manual_seed(3),
            flops=meter,
        )

    steps = 2 * math.ceil(len(data) / 8)
    ours, theirs = train(replace(recipe, epochs=1, steps=steps)), train(recipe)
    assert all(torch.equal(ours.state[k], theirs.state[k]) for k in theirs.state)
    assert ours.flops == theirs.flops
    half = train(replace(recipe, steps=3))
    assert half.flops == 3 * meter.train_step((8, 1, 8, 8))


@pytest.mark.parametrize(
    ("ratio", "epochs", "steps"), [(0.5, 1, 2), (0.1, 1, 1), (0.5, 3, 6), (1.0, 2, 8)]
)
def test_calibration_steps(ratio: float, epochs: int, steps: int) -> None:
    assert calibration_steps(32, LocalRecipe(epochs=epochs, batch_size=8), ratio) == steps


# -- the method ---------------------------------------------------------------------------------


@pytest.mark.parametrize("calibration", ["per_client", "per_layer_mean", "none"])
def test_unlearn_keeps_keys_shapes_dtypes_and_integer_buffers(calibration: str) -> None:
    _, final, history = _bn_run(tiny_federation(), rounds=3, every=1)
    method = FedEraser(delta_t=1, calibration=calibration)  # type: ignore[arg-type]
    ctx = _context(method, history)
    out = method.unlearn(final, ctx).state
    assert list(out) == list(final)
    for key, value in final.items():
        assert out[key].shape == value.shape and out[key].dtype == value.dtype, key
    counter = "2.num_batches_tracked"
    assert torch.equal(out[counter], history.snapshots[0].global_state[counter])
    calibrated = 0 if calibration == "none" else 2
    assert ctx.costs.comm_bytes == calibrated * 2 * 2 * state_bytes(final)


def test_end_to_end_storage_traffic_and_flops() -> None:
    exp = _experiment(rounds=3)
    method = FedEraser(delta_t=2)  # stores rounds 1 and 3: ⌈3/2⌉ = 2 snapshots
    trained = exp.pretrain(history=method.history_spec())
    outcome = exp.unlearn(trained, REQUEST, method)
    theta = trained.state
    ints = sum(v.numel() * v.element_size() for v in theta.values() if not v.is_floating_point())
    stored, clients = 2, 3
    assert outcome.storage_bytes == stored * ((clients + 1) * state_bytes(theta) - clients * ints)
    assert outcome.notes["calibrated_rounds"] == [3]
    # one calibrated round, two remaining clients, each down + up
    assert outcome.step_costs.comm_bytes == 1 * 2 * 2 * state_bytes(theta)
    steps = calibration_steps(32, LocalRecipe.from_config(exp.config.train), 0.5)
    assert outcome.step_costs.flops == 2 * steps * exp.flops.train_step((8, 1, 8, 8))
    assert not outcome.log.rounds  # recovery budget 0: the state is the method's
    assert all(not torch.equal(outcome.state[k], theta[k]) for k in theta)


def test_partial_forgetting_is_unsupported() -> None:
    exp = _experiment()
    method = FedEraser()
    trained = exp.pretrain(history=method.history_spec())
    with pytest.raises(UnsupportedScenarioError, match="client-wise"):
        exp.unlearn(trained, ForgetRequest(clients=(0,), classes=(1,)), method)


def test_a_history_with_other_spacing_is_refused() -> None:
    exp = _experiment()
    trained = exp.pretrain(history=HistorySpec(every=2))
    with pytest.raises(ConfigError, match="needs the rounds \\[1, 2, 3\\]"):
        exp.unlearn(trained, REQUEST, FedEraser(delta_t=1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delta_t": -1}, "Expected `delta_t` to be a positive int, got -1"),
        ({"delta_t": True}, "delta_t"),
        ({"calibration_ratio": 0.0}, "calibration_ratio"),
        ({"calibration": "per_layer"}, "calibration"),
    ],
)
def test_options_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FedEraser(**options)  # type: ignore[arg-type]


def test_declares_its_history() -> None:
    assert FedEraser(delta_t=3).history_spec() == HistorySpec(every=3)
    assert FedEraser.requirements.history and not FedEraser.requirements.forget_data
    assert (FedEraser.name, FedEraser.title) == ("federaser", "FedEraser")
