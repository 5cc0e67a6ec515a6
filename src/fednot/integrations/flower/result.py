"""What a fednot Flower run did, in the engine's types; ``result.json`` is written from it.

A served request carries the engine's own `UnlearnOutcome` (the method's step costs, notes and
recovery log, as `fednot.benchmark.experiment.Experiment.unlearn` returns them in simulation),
next to what only a deployment measures: which nodes left, the server's test accuracy around
the step, and the targets' accuracy on their own forget data, measured on their nodes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fednot.federation.fedavg import TrainLog
from fednot.federation.outcome import UnlearnOutcome
from fednot.integrations.flower.identity import Refusal
from fednot.types import ForgetRequest, StateDict


@dataclass(frozen=True)
class Readings:
    """An accuracy in percent: before the request, after the method's step, after recovery."""

    before: float
    after: float
    after_step: float | None = None  # not measured for the forget data (it is on the nodes)

    def to_dict(self) -> dict[str, float]:
        """``{"before", "after_step", "after"}`` (``after_step`` only where measured)."""
        steps = {} if self.after_step is None else {"after_step": self.after_step}
        return {"before": self.before, **steps, "after": self.after}


@dataclass(frozen=True)
class ServedRequest:
    """One request served.

    Attributes:
        request: the request, as merged from the clients' filings.
        outcome: the engine's outcome, without its states (the run's ``state`` is the model).
        excluded: the fednot client ids that left the federation for it.
        test_acc: the server's test accuracy.
        forget_acc: the targets' accuracy on their own forget data, before and after.
    """

    request: ForgetRequest
    outcome: UnlearnOutcome
    excluded: tuple[int, ...]
    test_acc: Readings
    forget_acc: Readings

    @classmethod
    def of(
        cls,
        request: ForgetRequest,
        outcome: UnlearnOutcome,
        excluded: tuple[int, ...],
        test_acc: Readings,
        forget_acc: Readings,
    ) -> ServedRequest:
        """The record of ``outcome``, its states dropped so that a run keeps one model."""
        light = replace(outcome, state={}, step_state=None)
        return cls(request, light, excluded, test_acc, forget_acc)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``result.json``'s ``requests`` entries)."""
        return {
            "request": self.request.to_dict(),
            "method": self.outcome.method,
            "excluded": list(self.excluded),
            "step_costs": asdict(self.outcome.step_costs),
            "notes": self.outcome.notes,
            "recovery": self.outcome.log.to_dict(),
            "test_acc": self.test_acc.to_dict(),
            "forget_acc": self.forget_acc.to_dict(),
        }


@dataclass
class FlowerResult:
    """What a fednot Flower run did; ``state`` is the final global model."""

    seed: int
    method: str
    clients: dict[int, int]  # fednot client id -> Flower node id
    pretrain: TrainLog
    pretrain_test_acc: float
    state: StateDict
    requests: list[ServedRequest] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)  # by message type
    bytes_received: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the model)."""
        return {
            "seed": self.seed,
            "method": self.method,
            "clients": {str(k): v for k, v in self.clients.items()},
            "pretrain": self.pretrain.to_dict(),
            "pretrain_test_acc": self.pretrain_test_acc,
            "requests": [r.to_dict() for r in self.requests],
            "refused": [asdict(r) for r in self.refused],
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
        }
