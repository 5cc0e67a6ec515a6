"""The ServerApp's building blocks for one run: FedAvg phases, evaluations and method rounds.

`ServerSession` holds what the server knows: the settings, the (metered) grid, the client map,
the architecture and the initial weights, and the server's own data, the test split. It runs
FedAvg phases with `FedAvgExcluding` and fednot's `StopRule`, so a phase stops where the
engine's would, and records every round as the engine's `RoundRecord`, with Flower's byte counts
next to fednot's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from torch import nn

from fednot.errors import FedNotError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import FlopMeter, state_bytes
from fednot.federation.fedavg import FedAvg, RoundRecord, StopRule, TrainLog
from fednot.federation.history import TrainingHistory
from fednot.federation.local import LocalRecipe, LocalUpdate, accuracy
from fednot.integrations.flower.grid import MeteredGrid
from fednot.integrations.flower.identity import ClientMap, identify_clients
from fednot.integrations.flower.records import (
    ARRAYS,
    CONFIG,
    NUM_EXAMPLES,
    Entries,
    arrays_in,
    as_float,
    as_int,
    metrics_in,
    request_to_config,
    to_arrays,
    to_state,
)
from fednot.integrations.flower.settings import FlowerSettings, load_federation
from fednot.integrations.flower.strategy import FedAvgExcluding
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest, StateDict

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`


@dataclass(frozen=True)
class TrainJob:
    """One client's training in a method's round (MoDE, PUF).

    Attributes:
        client: who trains.
        state: the model it starts from.
        stream: the engine's stream key it draws from, e.g. ``("unlearn", "puf", "local", ...)``.
        data: ``train``, ``retained`` or ``forget`` (the last two need ``request``).
        recipe: overrides of the run's local recipe (``recipe-lr``, ``recipe-epochs``, ...).
        request: the request, for the ``retained`` and ``forget`` parts.
        teacher: a teacher whose pseudo-labels replace the labels (MoDE's target).
    """

    client: int
    state: StateDict
    stream: tuple[str, ...]
    data: str = "train"
    recipe: dict[str, float | int | str] = field(default_factory=dict)
    request: ForgetRequest | None = None
    teacher: StateDict | None = None


class ServerSession:
    """See the module docstring."""

    def __init__(self, grid: Grid, settings: FlowerSettings) -> None:
        self.grid = MeteredGrid(grid)
        self.settings = settings
        self.config = settings.config
        self.streams = SeedStreams(settings.seed)
        # The server builds the federation for its test split, the preprocessing statistics, the
        # shapes and the client ids; it never reads a client's samples (training happens in the
        # ClientApps). With data on the clients only, the server would need just the test split.
        self.federation = load_federation(settings)
        self.model = self._create_model()
        self.initial_state = clone_state(
            self._create_model(self.streams.torch("init")).state_dict()
        )
        self.flops = FlopMeter(self.model)
        self._clients: ClientMap | None = None

    @property
    def clients(self) -> ClientMap:
        """The run's client map (after `identify`)."""
        if self._clients is None:
            self._clients = identify_clients(
                self.grid, self.settings.num_clients, timeout=self.settings.node_timeout
            )
        return self._clients

    def strategy(
        self, phase: str, *, exclude: Sequence[int] = (), lr: float | None = None,
        per_client: dict[int, Entries] | None = None,
        history: TrainingHistory | None = None,
    ) -> FedAvgExcluding:  # fmt: skip
        """A `FedAvgExcluding` whose participants are the engine's for ``phase``."""
        allowed = [c for c in self.clients.ids if c not in set(exclude)]
        sampler = FedAvg(
            nn.Identity(), self.federation.replace(self.federation.client(c) for c in allowed),
            LocalRecipe(), self.streams, phase=phase, participation=self.config.train.participation,
        )  # fmt: skip
        return FedAvgExcluding(
            clients=self.clients, exclude=exclude, participants=sampler.participants, phase=phase,
            config={} if lr is None else {"recipe-lr": lr}, per_client=per_client,
            history=history,
        )  # fmt: skip

    def run_phase(
        self, state: StateDict, strategy: FedAvgExcluding, stop: StopRule, label: str
    ) -> tuple[StateDict, TrainLog]:
        """FedAvg rounds with ``strategy`` from ``state`` until ``stop`` says so."""
        log, arrays = TrainLog(), to_arrays(state)
        validate = self.settings.validate or stop.patience is not None
        validate = validate or stop.target_val_acc is not None
        reason = stop.reason([])
        while reason is None:
            round_, start = len(log.rounds) + 1, time.perf_counter()
            down, up = self._bytes()
            messages = strategy.configure_train(round_, arrays, ConfigRecord(), self.grid)
            replies = self.grid.send_and_receive(messages, timeout=self.settings.round_timeout)
            new, _ = strategy.aggregate_train(round_, replies)
            assert new is not None
            down, up = self._bytes(down, up)
            val = self._validate(strategy, round_, new) if validate else float("nan")
            log.rounds.append(self._record(round_, arrays, strategy, val, start, down, up))
            arrays = new
            reason = stop.reason([r.val_acc for r in log.rounds])
            logger.info("%s round %d: clients %s", label, round_, list(strategy.last.clients))
        log.stop_reason = reason
        return to_state(arrays), log

    def test_accuracy(self, state: StateDict) -> float:
        """Accuracy (%) on the server's test split."""
        self.model.load_state_dict(state)
        return accuracy(
            self.model, self.federation.test, self.federation.preprocess,
            batch_size=self.config.eval.batch_size, device=self.config.device,
        )  # fmt: skip

    def client_accuracy(
        self, state: StateDict, clients: Sequence[int], part: str, request: ForgetRequest | None
    ) -> float:
        """Accuracy (%) of ``state`` on the ``part`` of ``clients``' data, pooled."""
        entries: Entries = {"data": part}
        if request is not None:
            entries.update(request_to_config(request))
        content = RecordDict({ARRAYS: to_arrays(state), CONFIG: ConfigRecord(entries)})
        messages = [Message(content, n, MessageType.EVALUATE) for n in self.clients.nodes(clients)]
        metrics = [metrics_in(r.content) for r in self.send(messages, f"evaluation on {part}")]
        n = sum(as_int(m[NUM_EXAMPLES], NUM_EXAMPLES) for m in metrics)
        correct = sum(as_int(m["correct"], "correct") for m in metrics)
        return correct / n * 100 if n else float("nan")

    def train_jobs(self, jobs: Sequence[TrainJob]) -> list[LocalUpdate]:
        """Run ``jobs``, one round trip per batch of distinct clients; updates in job order."""
        arrays: dict[int, ArrayRecord] = {}
        updates: dict[int, LocalUpdate] = {}
        pending = list(enumerate(jobs))
        while pending:
            batch: list[tuple[int, TrainJob]] = []
            later: list[tuple[int, TrainJob]] = []
            seen: set[int] = set()
            for index, job in pending:
                (later if job.client in seen else batch).append((index, job))
                seen.add(job.client)
            messages = [self._job_message(job, arrays) for _, job in batch]
            replies = self.send(messages, "method round")
            by_node = {r.metadata.src_node_id: r for r in replies}
            for index, job in batch:
                updates[index] = self._update(by_node[self.clients.node_of[job.client]])
            pending = later
        return [updates[i] for i in range(len(jobs))]

    def _job_message(self, job: TrainJob, arrays: dict[int, ArrayRecord]) -> Message:
        if id(job.state) not in arrays:
            arrays[id(job.state)] = to_arrays(job.state)
        record = arrays[id(job.state)]
        entries: Entries = {"stream": list(job.stream), "data": job.data, "server-round": 0}
        entries.update(job.recipe)
        if job.request is not None:
            entries.update(request_to_config(job.request))
        content = RecordDict({ARRAYS: record, CONFIG: ConfigRecord(entries)})
        kind = MessageType.TRAIN
        if job.teacher is not None:
            content["teacher"] = to_arrays(job.teacher)
            kind = f"{MessageType.TRAIN}.pseudo"
        return Message(content, self.clients.node_of[job.client], kind)

    def send(self, messages: list[Message], what: str) -> list[Message]:
        """Send ``messages``; their replies, or a `FedNotError` if any failed or is missing."""
        replies = list(self.grid.send_and_receive(messages, timeout=self.settings.round_timeout))
        failed = [
            f"node {r.metadata.src_node_id}: {r.error.reason}" for r in replies if r.has_error()
        ]
        if failed or len(replies) != len(messages):
            raise FedNotError(
                f"The {what} got {len(replies)} replies to {len(messages)} messages"
                + (f"; failures: {'; '.join(failed)}" if failed else "")
                + "."
            )
        return replies

    def _update(self, reply: Message) -> LocalUpdate:
        metrics = metrics_in(reply.content)
        return LocalUpdate(
            to_state(arrays_in(reply.content)), as_int(metrics[NUM_EXAMPLES], NUM_EXAMPLES),
            as_float(metrics["train-loss"], "train-loss"), as_int(metrics["flops"], "flops"),
        )  # fmt: skip

    def _validate(self, strategy: FedAvgExcluding, round_: int, arrays: ArrayRecord) -> float:
        messages = strategy.configure_evaluate(round_, arrays, ConfigRecord(), self.grid)
        replies = self.grid.send_and_receive(messages, timeout=self.settings.round_timeout)
        metrics = strategy.aggregate_evaluate(round_, replies)
        return float("nan") if metrics is None else float(metrics["accuracy"])  # type: ignore[arg-type]

    def _bytes(self, down: int = 0, up: int = 0) -> tuple[int, int]:
        """Train-message bytes sent and received so far, minus ``down``/``up``."""
        return self.grid.sent[MessageType.TRAIN] - down, self.grid.received[MessageType.TRAIN] - up

    def _record(
        self, round_: int, sent: ArrayRecord, strategy: FedAvgExcluding, val: float,
        start: float, down: int, up: int,
    ) -> RoundRecord:  # fmt: skip
        last = strategy.last
        extra = {"flower_bytes_down": float(down), "flower_bytes_up": float(up)}
        extra.update({k.replace("-", "_"): float(v) for k, v in last.client_bytes.items()})
        return RoundRecord(
            round=round_, clients=last.clients, train_loss=last.train_loss, val_acc=val,
            comm_bytes=2 * state_bytes(to_state(sent)) * len(last.clients), flops=last.flops,
            seconds=time.perf_counter() - start, extra=extra,
        )  # fmt: skip

    def _create_model(self, generator: torch.Generator | None = None) -> nn.Module:
        model = self.config.model
        return create_model(
            model.name, input_shape=self.federation.input_shape,
            num_classes=self.federation.num_classes, options=model.options,
            generator=generator,
        ).to(self.config.device)  # fmt: skip
