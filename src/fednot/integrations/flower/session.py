"""The round trips the ServerApp makes to its clients.

`ServerSession` holds the settings, the (metered) grid and the client map, and turns work into
messages: training jobs (`train_jobs`, one round trip per batch of distinct clients) and
evaluations (`accuracy_on`). The engine's `fednot.benchmark.experiment.Experiment` on the server
drives them through `fednot.integrations.flower.backend.FlowerBackend`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fednot.errors import FedNotError
from fednot.federation.local import LocalUpdate
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
from fednot.integrations.flower.settings import FlowerSettings
from fednot.types import ForgetRequest, StateDict

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`


@dataclass(frozen=True)
class FlowerJob:
    """One client's training, as a message.

    Attributes:
        client: who trains.
        state: the model it starts from.
        stream: the engine's stream key it draws from, e.g. ``("client", "recovery", "3", "4")``.
        data: ``train``, ``retained`` or ``forget`` (the last two need ``request``).
        recipe: overrides of the run's local recipe (``recipe-lr``, ``recipe-epochs``, ...).
        request: the request, for the ``retained`` and ``forget`` parts.
        teacher: a teacher whose pseudo-labels replace the labels (MoDE's target).
    """

    client: int
    state: StateDict
    stream: tuple[str, ...]
    data: str = "train"
    recipe: Mapping[str, float | int | str] = field(default_factory=dict)
    request: ForgetRequest | None = None
    teacher: StateDict | None = None


class ServerSession:
    """See the module docstring."""

    def __init__(self, grid: Grid, settings: FlowerSettings) -> None:
        self.grid = MeteredGrid(grid, settings.poll_interval)
        self.settings = settings
        self.client_bytes: Counter[str] = Counter()  # as the clients' meters report them
        self._clients: ClientMap | None = None

    @property
    def clients(self) -> ClientMap:
        """The run's client map (identified on first use)."""
        if self._clients is None:
            self._clients = identify_clients(
                self.grid, self.settings.num_clients, timeout=self.settings.node_timeout
            )
        return self._clients

    def client_accuracy(
        self, state: StateDict, clients: Sequence[int], part: str, request: ForgetRequest | None
    ) -> float:
        """Accuracy (%) of ``state`` on the ``part`` of ``clients``' data, pooled."""
        entries: Entries = {"data": part}
        if request is not None:
            entries.update(request_to_config(request))
        return self.accuracy_on(state, {c: entries for c in clients})

    def accuracy_on(self, state: StateDict, parts: Mapping[int, Entries]) -> float:
        """Accuracy (%) of ``state`` on each client's part (``parts[client]``), pooled."""
        arrays = to_arrays(state)
        messages = [
            Message(
                RecordDict({ARRAYS: arrays, CONFIG: ConfigRecord(dict(entries))}),
                self.clients.node_of[c],
                MessageType.EVALUATE,
            )
            for c, entries in parts.items()
        ]
        metrics = [metrics_in(r.content) for r in self.send(messages, "evaluation")]
        n = sum(as_int(m[NUM_EXAMPLES], NUM_EXAMPLES) for m in metrics)
        correct = sum(as_int(m["correct"], "correct") for m in metrics)
        return correct / n * 100 if n else float("nan")

    def train_jobs(self, jobs: Sequence[FlowerJob]) -> list[LocalUpdate]:
        """Run ``jobs``, one round trip per batch of distinct clients; updates in job order."""
        arrays: dict[int, ArrayRecord] = {}
        updates: dict[int, LocalUpdate] = {}
        pending = list(enumerate(jobs))
        while pending:
            batch: list[tuple[int, FlowerJob]] = []
            later: list[tuple[int, FlowerJob]] = []
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

    def _job_message(self, job: FlowerJob, arrays: dict[int, ArrayRecord]) -> Message:
        if id(job.state) not in arrays:
            arrays[id(job.state)] = to_arrays(job.state)
        record = arrays[id(job.state)]
        entries: Entries = {"stream": list(job.stream), "data": job.data}
        entries.update(job.recipe)
        if job.request is not None:
            entries.update(request_to_config(job.request))
        content = RecordDict({ARRAYS: record, CONFIG: ConfigRecord(entries)})
        if job.teacher is not None:
            content["teacher"] = to_arrays(job.teacher)
        return Message(content, self.clients.node_of[job.client], MessageType.TRAIN)

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
        for key in ("comm-bytes-in", "comm-bytes-out"):  # `client_app.comm_meter_mod`
            if key in metrics:
                self.client_bytes[key] += as_int(metrics[key], key)
        return LocalUpdate(
            to_state(arrays_in(reply.content)),
            as_int(metrics[NUM_EXAMPLES], NUM_EXAMPLES),
            as_float(metrics["train-loss"], "train-loss"),
            as_int(metrics["flops"], "flops"),
        )
