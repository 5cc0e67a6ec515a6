"""The fednot ServerApp: pre-train with FedAvg, then honour the clients' forget requests.

The flow of one run (`run_fednot`), driven by the server as Flower requires:

0. with a deletion ledger (run-config ``ledger``): read it (a damaged file stops the run before
   anything trains); the clients it lists as forgotten are out of the whole run;
1. ``query.identify``: wait for one node per client and map node ids to fednot client ids;
2. pre-training: the engine's own `Experiment.pretrain` (FedAvg from the run's initial weights,
   its participants, streams and history), its clients' training as messages
   (`fednot.integrations.flower.backend`), or a fednot checkpoint (``stage="unlearn"``);
3. ``query.request``: every client may file a request for its own data; a request naming
   another client is refused (logged, recorded, ignored);
4. for each accepted request, one after another: the engine's `Experiment.unlearn`: the
   method's own step (NoT: negation on the server), then recovery on the retained side of the
   request, with the engine's stop rules and cost accounting; a client that left with an
   earlier request is out of every later one (`Experiment.without`); with a ledger, each
   request's receipt is begun before it is served and finished after (`ClientLedger.record`);
5. test accuracy on the server, forget accuracy on the targets (``evaluate`` to them only), a
   ``result.json`` and the final model in ``out``, and one ``FEDNOT_DONE`` log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fednot.benchmark.experiment import Experiment
from fednot.checkpoint import save_checkpoint
from fednot.configio import to_dict
from fednot.errors import ConfigError
from fednot.federation.fedavg import TrainLog
from fednot.federation.outcome import Trained
from fednot.integrations.flower.backend import server_experiment, test_accuracy
from fednot.integrations.flower.identity import ClientMap, collect_requests, merge_requests
from fednot.integrations.flower.ledger import ClientLedger
from fednot.integrations.flower.result import FlowerResult, Readings, ServedRequest
from fednot.integrations.flower.session import ServerSession
from fednot.integrations.flower.settings import ConfigValue, FlowerSettings, parse_settings
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner
from fednot.unlearning.registry import create_unlearner

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`


def create_server_app(defaults: Mapping[str, ConfigValue] | None = None) -> ServerApp:
    """A fednot ServerApp; ``defaults`` fill the run configuration (empty under simulation)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_fednot(grid, parse_settings(context.run_config, defaults))

    return app


def run_fednot(grid: Grid, settings: FlowerSettings) -> FlowerResult:
    """Run the whole flow of the module docstring on ``grid``."""
    ledger = ClientLedger(settings.ledger)  # first: a damaged ledger stops the run here
    session = ServerSession(grid, settings)
    exp = server_experiment(session)
    method = create_unlearner(settings.method, settings.config.options.get(settings.method))
    method.validate(exp.model)
    if not method.scenarios & {"client", "class", "instance"}:  # what clients can request
        raise ConfigError(f"{method.not_applicable('client')} A Flower run serves clients.")
    if exp.config.unlearn.target_val_acc == "retrain":
        raise ConfigError(
            'unlearn.target_val_acc = "retrain" (an oracle) needs Retrain\'s accuracy, which a '
            'Flower run does not compute: set a number, "original", or rely on the budget '
            "unlearn.recovery_rounds."
        )
    clients = session.clients
    gone = ledger.forgotten(clients.ids)  # forgotten in an earlier run: out of this one
    exp = exp.without(gone) if gone else exp
    trained = _pretrain(session, exp, method)
    result = FlowerResult(
        settings.seed,
        method.name,
        dict(clients.node_of),
        trained.log,
        test_accuracy(exp, trained.state),
        trained.state,
    )
    if settings.stage == "pretrain":
        return _finish(session, exp, result)
    asked = ClientMap({c: n for c, n in clients.node_of.items() if c not in gone})
    filed, result.refused = collect_requests(session.grid, asked, timeout=settings.node_timeout)
    left: list[int] = []  # clients that left with an earlier request: out of every later one
    for request in merge_requests(filed, separate=method.requirements.target_participation):
        current = replace(trained, state=result.state)  # requests are served one after another
        view = exp.without(left) if left else exp
        outcome, result.state = ledger.record(
            session,
            method,
            request,
            current.state,
            partial(serve, session, view, method, current, request),
        )
        result.requests.append(outcome)
        if request.kind == "client":
            left += request.clients
    return _finish(session, exp, result)


def serve(
    session: ServerSession,
    exp: Experiment,
    method: Unlearner,
    trained: Trained,
    request: ForgetRequest,
) -> tuple[ServedRequest, StateDict]:
    """The engine's `Experiment.unlearn` of ``request`` (step, then recovery) on Flower."""
    state = trained.state
    retained = exp.split(request).retained.ids
    excluded = sorted(c for c in session.clients.ids if c not in retained)
    test_before = test_accuracy(exp, state)
    forget_before = session.client_accuracy(state, request.clients, "forget", request)
    outcome = exp.unlearn(trained, request, method)
    step = exp.initial_state if outcome.step_state is None else outcome.step_state  # Retrain
    test = Readings(test_before, test_accuracy(exp, outcome.state), test_accuracy(exp, step))
    forget_after = session.client_accuracy(outcome.state, request.clients, "forget", request)
    forget = Readings(forget_before, forget_after)
    logger.info(
        "%s served %s: test %s, forget %s",
        method.name,
        request.to_dict(),
        test.to_dict(),
        forget.to_dict(),
    )
    served = ServedRequest.of(request, outcome, tuple(excluded), test, forget)
    return served, outcome.state


def _pretrain(session: ServerSession, exp: Experiment, method: Unlearner) -> Trained:
    """The engine's pre-training (with the history ``method`` needs), or a checkpoint."""
    settings = session.settings
    if settings.stage == "unlearn":
        log = TrainLog(stop_reason="loaded from a checkpoint")
        return Trained(_load_checkpoint(settings), log)
    trained = exp.pretrain(history=method.history_spec() if method.requirements.history else None)
    if settings.checkpoint:
        save_checkpoint(
            Path(settings.checkpoint),
            trained.state,
            exp.config,
            settings.seed,
            "flower-pretrain",
            log=trained.log.to_dict(),
        )
    return trained


def _load_checkpoint(settings: FlowerSettings) -> StateDict:
    from fednot.checkpoint import load_checkpoint

    payload, config = load_checkpoint(Path(settings.checkpoint))
    for section in ("data", "model", "train"):
        if to_dict(getattr(config, section)) != to_dict(getattr(settings.config, section)):
            raise ConfigError(
                f"The checkpoint {settings.checkpoint} was trained with another "
                f"[{section}] than this run's; run with the checkpoint's configuration."
            )
    state: StateDict = payload["state"]
    return state


def _finish(session: ServerSession, exp: Experiment, result: FlowerResult) -> FlowerResult:
    """Record the byte counts, write ``out``, and log the summary line."""
    result.bytes_sent = dict(session.grid.sent)
    result.bytes_received = dict(session.grid.received)
    settings = session.settings
    if settings.out:
        out = Path(settings.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        save_checkpoint(
            out / "final.pt", result.state, settings.config, settings.seed, "flower-final"
        )
    last = result.requests[-1] if result.requests else None
    logger.info(
        "FEDNOT_DONE method=%s requests=%d refused=%d pretrain_test_acc=%.2f test_acc=%.2f "
        "forget_acc=%s",
        result.method,
        len(result.requests),
        len(result.refused),
        result.pretrain_test_acc,
        test_accuracy(exp, result.state),
        "n/a" if last is None else last.forget_acc.to_dict(),
    )
    return result
