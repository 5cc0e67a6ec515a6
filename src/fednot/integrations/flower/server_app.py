"""The fednot ServerApp: pre-train with FedAvg, then honour the clients' forget requests.

The flow of one run (`run_fednot`), driven by the server as Flower requires:

1. ``query.identify``: wait for one node per client and map node ids to fednot client ids;
2. pre-training: FedAvg from the run's initial weights for ``train.rounds`` rounds (the
   engine's pre-training, participants and streams), or a fednot checkpoint (``stage="unlearn"``);
3. ``query.request``: every client may file a request for its own data; a request naming
   another client is refused (logged, recorded, ignored);
4. for each accepted request: the method's own step (NoT: negation on the server), then
   recovery with `FedAvgExcluding`, the forgotten clients left out (client-wise) or fine-tuning
   on their retained data only (class- and instance-wise);
5. test accuracy on the server, forget accuracy on the targets (``evaluate`` to them only), a
   ``result.json`` and the final model in ``out``, and one ``FEDNOT_DONE`` log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fednot.checkpoint import save_checkpoint
from fednot.configio import to_dict
from fednot.errors import ConfigError
from fednot.federation.costs import Costs
from fednot.federation.fedavg import StopRule, TrainLog
from fednot.federation.history import TrainingHistory
from fednot.integrations.flower.identity import (
    Refusal,
    collect_requests,
    merge_requests,
    retained_counts,
)
from fednot.integrations.flower.methods import StepInput, check_supported, unlearn_step
from fednot.integrations.flower.records import request_to_config
from fednot.integrations.flower.session import ServerSession
from fednot.integrations.flower.settings import ConfigValue, FlowerSettings, parse_settings
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner
from fednot.unlearning.registry import create_unlearner

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`


@dataclass
class RequestOutcome:
    """How one request was served."""

    request: dict[str, Any]
    method: str
    excluded: list[int]
    step_costs: Costs
    notes: dict[str, Any]
    recovery: TrainLog
    test_acc: dict[str, float]  # before, after_step, after
    forget_acc: dict[str, float]  # the targets' own forget data: before, after


@dataclass
class FlowerResult:
    """What a fednot Flower run did; ``state`` is the final global model."""

    seed: int
    method: str
    clients: dict[int, int]  # fednot client id -> Flower node id
    pretrain: TrainLog
    pretrain_test_acc: float
    state: StateDict
    requests: list[RequestOutcome] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)  # by message type
    bytes_received: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the model)."""
        return {
            "seed": self.seed, "method": self.method,
            "clients": {str(k): v for k, v in self.clients.items()},
            "pretrain": self.pretrain.to_dict(), "pretrain_test_acc": self.pretrain_test_acc,
            "requests": [_outcome_dict(o) for o in self.requests],
            "refused": [asdict(r) for r in self.refused],
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
        }  # fmt: skip


def create_server_app(defaults: Mapping[str, ConfigValue] | None = None) -> ServerApp:
    """A fednot ServerApp; ``defaults`` fill the run configuration (empty under simulation)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_fednot(grid, parse_settings(context.run_config, defaults))

    return app


def run_fednot(grid: Grid, settings: FlowerSettings) -> FlowerResult:
    """Run the whole flow of the module docstring on ``grid``."""
    session = ServerSession(grid, settings)
    method = create_unlearner(settings.method, settings.config.options.get(settings.method))
    method.validate(session.model)
    check_supported(method)
    spec = method.history_spec() if method.requirements.history else None
    history = None if spec is None else TrainingHistory(spec)
    clients = session.clients
    state, log = _pretrain(session, history)
    result = FlowerResult(
        settings.seed, method.name, dict(clients.node_of), log, session.test_accuracy(state), state
    )
    if settings.stage == "pretrain":
        return _finish(session, result)
    filed, result.refused = collect_requests(session.grid, clients, timeout=settings.node_timeout)
    counts = retained_counts(filed)
    for request in merge_requests(filed, separate=method.requirements.target_participation):
        outcome, result.state = serve(session, method, result.state, request, counts, history)
        result.requests.append(outcome)
    return _finish(session, result)


def serve(
    session: ServerSession, method: Unlearner, state: StateDict, request: ForgetRequest,
    retained_samples: Mapping[int, int], history: TrainingHistory | None = None,
) -> tuple[RequestOutcome, StateDict]:  # fmt: skip
    """The method's step for ``request``, then recovery; the outcome and the new model."""
    partial = request.kind != "client"
    exclude = sorted(c for c in request.clients if not partial or not retained_samples.get(c))
    retained = tuple(c for c in session.clients.ids if c not in exclude)
    targets = {c: {"data": "retained", **request_to_config(request)}
               for c in request.clients if partial and c in retained}  # fmt: skip
    test = {"before": session.test_accuracy(state)}
    forget = {"before": session.client_accuracy(state, request.clients, "forget", request)}
    start = time.perf_counter()
    result = unlearn_step(StepInput(session, method, state, request, retained, history))
    costs = result.costs + Costs(seconds=time.perf_counter() - start)
    test["after_step"] = session.test_accuracy(result.state)
    new, log = result.state, TrainLog(stop_reason="no recovery: the step is complete")
    if result.schedule != "none":
        phase = "pretrain" if result.schedule == "train" else "recovery"
        lr = None if phase == "pretrain" else session.config.unlearn.recovery_lr_of(method.name)
        strategy = session.strategy(phase, exclude=exclude, lr=lr, per_client=targets)
        new, log = session.run_phase(result.state, strategy, _stop(session, phase), method.name)
    test["after"] = session.test_accuracy(new)
    forget["after"] = session.client_accuracy(new, request.clients, "forget", request)
    logger.info("%s served %s: test %s, forget %s", method.name, request.to_dict(), test, forget)
    outcome = RequestOutcome(
        request.to_dict(), method.name, exclude, costs, result.notes, log, test, forget
    )
    return outcome, new


def _pretrain(
    session: ServerSession, history: TrainingHistory | None
) -> tuple[StateDict, TrainLog]:
    """FedAvg pre-training, or the checkpoint of ``stage="unlearn"``."""
    settings, config = session.settings, session.config
    if settings.stage == "unlearn":
        return _load_checkpoint(session), TrainLog(stop_reason="loaded from a checkpoint")
    strategy = session.strategy("pretrain", history=history)
    state, log = session.run_phase(
        session.initial_state, strategy, _stop(session, "pretrain"), "pretrain"
    )
    if settings.checkpoint:
        save_checkpoint(
            Path(settings.checkpoint), state, config, settings.seed, "flower-pretrain",
            log=log.to_dict(),
        )  # fmt: skip
    return state, log


def _stop(session: ServerSession, phase: str) -> StopRule:
    """The engine's stop rule of a pre-training (or Retrain) or recovery phase."""
    train, unlearn = session.config.train, session.config.unlearn
    if phase == "pretrain":
        return StopRule(train.rounds, patience=train.patience)
    target = unlearn.target_val_acc
    if target == "retrain" or target == "original":
        raise ConfigError(
            f'unlearn.target_val_acc = "{target}" is not supported on Flower yet (the Flower path '
            "keeps its own recovery loop until the one-engine issue lands): set a number, or "
            "rely on the budget unlearn.recovery_rounds."
        )
    return StopRule(unlearn.recovery_rounds, unlearn.recovery_patience, target)


def _load_checkpoint(session: ServerSession) -> StateDict:
    from fednot.checkpoint import load_checkpoint

    payload, config = load_checkpoint(Path(session.settings.checkpoint))
    for section in ("data", "model", "train"):
        if to_dict(getattr(config, section)) != to_dict(getattr(session.config, section)):
            raise ConfigError(
                f"The checkpoint {session.settings.checkpoint} was trained with another "
                f"[{section}] than this run's; run with the checkpoint's configuration."
            )
    state: StateDict = payload["state"]
    return state


def _finish(session: ServerSession, result: FlowerResult) -> FlowerResult:
    """Record the byte counts, write ``out``, and log the summary line."""
    result.bytes_sent = dict(session.grid.sent)
    result.bytes_received = dict(session.grid.received)
    settings = session.settings
    if settings.out:
        out = Path(settings.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        save_checkpoint(
            out / "final.pt", result.state, session.config, settings.seed, "flower-final"
        )
    last = result.requests[-1] if result.requests else None
    logger.info(
        "FEDNOT_DONE method=%s requests=%d refused=%d pretrain_test_acc=%.2f test_acc=%.2f "
        "forget_acc=%s",
        result.method, len(result.requests), len(result.refused), result.pretrain_test_acc,
        session.test_accuracy(result.state), "n/a" if last is None else last.forget_acc,
    )  # fmt: skip
    return result


def _outcome_dict(outcome: RequestOutcome) -> dict[str, Any]:
    data = asdict(outcome)
    data["recovery"] = outcome.recovery.to_dict()
    return data
