"""FedAvg (McMahan et al., AISTATS 2017): the round loop every phase of fednot runs.

Pre-training, Retrain and every method's recovery are FedAvg runs that differ only in their start
state, their clients and their stop rule. The loop owns seeding, participation, cost meters,
per-round metrics, early stopping, and the hooks for checkpoints and resumption.

Seeding: client ``k`` in round ``r`` of phase ``p`` trains with the stream
``("client", p, r, k)`` and the participants of round ``r`` come from ``("sample", p, r)``. A
client's randomness therefore does not depend on which other clients take part, so Retrain (the
``pretrain`` phase without the forgotten clients) is exactly FedAvg without those clients, and a
run resumed at round r continues as if it had never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from fednot.data.federated import Federation
from fednot.federation.aggregate import weighted_average
from fednot.federation.backend import Backend, InProcess, TrainJob
from fednot.federation.costs import Costs, FlopMeter, state_bytes
from fednot.federation.divergence import Stage, describe_non_finite, non_finite, stage_of
from fednot.federation.history import TrainingHistory
from fednot.federation.local import LocalRecipe, LocalUpdate
from fednot.progress import Progress
from fednot.seeding import SeedStreams
from fednot.types import StateDict


def client_stream(phase: str, round_: int, client: int) -> tuple[object, ...]:
    """The key of the stream client ``client`` trains with in round ``round_`` of ``phase``."""
    return ("client", phase, round_, client)


def client_generator(streams: SeedStreams, phase: str, round_: int, client: int) -> torch.Generator:
    """The generator client ``client`` trains with in round ``round_`` of ``phase``."""
    return streams.torch(*client_stream(phase, round_, client))


@dataclass(frozen=True)
class StopRule:
    """When a FedAvg phase ends.

    Attributes:
        rounds: the budget (maximum number of rounds).
        patience: stop once the validation accuracy has not improved for this many rounds.
        target_val_acc: stop after the first round whose validation accuracy (%) reaches this.
    """

    rounds: int
    patience: int | None = None
    target_val_acc: float | None = None

    @property
    def needs_validation(self) -> bool:
        """Whether the rule reads validation accuracies (patience or a target)."""
        return self.patience is not None or self.target_val_acc is not None

    def reason(self, val_accs: list[float]) -> str | None:
        """Why to stop after the rounds whose validation accuracies are ``val_accs``."""
        if self.target_val_acc is not None and val_accs and val_accs[-1] >= self.target_val_acc:
            return f"reached target validation accuracy {self.target_val_acc:.2f}%"
        if self.patience is not None and len(val_accs) > self.patience:
            best = max(range(len(val_accs)), key=lambda i: (val_accs[i], -i))
            if len(val_accs) - 1 - best >= self.patience:
                return f"no improvement for {self.patience} rounds"
        if len(val_accs) >= self.rounds:
            return f"budget of {self.rounds} rounds"
        return None


@dataclass(frozen=True)
class RoundRecord:
    """Metrics of one round; ``comm_bytes`` and ``flops`` are this round's, not cumulative."""

    round: int
    clients: tuple[int, ...]
    train_loss: float
    val_acc: float
    comm_bytes: int
    flops: int
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainLog:
    """The rounds of one phase so far, and why it stopped."""

    rounds: list[RoundRecord] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def costs(self) -> Costs:
        """Total cost of the phase."""
        return Costs(
            sum(r.comm_bytes for r in self.rounds),
            sum(r.flops for r in self.rounds),
            sum(r.seconds for r in self.rounds),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"stop_reason": self.stop_reason, "rounds": [asdict(r) for r in self.rounds]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainLog:
        """Inverse of `to_dict`."""
        rounds = [
            RoundRecord(**{**r, "clients": tuple(r["clients"])}) for r in data.get("rounds", [])
        ]
        return cls(rounds, str(data.get("stop_reason", "")))


RoundHook = Callable[[int, StateDict, RoundRecord], dict[str, float]]
CheckpointHook = Callable[[StateDict, TrainLog], None]


class FedAvg:
    """Runs FedAvg rounds over a federation; the clients' training runs on ``backend``.

    The loop is the same for every back-end: participants, seed streams, aggregation, the
    history, the communication count and the stop rule live here; a `Backend` only runs the
    clients' jobs and validation (default: `InProcess`, every client in this process).

    Every round checks its clients' losses and the new global state: a non-finite value raises
    `fednot.errors.DivergenceError` (naming ``stage``; default: derived from ``phase``, ``label``
    and the recipe's learning rate) before any hook, history or checkpoint sees the state.
    """

    def __init__(
        self,
        model: nn.Module,
        federation: Federation,
        recipe: LocalRecipe,
        streams: SeedStreams,
        *,
        phase: str,
        label: str | None = None,
        participation: float = 1.0,
        device: torch.device | str = "cpu",
        flops: FlopMeter | None = None,
        progress: Progress | None = None,
        eval_batch_size: int = 512,
        history: TrainingHistory | None = None,
        communicates: bool = True,
        stage: Stage | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.model = model
        self.federation = federation
        self.recipe = recipe
        self.streams = streams
        self.phase = phase
        self.label = label or phase
        self.participation = participation
        self.device = device
        self.flops = flops or FlopMeter(model)
        self.progress = progress
        self.eval_batch_size = eval_batch_size
        self.history = history
        self.communicates = communicates
        self.stage = stage or stage_of(phase, self.label, recipe.lr)
        self.backend: Backend = backend or InProcess(
            model,
            federation,
            streams,
            flops=self.flops,
            device=device,
            eval_batch_size=eval_batch_size,
        )

    def participants(self, round_: int) -> tuple[int, ...]:
        """Clients sampled in ``round_`` (all of them at participation 1)."""
        ids = self.federation.ids
        count = max(1, round(self.participation * len(ids)))
        if count >= len(ids):
            return ids
        rng = self.streams.numpy("sample", self.phase, round_)
        return tuple(sorted(int(i) for i in rng.choice(ids, size=count, replace=False)))

    def round(
        self, state: StateDict, round_: int, *, validate: bool = True
    ) -> tuple[StateDict, RoundRecord]:
        """Run one round from the global ``state``; return the new global state and its record.

        With ``validate=False`` the record's ``val_acc`` is NaN (no evaluation is run).

        Raises:
            DivergenceError: a client's loss or the new global state is not finite.
        """
        start = time.perf_counter()
        clients = self.participants(round_)
        updates = self.backend.train(
            [TrainJob(k, state, client_stream(self.phase, round_, k), self.recipe) for k in clients]
        )
        extra = self.backend.round_extras()
        new_state = weighted_average([u.state for u in updates], [u.num_samples for u in updates])
        self._check(round_, clients, updates, new_state)
        if self.history is not None:
            self.history.record(
                round_,
                state,
                {k: u.state for k, u in zip(clients, updates, strict=True)},
                {k: float(u.num_samples) for k, u in zip(clients, updates, strict=True)},
            )
        val_acc = self.backend.val_accuracy(new_state) if validate else float("nan")
        samples = sum(u.num_samples for u in updates)
        record = RoundRecord(
            round=round_,
            clients=clients,
            train_loss=sum(u.loss * u.num_samples for u in updates) / max(samples, 1),
            val_acc=val_acc,
            # download + upload per client; a single data holder (centralized) sends nothing
            comm_bytes=2 * state_bytes(state) * len(clients) if self.communicates else 0,
            flops=sum(u.flops for u in updates),
            seconds=time.perf_counter() - start,
            extra=extra,
        )
        return new_state, record

    def _check(
        self,
        round_: int,
        clients: Sequence[int],
        updates: Sequence[LocalUpdate],
        new_state: StateDict,
    ) -> None:
        """Raise `DivergenceError` for a non-finite client loss or global state."""
        for k, update in zip(clients, updates, strict=True):
            if not math.isfinite(update.loss):
                raise self.stage.error(round_, f"the training loss is {update.loss}", (k,))
        bad = non_finite(new_state)
        if bad:
            culprits = tuple(
                k for k, u in zip(clients, updates, strict=True) if non_finite(u.state)
            )
            what = f"the aggregated model has {describe_non_finite(bad, new_state)}"
            raise self.stage.error(round_, what, culprits)

    def run(
        self,
        state: StateDict,
        stop: StopRule,
        *,
        log: TrainLog | None = None,
        on_round: RoundHook | None = None,
        checkpoint: CheckpointHook | None = None,
    ) -> tuple[StateDict, TrainLog]:
        """Run rounds from ``state`` until ``stop`` says so.

        Args:
            state: the global state to start from (or to resume from, with ``log``).
            stop: the budget and stop rule.
            log: the rounds already done, when resuming; rounds continue from ``len(log)+1``.
            on_round: called with (round, new state, its record) after each round; the
                metrics it returns are added to the round's ``extra``.
            checkpoint: called with (state, log) after each round.
        """
        log = log or TrainLog()
        validate = self.backend.validates_every_round or stop.needs_validation
        reason = stop.reason([r.val_acc for r in log.rounds])
        while reason is None:
            round_ = len(log.rounds) + 1
            state, record = self.round(state, round_, validate=validate)
            if on_round is not None:
                record = replace(record, extra={**record.extra, **on_round(round_, state, record)})
            log.rounds.append(record)
            reason = stop.reason([r.val_acc for r in log.rounds])
            log.stop_reason = reason or ""
            if checkpoint is not None:
                checkpoint(state, log)
            if self.progress is not None:
                self.progress.round(self.label, record, stop.rounds)
        log.stop_reason = reason
        return state, log
