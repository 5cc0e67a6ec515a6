"""The contract between an unlearning method and the engine.

A method is a class with one abstract hook, `Unlearner.unlearn`, and a class attribute
`Unlearner.requirements` declaring what it needs. The engine (`fednot.experiment`) owns
everything else: the forget split, the recovery rounds that follow the method's own step,
seeding, cost meters and evaluation. The `UnlearnContext` a method receives exposes only what
its requirements declare; reaching for anything else raises `MissingRequirementError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from fednot.data.federated import Federation, Samples
from fednot.errors import MissingRequirementError
from fednot.federation.costs import Costs
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest, StateDict


@dataclass(frozen=True)
class Requirements:
    """What a method needs beyond the global model and the retained federation.

    Attributes:
        history: updates stored by the server during training (e.g. FedEraser).
        forget_data: the forget samples D_u themselves.
        target_participation: the target client must run a step of the method.
        server_data: data held by the server (e.g. FUKD's unlabeled proxy set).
    """

    history: bool = False
    forget_data: bool = False
    target_participation: bool = False
    server_data: bool = False

    def describe(self) -> str:
        """A short text such as ``"forget data, target participation"`` or ``"none"``."""
        needs = [name.replace("_", " ") for name, flag in vars(self).items() if flag]
        return ", ".join(needs) or "none"


Schedule = Literal["recovery", "train"]


@dataclass(frozen=True)
class UnlearnResult:
    """What a method's own step returns; the engine then runs recovery from ``state``.

    Attributes:
        state: the global state after the method's step.
        schedule: ``"recovery"``: the run's fine-tuning budget and stop rule; ``"train"``: the
            full pre-training recipe with its per-client streams (Retrain).
        costs: communication and computation of the method's own step.
        notes: facts worth recording (e.g. the layers NoT negated).
    """

    state: StateDict
    schedule: Schedule = "recovery"
    costs: Costs = Costs()
    notes: dict[str, Any] = field(default_factory=dict)


class UnlearnContext:
    """What the engine hands a method.

    Always: the request, the retained federation, a scratch model of the architecture, the
    run's initial weights and an ``unlearn`` random stream. The forget data, stored history and
    server data only if the method declared them.
    """

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
        forget: Samples | None = None,
        history: object | None = None,
        server_data: Samples | None = None,
    ) -> None:
        self.method = method
        self.requirements = requirements
        self.request = request
        self.retained = retained
        self.model = model
        self.initial_state = initial_state
        self._streams = streams
        self._forget = forget if requirements.forget_data else None
        self._history = history if requirements.history else None
        self._server_data = server_data if requirements.server_data else None

    def generator(self, *key: object) -> torch.Generator:
        """A generator from the run's ``unlearn`` stream, sub-keyed by ``key``."""
        return self._streams.torch("unlearn", self.method, *key)

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
    def history(self) -> object:
        """The stored training history, only for methods that declare ``history``."""
        if self._history is None:
            raise self._refuse("the stored training history", "history")
        return self._history

    @property
    def server_data(self) -> Samples:
        """Server-side data, only for methods that declare ``server_data``."""
        if self._server_data is None:
            raise self._refuse("server-side data", "server_data")
        return self._server_data


class Unlearner(ABC):
    """Base class of every unlearning method.

    Subclasses set ``name`` (the registry name) and ``requirements``, take their hyperparameters
    as keyword-only constructor arguments with the paper's defaults, and implement `unlearn`.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""  # display name as in its paper (default: ``name``)
    requirements: ClassVar[Requirements] = Requirements()

    def validate(self, model: nn.Module) -> None:  # noqa: B027 - an optional hook
        """Check the method's options against ``model`` before any training (default: nothing)."""

    @abstractmethod
    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Apply the method's own step to the trained global ``state``."""

    def options(self) -> dict[str, Any]:
        """The method's resolved hyperparameters, for the record (public attributes)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
