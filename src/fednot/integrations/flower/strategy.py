"""`FedAvgExcluding`: Flower's FedAvg with fednot's participants, exclusion and aggregation.

Three differences from ``flwr.serverapp.strategy.FedAvg``, all so that a Flower run gives the
in-process engine's numbers:

- **Participants.** Each round trains the clients the engine's `fednot.federation.fedavg.FedAvg`
  picks (all of them at participation 1, else its seeded sample), passed in as a callable;
  Flower's unseeded ``random.sample`` is not used.
- **Exclusion.** Forgotten clients (client-wise) get no message; a reply from one is an error.
- **Aggregation.** `fednot.federation.aggregate.weighted_average` in client-id order (float64
  accumulation; integer buffers take the maximum), not Flower's float32 NumPy average.

A client that fails or does not answer in time stops the run with a `FedNotError`: silently
averaging fewer clients would break the equivalence with the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fednot.errors import FedNotError
from fednot.federation.aggregate import weighted_average
from fednot.integrations.flower.identity import ClientMap
from fednot.integrations.flower.records import (
    ARRAYS,
    NUM_EXAMPLES,
    Entries,
    arrays_in,
    as_float,
    as_int,
    metrics_in,
    to_arrays,
    to_state,
)


@dataclass
class RoundStats:
    """What the last aggregated round reported (besides the new model)."""

    clients: tuple[int, ...] = ()
    train_loss: float = float("nan")
    flops: int = 0
    client_bytes: dict[str, int] = field(default_factory=dict)  # as the clients' meters report


class FedAvgExcluding(FedAvg):
    """FedAvg over the clients of a `ClientMap` minus ``exclude``; see the module docstring.

    Args:
        clients: the run's client-to-node map.
        exclude: client ids that take no part (the forgotten clients).
        participants: the client ids to train in a round (default: every allowed client).
        phase: the engine phase whose streams the clients draw from (``pretrain``, ``recovery``).
        config: entries sent to every client in every round (e.g. the recovery ``recipe-lr``).
        per_client: extra entries for some clients (e.g. a class-wise target's request).
    """

    def __init__(
        self,
        *,
        clients: ClientMap,
        exclude: Iterable[int] = (),
        participants: Callable[[int], Sequence[int]] | None = None,
        phase: str = "pretrain",
        config: Entries | None = None,
        per_client: Mapping[int, Entries] | None = None,
    ) -> None:
        super().__init__(min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1)
        self.clients = clients
        self.exclude = frozenset(exclude)
        self.allowed = tuple(c for c in clients.ids if c not in self.exclude)
        if not self.allowed:
            raise FedNotError(f"Excluding clients {sorted(self.exclude)} leaves no client.")
        self.participants = participants or (lambda _round: self.allowed)
        self.phase = phase
        self.config = dict(config or {})
        self.per_client = dict(per_client or {})
        self.last = RoundStats()
        self._sent: tuple[int, ...] = ()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One TRAIN message per participant of the round (never to an excluded client)."""
        chosen = tuple(sorted(self.participants(server_round)))
        bad = sorted(set(chosen) - set(self.allowed))
        if bad:
            raise FedNotError(f"Round {server_round} would train excluded clients {bad}.")
        self._require_connected(chosen, grid)
        self._sent = chosen
        shared: Entries = {
            **config,
            **self.config,
            "server-round": server_round,
            "phase": self.phase,
        }
        return self._messages(chosen, arrays, shared, MessageType.TRAIN)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The engine's weighted average of the replies, in client-id order."""
        ordered = self._check(list(replies), self._sent, f"training round {server_round}")
        states = [to_state(arrays_in(r.content)) for _, r in ordered]
        metrics = [metrics_in(r.content) for _, r in ordered]
        weights = [as_float(m[NUM_EXAMPLES], NUM_EXAMPLES) for m in metrics]
        new = weighted_average(states, weights)
        total = sum(weights)
        losses = [as_float(m["train-loss"], "train-loss") for m in metrics]
        loss = sum(x * w for x, w in zip(losses, weights, strict=True))
        self.last = RoundStats(
            clients=tuple(c for c, _ in ordered),
            train_loss=loss / max(total, 1.0),
            flops=sum(as_int(m["flops"], "flops") for m in metrics),
            client_bytes=_reported(metrics),
        )
        summary = MetricRecord({"train-loss": self.last.train_loss, NUM_EXAMPLES: total})
        summary["flops"] = self.last.flops
        return to_arrays(new), summary

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Validation on every allowed client's validation split (the engine's pooled split)."""
        self._require_connected(self.allowed, grid)
        self._sent = self.allowed
        shared: Entries = {**config, "server-round": server_round, "data": "val"}
        return self._messages(self.allowed, arrays, shared, MessageType.EVALUATE)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Accuracy (%) over the pooled samples: summed correct over summed counts."""
        ordered = self._check(list(replies), self._sent, f"validation round {server_round}")
        metrics = [metrics_in(r.content) for _, r in ordered]
        n = sum(as_int(m[NUM_EXAMPLES], NUM_EXAMPLES) for m in metrics)
        correct = sum(as_int(m["correct"], "correct") for m in metrics)
        record = MetricRecord({"accuracy": correct / n * 100 if n else float("nan")})
        record[NUM_EXAMPLES] = n
        return record

    def _messages(
        self, chosen: Sequence[int], arrays: ArrayRecord, shared: Entries, kind: str
    ) -> list[Message]:
        messages = []
        for client in chosen:
            entries = {**shared, **self.per_client.get(client, {})}
            content = RecordDict({ARRAYS: arrays, "config": ConfigRecord(entries)})
            messages.append(Message(content, self.clients.node_of[client], kind))
        return messages

    def _require_connected(self, clients: Sequence[int], grid: Grid) -> None:
        connected = set(grid.get_node_ids())
        gone = [c for c in clients if self.clients.node_of[c] not in connected]
        if gone:
            raise FedNotError(f"The nodes of clients {gone} are no longer connected.")

    def _check(
        self, replies: list[Message], expected: Sequence[int], what: str
    ) -> list[tuple[int, Message]]:
        """Replies sorted by client id; raises unless exactly the expected clients answered."""
        client_of = self.clients.client_of
        failed = [
            f"client {client_of.get(r.metadata.src_node_id)}: {r.error.reason}"
            for r in replies if r.has_error()
        ]  # fmt: skip
        if failed:
            raise FedNotError(f"The {what} failed on {'; '.join(failed)}.")
        got = sorted(client_of.get(r.metadata.src_node_id, -1) for r in replies)
        if got != sorted(expected):
            excluded = sorted(set(got) & self.exclude)
            raise FedNotError(
                f"The {what} expected replies from clients {sorted(expected)} and got them from "
                f"{got}"
                + (f", including excluded clients {excluded}" if excluded else "")
                + ". Missing replies usually mean the round timed out (`round-timeout`)."
            )
        return sorted(((client_of[r.metadata.src_node_id], r) for r in replies), key=_first)


def _first(pair: tuple[int, Message]) -> int:
    return pair[0]


def _reported(metrics: list[MetricRecord]) -> dict[str, int]:
    """The clients' own byte counts (`client_app.comm_meter_mod`), summed."""
    totals: dict[str, int] = {}
    for key in ("comm-bytes-in", "comm-bytes-out"):
        if all(key in m for m in metrics):
            totals[key] = sum(as_int(m[key], key) for m in metrics)
    return totals
