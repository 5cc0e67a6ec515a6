"""No method can change the inputs of the methods run after it (issue 30).

Each method's step gets its own copy of the original model and of the initial weights; a step
that writes into the clients' samples or the recorded history stops the run, naming it.
"""

from __future__ import annotations

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.errors import ContractError
from fednot.testing import tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.base import Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.neg_sub import NegSub

torch.set_num_threads(1)


class _Vandal(Unlearner):
    """A plugin whose step writes into what it was handed instead of copying it."""

    name = "vandal"

    def __init__(self, *, target: str = "state") -> None:
        self.target = target

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        if self.target == "state":  # negates the original model in place, and returns it
            for value in state.values():
                value.neg_()
        elif self.target == "initial":
            for value in ctx.initial_state.values():
                value.zero_()
        else:  # the clients' pixels
            ctx.retained.clients[0].train.source.images[:5] = 255
        return UnlearnResult(state)


class _HistoryVandal(NegSub):
    """NegSub, after zeroing a stored local model in place."""

    name = "history_vandal"

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        assert ctx.history is not None
        update = next(iter(ctx.history.last_local.values()))
        next(iter(update.values())).zero_()
        return super().unlearn(state, ctx)


def _experiment() -> Experiment:
    return Experiment(tiny_config(), seed=0, federation=tiny_federation(3))


@pytest.mark.parametrize("target", ["state", "initial"])
def test_a_method_writing_into_its_model_inputs_changes_no_other_method(target: str) -> None:
    exp = _experiment()
    trained = exp.pretrain()
    request = exp.scenario.request
    alone = exp.unlearn(trained, request, "ft").state
    pristine = {k: v.clone() for k, v in trained.state.items()}
    exp.unlearn(trained, request, _Vandal(target=target))
    assert all(torch.equal(pristine[k], trained.state[k]) for k in pristine)
    after = exp.unlearn(trained, request, "ft").state
    assert all(torch.equal(alone[k], after[k]) for k in alone)
    retrain_after = exp.unlearn(trained, request, "retrain").state  # starts from initial weights
    fresh = _experiment()
    retrain_alone = fresh.unlearn(fresh.pretrain(), request, "retrain").state
    assert all(torch.equal(retrain_alone[k], retrain_after[k]) for k in retrain_alone)


def test_a_method_writing_into_the_clients_samples_stops_the_run() -> None:
    exp = _experiment()
    trained = exp.pretrain()
    with pytest.raises(ContractError, match=r"'vandal' wrote into the clients' samples"):
        exp.unlearn(trained, exp.scenario.request, _Vandal(target="samples"))


def test_a_method_writing_into_the_history_stops_the_run() -> None:
    exp = _experiment()
    method = _HistoryVandal()
    trained = exp.pretrain(history=method.history_spec())
    exp.unlearn(trained, exp.scenario.request, NegSub())  # an honest step passes the guard
    with pytest.raises(ContractError, match=r"'history_vandal' wrote into the recorded training"):
        exp.unlearn(trained, exp.scenario.request, method)


def test_the_digest_sees_every_dtype_and_shape_including_scalars() -> None:
    from fednot.unlearning.isolation import content_digest

    state = {
        "n": torch.tensor(8),
        "mask": torch.zeros(3, dtype=torch.bool),
        "w": torch.arange(4.0).reshape(2, 2),
    }
    before = content_digest({"global": state, "rounds": [1, 2]})
    assert before == content_digest(
        {"global": {k: v.clone() for k, v in state.items()}, "rounds": [1, 2]}
    )
    for key, change in (
        ("n", lambda t: t.add_(1)),
        ("mask", lambda t: t[0].fill_(True)),
        ("w", lambda t: t.t_()),
    ):
        copy = {k: v.clone() for k, v in state.items()}
        change(copy[key])
        assert content_digest({"global": copy, "rounds": [1, 2]}) != before, key
