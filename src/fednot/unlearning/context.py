"""`UnlearnContext`: everything the engine hands a method, and nothing more.

Always available: the request, the retained federation, a scratch model of the architecture,
the run's initial weights, the run's local-training recipe, seeded generators, and helpers that
train and aggregate while counting communication and FLOPs into the method's step costs. The
forget data, the stored history and the server's data are available only to methods that declare
them in their `Requirements`.
"""

from __future__ import annotations

import torch
from torch import nn

from fednot.data.federated import Federation, Preprocess, Samples
from fednot.errors import MissingRequirementError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import Costs, FlopMeter, state_bytes
from fednot.federation.fedavg import FedAvg
from fednot.federation.history import TrainingHistory
from fednot.federation.local import LocalRecipe, LocalUpdate, local_train
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Requirements


class UnlearnContext:
    """What a method receives from the engine; see the module docstring."""

    def __init__(
        self,
        *,
        method: str,
        requirements: Requirements,
        request: ForgetRequest,
        retained: Federation,
        model: nn.Module,
        initial_state: StateDict,
        streams: SeedStreams,
        recipe: LocalRecipe | None = None,
        flops: FlopMeter | None = None,
        device: torch.device | str = "cpu",
        model_name: str = "",
        model_options: dict[str, object] | None = None,
        forget: Samples | None = None,
        history: TrainingHistory | None = None,
        server_data: Samples | None = None,
    ) -> None:
        self.method = method
        self.requirements = requirements
        self.request = request
        self.retained = retained
        self.model = model
        self.initial_state = initial_state
        self.recipe = recipe or LocalRecipe()
        self.flops = flops or FlopMeter(model)
        self.device = device
        self._streams = streams
        self._model_name = model_name
        self._model_options = dict(model_options or {})
        self._forget = forget if requirements.forget_data else None
        self._history = history if requirements.history else None
        self._server_data = server_data if requirements.server_data else None
        self._comm_bytes = 0
        self._flops = 0

    # -- what the method may read --------------------------------------------------------

    def _refuse(self, what: str, flag: str) -> MissingRequirementError:
        return MissingRequirementError(
            f"Method {self.method!r} asked for {what} but does not declare it "
            f"(requirements.{flag} is False), so the engine does not hand it over. Declare "
            f"`requirements = Requirements({flag}=True)` if the method truly needs it."
        )

    @property
    def forget_data(self) -> Samples:
        """D_u, only for methods that declare ``forget_data``."""
        if self._forget is None:
            raise self._refuse("the forget data", "forget_data")
        return self._forget

    @property
    def history(self) -> TrainingHistory:
        """The recorded training history, only for methods that declare ``history``."""
        if self._history is None:
            raise self._refuse("the stored training history", "history")
        return self._history

    @property
    def server_data(self) -> Samples:
        """The server's unlabeled data, only for methods that declare ``server_data``."""
        if self._server_data is None:
            raise self._refuse("server-side data", "server_data")
        return self._server_data

    @property
    def preprocess(self) -> Preprocess:
        """The batch preprocessing of the federation."""
        return self.retained.preprocess

    # -- randomness ------------------------------------------------------------------------

    def generator(self, *key: object) -> torch.Generator:
        """A generator from the run's ``unlearn`` stream, sub-keyed by ``key``."""
        return self._streams.torch("unlearn", self.method, *key)

    def fresh_state(self, *key: object) -> StateDict:
        """A new random initialisation of the architecture, seeded by ``key``."""
        model = create_model(
            self._model_name, input_shape=self.retained.input_shape,
            num_classes=self.retained.num_classes, options=self._model_options,
            generator=self.generator("init", *key),
        )  # fmt: skip
        return clone_state(model.state_dict())

    # -- work that costs -------------------------------------------------------------------

    def add_costs(self, *, comm_bytes: int = 0, flops: int = 0) -> None:
        """Count extra traffic or computation of the method's step."""
        self._comm_bytes += comm_bytes
        self._flops += flops

    def transfer(self, state: StateDict, times: int = 1) -> None:
        """Count ``times`` transfers of ``state`` (one download or one upload each)."""
        self.add_costs(comm_bytes=times * state_bytes(state))

    @property
    def costs(self) -> Costs:
        """What the method's step has cost so far."""
        return Costs(self._comm_bytes, self._flops)

    def train_local(
        self, state: StateDict, data: Samples, *key: object, recipe: LocalRecipe | None = None
    ) -> LocalUpdate:
        """Train from ``state`` on ``data`` with the run's recipe (or ``recipe``); counts FLOPs."""
        update = local_train(
            self.model, state, data, self.preprocess, recipe or self.recipe,
            self.generator("local", *key), flops=self.flops, device=self.device,
        )  # fmt: skip
        self.add_costs(flops=update.flops)
        return update

    def fedavg_round(
        self,
        state: StateDict,
        federation: Federation,
        *key: object,
        recipe: LocalRecipe | None = None,
        history: TrainingHistory | None = None,
    ) -> StateDict:
        """One FedAvg round of ``federation`` from ``state``; counts traffic and FLOPs."""
        fedavg = FedAvg(
            self.model, federation, recipe or self.recipe, self._streams,
            phase="/".join(["unlearn", self.method, *map(str, key)]), flops=self.flops,
            device=self.device, history=history,
        )  # fmt: skip
        new_state, record = fedavg.round(state, 1, validate=False)
        self.add_costs(comm_bytes=record.comm_bytes, flops=record.flops)
        return new_state
