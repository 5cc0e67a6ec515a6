"""Where the clients' work runs: the engine's one interface to them.

The round loop (`fednot.federation.fedavg.FedAvg`), the per-request flow and the stop rules
(`fednot.benchmark.experiment.Experiment`) and the cost accounting are written once. They hand the
clients' work to a `Backend`, which runs it where the data are:

- `InProcess` (here): every client's data in this process; a job is a call of
  `fednot.federation.local.local_train`. The engine's speed, and the reference numbers.
- ``fednot.integrations.flower.backend.FlowerBackend``: every job is a Flower message to the
  client's SuperNode, whose ClientApp runs the same `local_train` on its own data.

A job names its client, the model it starts from, the seed stream it draws from and the recipe;
which of the client's samples it trains on is the backend's view of the federation (a backend is
built for one view: all clients, or the retained side of a request), so both back-ends train on
the same samples with the same randomness and return bit-identical updates.

A method's own step is not a client's job: the per-request flow hands it to a
``fednot.unlearning.step.StepBackend``, a `Backend` that also runs steps. `InProcess` is one
(`InProcess.unlearn_step`), typed here through `Step` so that the engine names no method.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import torch
from torch import nn

from fednot.data.federated import Federation, Samples
from fednot.data.forget import ForgetSplit
from fednot.federation.costs import FlopMeter
from fednot.federation.local import (
    LocalRecipe,
    LocalUpdate,
    Loss,
    Penalty,
    accuracy,
    local_train,
)
from fednot.seeding import SeedStreams
from fednot.types import StateDict

_Context = TypeVar("_Context", contravariant=True)
_Result = TypeVar("_Result", covariant=True)
_C = TypeVar("_C")
_R = TypeVar("_R")


@dataclass(frozen=True)
class TrainJob:
    """One client's local training (`fednot.federation.local.local_train`).

    Attributes:
        client: who trains.
        state: the model it starts from.
        stream: the key of the seed stream it draws from, e.g. ``("client", "recovery", 3, 4)``.
        recipe: how it trains.
        data: ``train``: the client's samples of the view; ``forget``: the request's forget
            samples, which only its targets hold (methods that declare ``forget_data``).
        teacher: a model whose predictions replace the labels (MoDE's memory guidance).
        loss: a loss of (logits, labels) instead of the cross-entropy, and ``penalty`` a
            regulariser of the weights by epoch (in-process only: a function does not travel
            to a client's node).
    """

    client: int
    state: StateDict
    stream: tuple[object, ...]
    recipe: LocalRecipe
    data: Literal["train", "forget"] = "train"
    teacher: StateDict | None = None
    loss: Loss | None = None
    penalty: Penalty | None = None


class Backend(Protocol):
    """Runs the clients' work of one view of the federation; see the module docstring."""

    @property
    def validates_every_round(self) -> bool:
        """Whether FedAvg validates after every round even when no stop rule needs it."""
        ...

    def train(self, jobs: Sequence[TrainJob]) -> list[LocalUpdate]:
        """Run ``jobs``; their updates, in job order."""
        ...

    def val_accuracy(self, state: StateDict) -> float:
        """Accuracy (%) of ``state`` on the view's validation samples, pooled."""
        ...

    def round_extras(self) -> dict[str, float]:
        """What the back-end measured during the last `train` call (e.g. wire bytes)."""
        ...


class Step(Protocol[_Context, _Result]):
    """What `InProcess.unlearn_step` calls: a method (``fednot.unlearning.base.Unlearner``)."""

    def unlearn(self, state: StateDict, ctx: _Context) -> _Result:
        """The method's own step from ``state`` with the engine's context ``ctx``."""
        ...


BackendFactory = Callable[[Federation, ForgetSplit | None], Backend]
"""A back-end for a view of the federation: all clients, or the retained side of a request."""


class InProcess:
    """Every client's data in this process (the engine's back-end).

    Args:
        model: the scratch model jobs train.
        federation: the view: whose samples each client trains and validates on.
        streams: the run's (training) seed streams, which the job's stream keys index.
        flops: the FLOP meter of ``model``.
        device: where training runs.
        eval_batch_size: the batch size of validation.
        forget: the request's forget samples, for ``forget`` jobs.
    """

    validates_every_round = True  # validation is cheap in-process; the curves use it

    def __init__(
        self,
        model: nn.Module,
        federation: Federation,
        streams: SeedStreams,
        *,
        flops: FlopMeter,
        device: torch.device | str = "cpu",
        eval_batch_size: int = 512,
        forget: Samples | None = None,
    ) -> None:
        self.model = model
        self.federation = federation
        self.streams = streams
        self.flops = flops
        self.device = device
        self.eval_batch_size = eval_batch_size
        self.forget = forget
        self._val: Samples | None = None  # pooled on first use: a view may hold no client
        self._teacher: nn.Module | None = None

    def train(self, jobs: Sequence[TrainJob]) -> list[LocalUpdate]:
        """`local_train` for each job, on the client's samples of the view."""
        return [self._train(job) for job in jobs]

    def _train(self, job: TrainJob) -> LocalUpdate:
        if job.data == "forget":
            assert self.forget is not None, "a forget job needs the view's forget samples"
            data = self.forget
        else:
            data = self.federation.client(job.client).train
        teacher = None
        if job.teacher is not None:
            teacher = self._teacher = self._teacher or copy.deepcopy(self.model)
            teacher.load_state_dict(job.teacher)
        return local_train(
            self.model,
            job.state,
            data,
            self.federation.preprocess,
            job.recipe,
            self.streams.torch(*job.stream),
            flops=self.flops,
            device=self.device,
            teacher=teacher,
            loss=job.loss,
            penalty=job.penalty,
        )

    def val_accuracy(self, state: StateDict) -> float:
        """Accuracy (%) on the view's pooled validation samples."""
        if self._val is None:
            self._val = self.federation.pooled_val()
        self.model.load_state_dict(state)
        return accuracy(
            self.model,
            self._val,
            self.federation.preprocess,
            batch_size=self.eval_batch_size,
            device=self.device,
        )

    def round_extras(self) -> dict[str, float]:
        """Nothing beyond fednot's own counts."""
        return {}

    def unlearn_step(self, method: Step[_C, _R], state: StateDict, ctx: _C) -> _R:
        """``method.unlearn`` here, with the context's data."""
        return method.unlearn(state, ctx)
