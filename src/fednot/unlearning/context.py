"""`UnlearnContext`: everything the engine hands a method, and nothing more.

Always available: the request, a scratch model of the architecture, the run's initial weights,
the run's local-training recipe, seeded generators, and the cost counters. Built from a
`fednot.data.forget.ForgetSplit`, it also holds the retained federation and helpers that train
and aggregate while counting communication and FLOPs into the method's step costs (`train`,
`fedavg_round`: the jobs run where the clients' data are, through the engine's back-end, in this
process or on their Flower nodes). The forget data, the stored history and the server's data
are available only to methods that declare them in their `Requirements`.

Every context is built by `UnlearnContext.create`: the engine's (`Experiment.context`), a Flower
target's, and a Flower app's server's, which has a request but no client data (built from the
request alone, its client-data pieces raise `MissingRequirementError`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import torch

from fednot.data.federated import ClientData, Federation, ForbiddenSamples, Preprocess, Samples
from fednot.data.forget import ForgetSplit
from fednot.errors import MissingRequirementError
from fednot.federation.aggregate import clone_state
from fednot.federation.backend import Backend, InProcess, TrainJob
from fednot.federation.costs import Costs, FlopMeter, state_bytes
from fednot.federation.fedavg import FedAvg
from fednot.federation.history import TrainingHistory
from fednot.federation.local import LocalRecipe, LocalUpdate, Loss, local_train
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.requirements import Requirements


class Declares(Protocol):
    """What `UnlearnContext.create` reads of a method: its name and its requirements."""

    @property
    def name(self) -> str:
        """The method's registry name (its streams' key)."""
        ...

    @property
    def requirements(self) -> Requirements:
        """What it declares it needs."""
        ...


class UnlearnContext:
    """What a method receives from the engine; see the module docstring.

    Build one with `UnlearnContext.create`; the constructor's arguments are its resolved parts.
    """

    def __init__(
        self,
        method: str,
        requirements: Requirements,
        request: ForgetRequest,
        model: ModelParts,
        streams: SeedStreams,
        recipe: LocalRecipe,
        split: ForgetSplit | None,
        history: TrainingHistory | None,
        server_data: Samples | None,
        backend: Backend | None,
    ) -> None:
        self.method = method
        self.requirements = requirements
        self.request = request
        self._retained = None if split is None else split.retained
        self.model = model.module
        self.initial_state = model.initial_state
        self.recipe = recipe
        self.flops = model.flops or FlopMeter(model.module)
        self.device = model.device
        self._streams = streams
        self._model_name = model.name
        self._model_options = dict(model.options)
        forget = None if split is None else split.forget
        self._forget = forget if requirements.forget_data else None
        self._history = history if requirements.history else None
        self._server_data = server_data if requirements.server_data else None
        self._comm_bytes = 0
        self._flops = 0
        if backend is None and split is not None:
            backend = InProcess(
                model.module,
                split.retained,
                streams,
                flops=self.flops,
                device=self.device,
                forget=forget,
            )
        self._backend = backend

    @classmethod
    def create(
        cls,
        method: Declares,
        split: ForgetSplit | ForgetRequest,
        model: ModelParts,
        streams: SeedStreams,
        *,
        recipe: LocalRecipe | None = None,
        history: TrainingHistory | None = None,
        server_data: Samples | None = None,
        backend: Backend | None = None,
    ) -> UnlearnContext:
        """The context ``method`` receives; the one way to build one.

        Args:
            method: the method (its ``name`` keys its streams; its ``requirements`` decide what
                the context hands over).
            split: the request's two sides (the retained federation and the forget samples), or
                the request alone where no client data is at hand (a Flower app's server): then
                the retained federation, the forget data and local training raise
                `MissingRequirementError`.
            model: the architecture, its initial weights, device and FLOP meter.
            streams: the run's seed streams (the method's own derive from them).
            recipe: the run's local-training recipe (default: `LocalRecipe`'s defaults).
            history: the recorded training history (kept only if the method declares it).
            server_data: the server's own data (kept only if the method declares it).
            backend: where the clients' jobs run (default: `InProcess` over ``split``'s
                retained clients).
        """
        whole = split if isinstance(split, ForgetSplit) else None
        request = split.request if isinstance(split, ForgetSplit) else split
        return cls(
            method.name,
            method.requirements,
            request,
            model,
            streams,
            recipe or LocalRecipe(),
            whole,
            history,
            server_data,
            backend,
        )

    # -- what the method may read --------------------------------------------------------

    def _refuse(self, what: str, flag: str) -> MissingRequirementError:
        return MissingRequirementError(
            f"Method {self.method!r} asked for {what} but does not declare it "
            f"(requirements.{flag} is False), so the engine does not hand it over. Declare "
            f"`requirements = Requirements({flag}=True)` if the method truly needs it."
        )

    def _absent(self, what: str) -> MissingRequirementError:
        return MissingRequirementError(
            f"Method {self.method!r} asked for {what}, but its context was built from the "
            "request alone, without the clients' data (e.g. on the server of a Flower app, "
            "which keeps none). Build the context from a `ForgetSplit` "
            "(`UnlearnContext.create(method, split, ...)`), or use a method that needs nothing "
            "but the model and ordinary training (not, ft, retrain)."
        )

    @property
    def retained(self) -> Federation:
        """The retained federation: the clients that stay, with what they keep."""
        if self._retained is None:
            raise self._absent("the retained federation")
        return self._retained

    @property
    def forget_data(self) -> Samples:
        """D_u, only for methods that declare ``forget_data``."""
        if self._retained is None and self.requirements.forget_data:
            raise self._absent("the forget data")
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

    def on_server(self, reason: str) -> UnlearnContext:
        """This context as a server that holds no client samples sees it.

        Reading a client's samples or the forget samples raises `MissingRequirementError` with
        ``reason``; what the server keeps (the history, its own data, the model, the streams)
        stays readable. Costs counted on the twin are its own: add ``twin.costs``.
        """
        twin = copy.copy(self)
        if self._retained is not None:
            twin._retained = self._retained.replace(
                ClientData(c.id, ForbiddenSamples(c.train, reason), ForbiddenSamples(c.val, reason))
                for c in self._retained.clients
            )
        if self._forget is not None:
            twin._forget = ForbiddenSamples(self._forget, reason)
        twin._comm_bytes, twin._flops = 0, 0
        return twin

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
            self._model_name,
            input_shape=self.retained.input_shape,
            num_classes=self.retained.num_classes,
            options=self._model_options,
            generator=self.generator("init", *key),
        )
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

    def train(self, jobs: Sequence[TrainJob]) -> list[LocalUpdate]:
        """Run local training where the clients' data are; counts the FLOPs.

        Each job's stream key is the method's own: ``("unlearn", method, *job.stream)``. A job
        on the forget samples (``data="forget"``) needs ``requirements.forget_data``. Costs of
        moving models are the method's to count (`transfer`): only it knows its protocol.
        """
        if any(job.data == "forget" for job in jobs) and self._forget is None:
            raise self._refuse("training on the forget data", "forget_data")
        if self._backend is None:
            raise self._absent("local training on the clients")
        keyed = [replace(job, stream=("unlearn", self.method, *job.stream)) for job in jobs]
        updates = self._backend.train(keyed)
        self.add_costs(flops=sum(u.flops for u in updates))
        return updates

    def train_on_server(
        self,
        state: StateDict,
        data: Samples,
        *key: object,
        recipe: LocalRecipe,
        teacher: StateDict | None = None,
        loss: Loss | None = None,
    ) -> LocalUpdate:
        """Train from ``state`` on data the server holds (e.g. `server_data`); counts the FLOPs.

        `fednot.federation.local.local_train` on the server, with the stream
        ``("unlearn", method, *key)``: a ``teacher`` state's logits are the targets of ``loss``.
        """
        model = None
        if teacher is not None:
            model = copy.deepcopy(self.model)
            model.load_state_dict(teacher)
        update = local_train(
            self.model,
            state,
            data,
            self.preprocess,
            recipe,
            self.generator(*key),
            flops=self.flops,
            device=self.device,
            teacher=model,
            loss=loss,
        )
        self.add_costs(flops=update.flops)
        return update

    def fedavg_round(
        self, state: StateDict, *key: object, recipe: LocalRecipe | None = None
    ) -> StateDict:
        """One FedAvg round of the retained clients from ``state``; counts traffic and FLOPs."""
        fedavg = FedAvg(
            self.model,
            self.retained,
            recipe or self.recipe,
            self._streams,
            phase="/".join(["unlearn", self.method, *map(str, key)]),
            flops=self.flops,
            device=self.device,
            backend=self._backend,
        )
        new_state, record = fedavg.round(state, 1, validate=False)
        self.add_costs(comm_bytes=record.comm_bytes, flops=record.flops)
        return new_state
