"""Every registered method passes the conformance checks shipped in `fednot.testing`."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from fednot.errors import ContractError, MissingRequirementError
from fednot.testing import check_unlearner
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.registry import create_unlearner, unlearner_names

FAST = {
    "mode": {"rounds": 2, "degradation_rounds": 1},
    "fcu": {"iterations": 10},
    "randl": {"epochs": 2},
    "salun": {"epochs": 2},
    "l1sparse": {"epochs": 2},
}


@pytest.mark.parametrize("name", unlearner_names())
def test_method_conforms(name: str) -> None:
    check_unlearner(create_unlearner(name, FAST.get(name)))


class _Base(Unlearner):
    name = "broken"
    requirements: ClassVar[Requirements] = Requirements()

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        return UnlearnResult(dict(state))


class _ChangesDtype(_Base):
    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        return UnlearnResult({k: v.double() for k, v in state.items()})


class _UsesGlobalRandomness(_Base):
    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        return UnlearnResult({k: v + torch.rand(v.shape) for k, v in state.items()})


class _PeeksAtForgetData(_Base):
    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        ctx.retained.client(1)  # allowed
        ctx.forget_data.fetch(torch.arange(1))  # not declared
        return UnlearnResult(dict(state))


@pytest.mark.parametrize(
    ("method", "error", "message"),
    [
        # the engine names the step's contract breach before the harness's own dtype check
        (_ChangesDtype(), ContractError, "torch.float64, where the model has"),
        (_UsesGlobalRandomness(), AssertionError, "different outputs"),
        (_PeeksAtForgetData(), MissingRequirementError, "does not declare it"),
    ],
)
def test_the_checks_catch_broken_methods(method: Unlearner, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        check_unlearner(method)
