"""NegSub: the scalings by hand, the negative-gradient identity, PGD's reference model, costs."""

from __future__ import annotations

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import TrainConfig, UnlearnConfig
from fednot.data.federated import Federation
from fednot.data.forget import split_request
from fednot.errors import ConfigError, FedNotWarning, UnsupportedScenarioError
from fednot.federation.aggregate import weighted_average
from fednot.federation.costs import state_bytes
from fednot.federation.history import HistorySpec, TrainingHistory
from fednot.seeding import SeedStreams
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.neg_sub import NegSub, aggregation_share, subtract_local_models

REQUEST = ForgetRequest(clients=(0,))


def _state(w: list[float], count: int = 3) -> StateDict:
    return {"w": torch.tensor(w), "count": torch.tensor(count)}


def _two_client_history() -> tuple[StateDict, TrainingHistory]:
    """From θ_s = (1, 1): θ_0 = (1, 2) and θ_1 = (3, −1) with equal weights; θ_T = (2, 0.5)."""
    history = TrainingHistory(HistorySpec(last_local_models=True))
    locals_ = {0: _state([1.0, 2.0], 4), 1: _state([3.0, -1.0], 5)}
    history.record(1, _state([1.0, 1.0], 0), locals_, {0: 16.0, 1: 16.0})
    return weighted_average(list(locals_.values()), [16.0, 16.0]), history


def _context(
    method: NegSub, history: TrainingHistory, federation: Federation, request: ForgetRequest
) -> UnlearnContext:
    return UnlearnContext.create(
        method,
        split_request(federation, request),
        ModelParts(torch.nn.Identity(), {}),
        SeedStreams(0),
        history=history.restrict(method.history_spec()),
    )


def _experiment(federation: Federation | None = None) -> Experiment:
    config = tiny_config(
        train=TrainConfig(rounds=2, batch_size=8, lr=0.05),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=0),
    )
    return Experiment(config, seed=0, federation=federation or tiny_federation())


# -- the scalings by hand -------------------------------------------------------------------------


def test_the_default_subtracts_the_targets_weighted_update_by_hand() -> None:
    final, history = _two_client_history()
    method = NegSub()
    assert method.scaling == "update"
    ctx = _context(method, history, tiny_federation(2), REQUEST)
    out = method.unlearn(final, ctx).state
    # θ_T − ½ (θ_0 − θ_s) = (2, 0.5) − ½ (0, 1): the last step without client 0's update
    assert torch.equal(out["w"], torch.tensor([2.0, 0.0]))
    assert out["count"] is final["count"] and ctx.costs.comm_bytes == 0


def test_renormalized_equals_the_other_clients_local_model() -> None:
    final, history = _two_client_history()
    method = NegSub(scaling="renormalize")
    ctx = _context(method, history, tiny_federation(2), REQUEST)
    out = method.unlearn(final, ctx).state
    assert torch.equal(out["w"], torch.tensor([3.0, -1.0]))  # θ_1, PGD's w_ref, exactly
    assert out["count"] is final["count"]  # integer buffers untouched
    assert ctx.costs.comm_bytes == 0 and ctx.costs.flops == 0


@pytest.mark.parametrize(
    ("scaling", "expected"), [("p_u", [1.5, -0.5]), ("one", [1.0, -1.5])]
)  # θ_T − ½θ_0 and θ_T − θ_0
def test_weighted_and_literal_subtraction_by_hand(scaling: str, expected: list[float]) -> None:
    final, history = _two_client_history()
    method = NegSub(scaling=scaling)  # type: ignore[arg-type]
    out = method.unlearn(final, _context(method, history, tiny_federation(2), REQUEST)).state
    assert torch.equal(out["w"], torch.tensor(expected))
    assert list(out) == list(final) and out["count"].dtype == torch.int64


def test_renormalized_removes_weighted_terms_from_a_fedavg_average() -> None:
    generator = torch.Generator().manual_seed(0)
    locals_ = [{"w": torch.randn(5, 3, generator=generator)} for _ in range(3)]
    weights = [1.0, 2.0, 5.0]
    final = weighted_average(locals_, weights)
    one = subtract_local_models(final, locals_[:1], [1 / 8])
    torch.testing.assert_close(one["w"], weighted_average(locals_[1:], weights[1:])["w"])
    two = subtract_local_models(final, locals_[:2], [1 / 8, 2 / 8])
    torch.testing.assert_close(two["w"], locals_[2]["w"])


def test_renormalizing_away_every_client_is_refused() -> None:
    final, history = _two_client_history()
    with pytest.raises(ConfigError, match="Cannot renormalise"):
        subtract_local_models(final, [history.last_local[0], history.last_local[1]], [0.5, 0.5])


def test_share_is_the_weight_of_a_full_round_and_partial_rounds_warn() -> None:
    history = TrainingHistory(HistorySpec(last_local_models=True))
    everyone = {k: _state([float(k), 0.0]) for k in range(3)}
    history.record(1, _state([0.0, 0.0]), everyone, {0: 1.0, 1: 2.0, 2: 5.0})
    assert aggregation_share(history, 1) == pytest.approx(2 / 8)
    history.record(2, _state([1.0, 0.0]), {1: everyone[1], 2: everyone[2]}, {1: 2.0, 2: 5.0})
    with pytest.warns(FedNotWarning, match="partial participation"):
        assert aggregation_share(history, 0) == pytest.approx(1 / 8)


# -- the method through the engine -----------------------------------------------------------------


def test_end_to_end_removes_exactly_the_targets_share_of_the_last_step() -> None:
    exp = _experiment()
    method = NegSub()
    trained = exp.pretrain(history=method.history_spec())
    out = exp.unlearn(trained, REQUEST, method).state
    history = trained.history
    assert history is not None
    start, shares = history.last_start[0], {k: history.last_share[k] for k in (0, 1, 2)}
    w_ref = weighted_average(
        [history.last_local[k] for k in (1, 2)], [history.last_weights[k] for k in (1, 2)]
    )
    moved = False
    for key, theta in trained.state.items():
        if not theta.is_floating_point():
            continue
        others = sum(shares[k] * (history.last_local[k][key] - start[key]) for k in (1, 2))
        torch.testing.assert_close(out[key], start[key] + others, rtol=1e-5, atol=1e-6)
        back = out[key] + shares[0] * (history.last_local[0][key] - start[key])
        torch.testing.assert_close(back, theta, rtol=1e-5, atol=1e-6)
        moved |= not torch.allclose(out[key], w_ref[key], atol=1e-4)
    assert moved  # not PGD's reference model: the others' step is not renormalised


def test_end_to_end_equals_pgds_reference_model_and_counts_storage() -> None:
    exp = _experiment()
    method = NegSub(scaling="renormalize")
    trained = exp.pretrain(history=method.history_spec())
    outcome = exp.unlearn(trained, REQUEST, method)
    history = trained.history
    assert history is not None
    others = [history.last_local[k] for k in (1, 2)]
    w_ref = weighted_average(others, [history.last_weights[k] for k in (1, 2)])
    for key, value in trained.state.items():
        assert outcome.state[key].shape == value.shape and outcome.state[key].dtype == value.dtype
        torch.testing.assert_close(outcome.state[key], w_ref[key], rtol=1e-5, atol=1e-6)
    theta = trained.state
    assert outcome.storage_bytes == 3 * state_bytes(theta) + state_bytes(theta)  # K + one global
    assert outcome.step_costs.comm_bytes == 0 and outcome.step_costs.flops == 0
    assert outcome.notes["shares"] == {"0": pytest.approx(1 / 3)}


def test_partial_forgetting_is_unsupported() -> None:
    exp = _experiment()
    trained = exp.pretrain(history=NegSub().history_spec())
    with pytest.raises(UnsupportedScenarioError, match="client-wise"):
        exp.unlearn(trained, ForgetRequest(clients=(0,), classes=(2,)), NegSub())


def test_options_are_validated_and_history_declared() -> None:
    with pytest.raises(ConfigError, match="Expected `scaling` to be one of"):
        NegSub(scaling="gradient")  # type: ignore[arg-type]
    assert NegSub().history_spec() == HistorySpec(last_local_models=True)
    assert NegSub.requirements.history and not NegSub.requirements.forget_data
    assert (NegSub.name, NegSub.title) == ("negsub", "NegSub")
