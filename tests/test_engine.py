"""The engine's contract: Retrain's oracle, access control, determinism."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.errors import MissingRequirementError
from fednot.federation.fedavg import FedAvg, StopRule
from fednot.federation.local import LocalRecipe
from fednot.testing import forbid_clients, interrupted_at_round, tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext

REQUEST = ForgetRequest(clients=(0,))


def _experiment(federation=None, **sections: object) -> Experiment:  # type: ignore[no-untyped-def]
    config = tiny_config(**sections)
    return Experiment(config, seed=0, federation=federation or tiny_federation())


def test_retrain_equals_fedavg_without_the_forgotten_client() -> None:
    exp = _experiment()
    outcome = exp.unlearn(exp.pretrain().state, REQUEST, "retrain")

    # Independent FedAvg on a federation that never had client 0, same seed and initial weights.
    federation = tiny_federation().without([0])
    fresh = _experiment(federation)  # same seed -> same initial weights
    recipe = LocalRecipe.from_config(fresh.config.train)
    fedavg = FedAvg(fresh.model, federation, recipe, fresh.streams, phase="pretrain")
    expected, log = fedavg.run(dict(fresh.initial_state), StopRule(fresh.config.train.rounds))
    for key in expected:
        assert torch.equal(outcome.state[key], expected[key]), key
    assert all(0 not in r.clients for r in outcome.log.rounds)
    assert outcome.log.costs.comm_bytes == log.costs.comm_bytes


def test_retrain_starts_from_the_original_initial_weights() -> None:
    exp = _experiment()
    again = _experiment()
    for key, value in exp.initial_state.items():
        assert torch.equal(value, again.initial_state[key])
    other = Experiment(tiny_config(), seed=1, federation=tiny_federation())
    assert any(not torch.equal(v, other.initial_state[k]) for k, v in exp.initial_state.items())


@pytest.mark.parametrize("method", ["not", "ft", "retrain"])
def test_method_never_reads_the_forget_data(method: str) -> None:
    exp = _experiment(forbid_clients(tiny_federation(), (0,)))
    # pre-train on the clean federation: only unlearning must never touch client 0's samples
    trained = _experiment().pretrain()
    outcome = exp.unlearn(trained.state, REQUEST, method)
    assert outcome.log.rounds, "recovery ran"
    with pytest.raises(MissingRequirementError):  # the tripwire is armed
        exp.evaluate(outcome.state, REQUEST)


class _ReadsForgetData(Unlearner):
    name = "reads_forget"
    requirements: ClassVar[Requirements] = Requirements(forget_data=True)

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        images, _ = ctx.forget_data.fetch(torch.arange(2))
        return UnlearnResult(dict(state), notes={"read": int(images.numel())})


class _SneaksForgetData(_ReadsForgetData):
    name = "sneaks_forget"
    requirements: ClassVar[Requirements] = Requirements()


def test_tripwire_fires_for_a_method_that_reads_the_forget_data() -> None:
    exp = _experiment(forbid_clients(tiny_federation(), (0,)))
    trained = _experiment().pretrain()
    with pytest.raises(MissingRequirementError, match="clients \\[0\\]"):
        exp.unlearn(trained.state, REQUEST, _ReadsForgetData())


def test_declared_forget_access_is_granted() -> None:
    exp = _experiment()
    outcome = exp.unlearn(exp.pretrain().state, REQUEST, _ReadsForgetData())
    assert outcome.notes["read"] > 0


def test_undeclared_access_fails_loudly() -> None:
    exp = _experiment()
    with pytest.raises(MissingRequirementError, match="does not declare it"):
        exp.unlearn(exp.pretrain().state, REQUEST, _SneaksForgetData())


def test_client_wise_recovery_leaves_the_target_out() -> None:
    exp = _experiment()
    outcome = exp.unlearn(exp.pretrain().state, REQUEST, "not")
    assert all(r.clients == (1, 2) for r in outcome.log.rounds)


def test_same_seed_same_numbers() -> None:
    def once() -> tuple[StateDict, dict[str, float]]:
        exp = _experiment()
        outcome = exp.unlearn(exp.pretrain().state, REQUEST, "not")
        return outcome.state, exp.evaluate(outcome.state, REQUEST).to_dict()

    (state_a, metrics_a), (state_b, metrics_b) = once(), once()
    assert metrics_a == metrics_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_pretraining_is_cached_and_resumable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    exp = _experiment(cache_dir=str(tmp_path))
    first = exp.pretrain()
    second = _experiment(cache_dir=str(tmp_path)).pretrain()
    assert not first.cached and second.cached
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)


def test_interrupted_pretraining_resumes_bit_identically(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = {
        "cache_dir": str(tmp_path),
        "train": tiny_config().train.__class__(rounds=4, batch_size=8),
    }
    uninterrupted = _experiment(cache_dir="", train=config["train"]).pretrain()

    with pytest.raises(KeyboardInterrupt), interrupted_at_round(3):
        _experiment(**config).pretrain()
    assert list(tmp_path.glob("*.partial.pt")), "the finished rounds were checkpointed"

    resumed = _experiment(**config).pretrain()
    assert [r.round for r in resumed.log.rounds] == [1, 2, 3, 4]
    assert all(torch.equal(resumed.state[k], uninterrupted.state[k]) for k in resumed.state)
    assert not list(tmp_path.glob("*.partial.pt")), "the partial checkpoint is removed when done"
