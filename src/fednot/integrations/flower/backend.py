"""`FlowerBackend`: the engine's clients' work as Flower messages.

The server's `fednot.benchmark.experiment.Experiment` runs the round loop, the per-request flow and
the stop rules, as in simulation; for one view of the federation (all clients, or the retained side
of a request) this back-end sends each training job to its client's SuperNode, where the
ClientApp runs `fednot.federation.local.local_train` on its own samples with the job's stream and
recipe. A partial target (a class- or instance-wise request) trains and validates on what it
keeps (``retained``, ``retained-val``), exactly the engine's retained view.

A method's own step runs on the server with the engine's context minus the clients' samples: its
local training (``UnlearnContext.train``, ``fedavg_round``) comes back here as jobs, and what
the server keeps (the history, its own data) stays readable. So every method is written once.
A method whose step reads the target's data itself (declared in `fednot.integrations.placement`:
FCU, PGD) runs whole on the target's node instead (`fednot.integrations.flower.target.
target_step`); the server sends it the global model and, for a method with a history, the
target's own last local model and aggregation share.

`server_experiment` builds the server's experiment with this back-end (no model cache, no
curves: the forget set stays with its owners); `test_accuracy` scores on the server's test split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from fednot.benchmark.experiment import Experiment
from fednot.config import RunConfig
from fednot.data.federated import Federation
from fednot.data.forget import ForgetSplit
from fednot.errors import ConfigError
from fednot.federation.backend import TrainJob
from fednot.federation.costs import Costs
from fednot.federation.history import TrainingHistory
from fednot.federation.local import LocalUpdate, accuracy
from fednot.integrations.flower.records import (
    ARRAYS,
    CONFIG,
    Entries,
    arrays_in,
    as_int,
    config_in,
    metrics_in,
    recipe_entries,
    request_to_config,
    to_arrays,
    to_state,
)
from fednot.integrations.flower.session import FlowerJob, ServerSession, logger
from fednot.integrations.flower.settings import base_federation
from fednot.integrations.placement import runs_on_target
from fednot.progress import Progress, RoundLine
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import UnlearnResult

if TYPE_CHECKING:
    from fednot.unlearning.base import Unlearner
    from fednot.unlearning.context import UnlearnContext

_NO_CLIENT_DATA = "a Flower server holds no client data; this method's step must run on the clients"


class FlowerBackend:
    """See the module docstring.

    Args:
        session: the server's session (grid, client map, experiment).
        federation: the view whose clients work.
        split: the request whose retained side the view is (``None``: all clients).
    """

    def __init__(
        self, session: ServerSession, federation: Federation, split: ForgetSplit | None
    ) -> None:
        self.session = session
        self.ids = federation.ids
        self.request = None if split is None else split.request
        request = self.request
        partial = () if request is None or request.kind == "client" else request.clients
        self.partial = {c for c in partial if c in self.ids}  # targets that keep some data
        self._extras: dict[str, float] = {}

    @property
    def validates_every_round(self) -> bool:
        """A round trip per validation: only with ``validate`` (or a stop rule that needs it)."""
        return self.session.settings.validate

    def train(self, jobs: Sequence[TrainJob]) -> list[LocalUpdate]:
        """Send the jobs; the updates in job order, and the round's bytes in `round_extras`."""
        grid, meter = self.session.grid, self.session.client_bytes
        down, up = grid.sent[MessageType.TRAIN], grid.received[MessageType.TRAIN]
        reported = dict(meter)
        updates = self.session.train_jobs([self._job(job) for job in jobs])
        self._extras = {
            "flower_bytes_down": float(grid.sent[MessageType.TRAIN] - down),
            "flower_bytes_up": float(grid.received[MessageType.TRAIN] - up),
        }
        for key in ("comm-bytes-in", "comm-bytes-out"):
            if key in meter:
                self._extras[key.replace("-", "_")] = float(meter[key] - reported.get(key, 0))
        return updates

    def val_accuracy(self, state: StateDict) -> float:
        """Federated validation: every client of the view on its (retained) validation split."""
        return self.session.accuracy_on(state, {c: self._part(c, "val") for c in self.ids})

    def round_extras(self) -> dict[str, float]:
        """Wire bytes of the last round, as the server's grid and the clients' meters count."""
        return dict(self._extras)

    def unlearn_step(
        self, method: Unlearner, state: StateDict, ctx: UnlearnContext
    ) -> UnlearnResult:
        """The method's step: on the server, or where `flower.methods` runs it.

        On the server the step sees the engine's context without the clients' samples; FCU and
        PGD run on the target, PUF and MoDE as rounds of client jobs.
        """
        reason = method.not_applicable(ctx.request.kind)
        if reason is not None:
            raise ConfigError(reason)
        if runs_on_target(method):
            history = ctx.history if method.requirements.history else None
            result = self._on_target(method, state, ctx.request, history)
        else:
            server = ctx.on_server(_NO_CLIENT_DATA)
            result = method.unlearn(state, server)
            result = replace(result, costs=result.costs + server.costs)
        return result

    def _on_target(
        self,
        method: Unlearner,
        state: StateDict,
        request: ForgetRequest,
        history: TrainingHistory | None,
    ) -> UnlearnResult:
        """The method's whole step on the target's node (`runs_on_target`)."""
        if len(request.clients) != 1:
            raise ConfigError(
                f"On Flower, {method.title or method.name} serves one target per request (its "
                f"step runs on the target's node); got clients {list(request.clients)}."
            )
        target = request.clients[0]
        entries: Entries = {"method": method.name, **request_to_config(request)}
        content = RecordDict({ARRAYS: to_arrays(state)})
        if history is not None:
            if target not in history.last_local:
                raise ConfigError(
                    f"{method.title} needs the target's last local model from training; run "
                    "the pre-training in the same Flower run (stage='all')."
                )
            content["last-local"] = to_arrays(history.last_local[target])
            entries["last-share"] = history.last_share[target]
        content[CONFIG] = ConfigRecord(entries)
        node = self.session.clients.node_of[target]
        message = Message(content, node, f"{MessageType.TRAIN}.unlearn")
        reply = self.session.send([message], f"{method.name} step on client {target}")[0]
        metrics = metrics_in(reply.content)
        comm = as_int(metrics["method-comm-bytes"], "method-comm-bytes")
        costs = Costs(comm, as_int(metrics["flops"], "flops"))
        notes = json.loads(str(config_in(reply.content)["notes"]))
        return UnlearnResult(to_state(arrays_in(reply.content)), costs=costs, notes=notes)

    def _job(self, job: TrainJob) -> FlowerJob:
        if job.loss is not None or job.penalty is not None:
            raise ConfigError(
                "A training job with its own loss function runs in the engine only: a function "
                "does not travel to a client's node."
            )
        if job.data == "forget":
            data: Entries = {"data": "forget"}
        else:
            data = self._part(job.client, "train")
        request = self.request if data["data"] != "train" else None
        return FlowerJob(
            job.client,
            job.state,
            tuple(str(p) for p in job.stream),
            str(data["data"]),
            recipe_entries(job.recipe),
            request,
            job.teacher,
        )

    def _part(self, client: int, split: str) -> Entries:
        """The message entries naming ``client``'s samples of the view (``train`` or ``val``)."""
        if client not in self.partial:
            return {"data": split}
        assert self.request is not None
        data = "retained" if split == "train" else "retained-val"
        return {"data": data, **request_to_config(self.request)}


class LogProgress(Progress):
    """The experiment's progress lines, on fednot's Flower logger (one line per round)."""

    def phase(self, text: str) -> None:
        """Log a phase."""
        logger.info("==> %s", text)

    def info(self, text: str) -> None:
        """Log a line."""
        logger.info("%s", text)

    def round(self, phase: str, record: RoundLine, total: int) -> None:
        """Log a round and its clients."""
        logger.info("%s round %d/%d: clients %s", phase, record.round, total, list(record.clients))


def server_config(config: RunConfig) -> RunConfig:
    """The configuration the server's experiment runs: no model cache, no curves.

    The curves evaluate the forget set after every few rounds, which only its owners hold; a
    Flower run measures its own accuracies (`test_accuracy`, `ServerSession.client_accuracy`).
    """
    return replace(config, cache_dir="", eval=replace(config.eval, curve_every=0))


def server_experiment(session: ServerSession) -> Experiment:
    """The engine on the server: the run's experiment, its clients' work sent as messages.

    It builds the federation for the shapes, the partition (who holds what: the retained side of
    a request) and the test split; the clients' samples are read only on their nodes.
    """
    settings = session.settings
    return Experiment(
        server_config(settings.config),
        settings.seed,
        progress=LogProgress(),
        federation=base_federation(settings),
        backends=lambda federation, split: FlowerBackend(session, federation, split),
    )


def test_accuracy(exp: Experiment, state: StateDict) -> float:
    """Accuracy (%) of ``state`` on the server's test split."""
    exp.model.load_state_dict(state)
    return accuracy(
        exp.model,
        exp.federation.test,
        exp.federation.preprocess,
        batch_size=exp.config.eval.batch_size,
        device=exp.device,
    )
