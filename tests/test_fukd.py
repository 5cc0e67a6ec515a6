"""FUKD: the subtraction against a recorded history, the distillation, and the engine's checks."""

from __future__ import annotations

import dataclasses
import functools
import math

import pytest
import torch
from torch import Tensor, nn

from fednot.benchmark.experiment import Experiment
from fednot.config import TrainConfig, UnlearnConfig
from fednot.data.federated import Federation, Samples, UnlabeledSamples
from fednot.data.forget import split_request
from fednot.errors import ConfigError, MissingRequirementError, UnsupportedScenarioError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import FlopMeter, state_bytes
from fednot.federation.fedavg import FedAvg, StopRule
from fednot.federation.history import HistorySpec, TrainingHistory
from fednot.federation.local import LocalRecipe, local_train
from fednot.seeding import SeedStreams
from fednot.testing import forbid_clients, tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fukd import FUKD, distillation_loss, subtract_updates
from fednot.unlearning.model_parts import ModelParts

REQUEST = ForgetRequest(clients=(0,))
SERVER = 32


def _with_server(federation: Federation | None = None) -> Federation:
    """A tiny federation plus a server slice that no client holds and that is not test data."""
    federation = federation or tiny_federation(test_size=64 + SERVER)
    pool, rest = federation.test.source, federation.test.indices
    return dataclasses.replace(
        federation, test=Samples(pool, rest[:-SERVER]), server=Samples(pool, rest[-SERVER:])
    )


def _server_view(federation: Federation) -> UnlabeledSamples:
    assert federation.server is not None
    return UnlabeledSamples(federation.server.source, federation.server.indices)


def _bn_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)
        )


def _bn_run(federation: Federation) -> tuple[StateDict, TrainingHistory]:
    """Three FedAvg rounds of the BN model, storing every round and the update sums."""
    history = TrainingHistory(HistorySpec(every=1, update_sums=True))
    recipe = LocalRecipe(batch_size=8, lr=0.05)
    model = _bn_model()
    fedavg = FedAvg(model, federation, recipe, SeedStreams(0), phase="pretrain", history=history)
    final, _ = fedavg.run(clone_state(model.state_dict()), StopRule(3))
    return final, history


def _context(method: FUKD, federation: Federation, history: TrainingHistory) -> UnlearnContext:
    model = _bn_model()
    return UnlearnContext.create(
        method,
        split_request(federation, REQUEST),
        ModelParts(model, clone_state(model.state_dict())),
        SeedStreams(0),
        history=history.restrict(method.history_spec()),
        server_data=_server_view(federation),
    )


def _experiment(federation: Federation | None = None) -> Experiment:
    config = tiny_config(
        train=TrainConfig(rounds=2, batch_size=8, lr=0.05),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=0),
    )
    return Experiment(config, seed=0, federation=federation or _with_server())


# -- the pure functions -------------------------------------------------------------------------


def test_subtract_updates_by_hand() -> None:
    state = {"w": torch.tensor([1.0, 2.0]), "count": torch.tensor(7)}
    out = subtract_updates(state, [{"w": torch.tensor([0.5, 1.0])}, {"w": torch.tensor([0.25, 0])}])
    assert torch.equal(out["w"], torch.tensor([0.25, 1.0]))
    assert out["count"] is state["count"]


def test_subtraction_removes_the_targets_weighted_updates_of_every_round() -> None:
    federation = _with_server()
    final, history = _bn_run(federation)
    expected = {k: v.clone().double() for k, v in final.items() if v.is_floating_point()}
    for snapshot in history.snapshots:  # θ_T − Σ_t p_0^t ΔM_t^0, from the stored rounds
        p = snapshot.weights[0] / sum(snapshot.weights.values())
        for key, update in snapshot.updates[0].items():
            expected[key] -= p * update.double()
    method = FUKD(epochs=0)  # the subtraction alone
    out = method.unlearn(final, _context(method, federation, history)).state
    for key, value in final.items():
        if value.is_floating_point():
            torch.testing.assert_close(out[key], expected[key].float(), rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(out[key], value), key


def test_distillation_loss_by_hand() -> None:
    teacher = torch.zeros(1, 2)  # softmax (1/2, 1/2)
    student = torch.tensor([[0.0, math.log(3.0)]])  # softmax (1/4, 3/4)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert distillation_loss(student, teacher, 1.0).item() == pytest.approx(kl)
    assert distillation_loss(2 * student, teacher, 2.0).item() == pytest.approx(4 * kl)  # τ²
    assert distillation_loss(student, student, 2.0).item() == pytest.approx(0.0, abs=1e-7)


class _WrongLabels(Samples):
    """A view whose labels are garbage: a method that used them would change its result."""

    @property
    def labels(self) -> Tensor:
        raise AssertionError("labels were read")

    def fetch(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        images, _ = super().fetch(positions)
        return images, torch.full((len(images),), 999, dtype=torch.int64)

    def view(self, indices: Tensor) -> Samples:
        return _WrongLabels(self.source, indices)


def _distilled(
    data: Samples, federation: Federation, epochs: int = 2
) -> tuple[nn.Module, nn.Module]:
    teacher, student = _bn_model(), _bn_model()
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(0.5)
    recipe = LocalRecipe(epochs=epochs, batch_size=8, lr=0.05, momentum=0.9, weight_decay=0.0)
    update = local_train(
        student,
        clone_state(student.state_dict()),
        data,
        federation.preprocess,
        recipe,
        torch.Generator().manual_seed(0),
        flops=FlopMeter(student),
        teacher=teacher,
        loss=functools.partial(distillation_loss, temperature=2.0),
    )
    student.load_state_dict(update.state)
    return student, teacher


def test_distillation_never_reads_labels() -> None:
    federation = _with_server()
    server = _server_view(federation)
    with pytest.raises(MissingRequirementError):
        server.labels  # noqa: B018 - the view refuses
    assert bool((server.fetch(torch.arange(3))[1] == -1).all())
    unlabeled, _ = _distilled(server, federation)
    garbage, _ = _distilled(_WrongLabels(server.source, server.indices), federation)
    for key, value in unlabeled.state_dict().items():
        assert torch.equal(value, garbage.state_dict()[key]), key


def test_distillation_moves_the_student_towards_the_teacher() -> None:
    federation = _with_server()
    server = _server_view(federation)
    x = federation.preprocess(server.fetch(torch.arange(len(server)))[0])

    def gap(student: nn.Module, teacher: nn.Module) -> float:
        student.eval(), teacher.eval()
        with torch.no_grad():
            return distillation_loss(student(x), teacher(x), 2.0).item()

    before = gap(*_distilled(server, federation, epochs=0))
    after = gap(*_distilled(server, federation, epochs=5))
    assert after < 0.5 * before


# -- the method through the engine ---------------------------------------------------------------


def test_missing_server_data_is_a_config_error() -> None:
    exp = _experiment(tiny_federation())  # no server slice
    trained = exp.pretrain(history=FUKD().history_spec())
    with pytest.raises(ConfigError, match="data.server_samples"):
        exp.unlearn(trained, REQUEST, FUKD())


def test_end_to_end_storage_flops_and_no_traffic() -> None:
    exp = _experiment()
    method = FUKD(epochs=2)
    trained = exp.pretrain(history=method.history_spec())
    outcome = exp.unlearn(trained, REQUEST, method)
    theta = trained.state
    floats = sum(v.numel() * v.element_size() for v in theta.values() if v.is_floating_point())
    assert outcome.storage_bytes == 3 * floats  # a running sum per client
    assert outcome.step_costs.comm_bytes == 0
    shape = (SERVER, 1, 8, 8)  # one batch of the 32 server samples per epoch
    assert outcome.step_costs.flops == 2 * (exp.flops.forward(shape) + exp.flops.train_step(shape))
    for key, value in theta.items():
        assert outcome.state[key].shape == value.shape and outcome.state[key].dtype == value.dtype
    assert list(outcome.state) == list(theta)
    assert state_bytes(outcome.state) == state_bytes(theta)


def test_end_to_end_is_deterministic_and_never_reads_client_data() -> None:
    method = FUKD(epochs=2)
    trained = _experiment().pretrain(history=method.history_spec())
    forbidden = _with_server(forbid_clients(tiny_federation(test_size=64 + SERVER), (0,)))
    first = _experiment(forbidden).unlearn(trained, REQUEST, method)
    second = _experiment().unlearn(trained, REQUEST, FUKD(epochs=2))
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)


def test_keeps_keys_shapes_and_dtypes_with_batchnorm() -> None:
    federation = _with_server()
    final, history = _bn_run(federation)
    method = FUKD(epochs=1, batch_size=8)
    ctx = _context(method, federation, history)
    out = method.unlearn(final, ctx).state
    assert list(out) == list(final)
    for key, value in final.items():
        assert out[key].shape == value.shape and out[key].dtype == value.dtype, key
    assert ctx.costs.comm_bytes == 0 and ctx.costs.flops > 0


def test_partial_forgetting_is_unsupported() -> None:
    exp = _experiment()
    trained = exp.pretrain(history=FUKD().history_spec())
    with pytest.raises(UnsupportedScenarioError, match="client-wise"):
        exp.unlearn(trained, ForgetRequest(clients=(0,), indices=(1, 2)), FUKD())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": 0.0}, "Expected `temperature` to be a positive float, got 0.0"),
        ({"epochs": -1}, "epochs"),
        ({"lr": -0.1}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_options_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FUKD(**options)  # type: ignore[arg-type]


def test_declares_history_and_server_data() -> None:
    assert FUKD().history_spec() == HistorySpec(update_sums=True)
    assert FUKD.requirements.history and FUKD.requirements.server_data
    assert not FUKD.requirements.forget_data
    assert (FUKD.name, FUKD.title) == ("fukd", "FUKD")
