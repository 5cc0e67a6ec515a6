"""A cell's per-round log, typed, and the key it is filed under (docs/protocol.md, "Trajectories").

A cell that unlearned (a method, Retrain or Retrain′) goes up to the summary with a `CellLog`:
the metrics right after the method's step, and per recovery round its costs and the trajectory
metrics measured after it (by registered name; none where the round was not evaluated). The
engine carries those metrics in `fednot.federation.fedavg.RoundRecord.extra`; `CellLog.of` reads
them into typed rounds once, at the cell.

Logs are filed by `CellKey` (method, seed). ``results.json`` keeps its documented layout: its
``logs`` object is keyed ``"<method>/seed<seed>"`` (`CellKey.json_key`) and holds each log's
`CellLog.to_dict` form, which `CellLog.from_dict` reads back when a run is resumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fednot.federation.fedavg import TrainLog

_SEED = "/seed"


@dataclass(frozen=True, order=True)
class CellKey:
    """The (method, seed) a cell's log belongs to.

    Attributes:
        method: the row's name (a method's ``name``, ``retrain``, ``retrain_prime``, ...).
        seed: the run seed.
    """

    method: str
    seed: int

    def json_key(self) -> str:
        """The key of this cell's log in ``results.json`` (``"ft/seed0"``)."""
        return f"{self.method}{_SEED}{self.seed}"

    @classmethod
    def from_json_key(cls, key: str) -> CellKey:
        """Inverse of `json_key`.

        Raises:
            ValueError: ``key`` is not of the form ``"<method>/seed<int>"``.
        """
        method, sep, seed = key.rpartition(_SEED)
        if not sep or not method or not seed.lstrip("-").isdigit():
            raise ValueError(f"A log key must read '<method>/seed<seed>', got {key!r}.")
        return cls(method, int(seed))


@dataclass(frozen=True)
class RoundLog:
    """One recovery round of a cell: its own costs, and the model's metrics after it.

    Attributes:
        round: the round's number (1-based).
        clients: the clients that took part.
        train_loss: the clients' mean training loss.
        val_acc: retained-validation accuracy after the round (percent).
        comm_bytes: this round's communication (not cumulative).
        flops: this round's training FLOPs (not cumulative).
        seconds: this round's wall-clock time.
        metrics: the trajectory metrics after the round, by registered name (empty: the round
            was not evaluated).
    """

    round: int
    clients: tuple[int, ...]
    train_loss: float
    val_acc: float
    comm_bytes: int
    flops: int
    seconds: float
    metrics: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The round's form in ``results.json`` (its metrics under ``extra``)."""
        return {
            "round": self.round,
            "clients": list(self.clients),
            "train_loss": self.train_loss,
            "val_acc": self.val_acc,
            "comm_bytes": self.comm_bytes,
            "flops": self.flops,
            "seconds": self.seconds,
            "extra": dict(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundLog:
        """Inverse of `to_dict` (a NaN stored as null is read back as NaN)."""
        return cls(
            round=int(data["round"]),
            clients=tuple(int(c) for c in data["clients"]),
            train_loss=_number(data["train_loss"]),
            val_acc=_number(data["val_acc"]),
            comm_bytes=int(data["comm_bytes"]),
            flops=int(data["flops"]),
            seconds=_number(data["seconds"]),
            metrics={k: _number(v) for k, v in (data.get("extra") or {}).items()},
        )


@dataclass(frozen=True)
class CellLog:
    """A cell's recovery: the model right after the step, then every round.

    Attributes:
        start: the trajectory metrics right after the method's step (round 0), by registered
            name (empty: not measured).
        stop_reason: why the recovery stopped.
        rounds: the recovery rounds, in order.
    """

    start: Mapping[str, float]
    stop_reason: str
    rounds: tuple[RoundLog, ...]

    @classmethod
    def of(cls, start: Mapping[str, float], log: TrainLog) -> CellLog:
        """The typed log of an engine's `TrainLog` (its ``extra`` read as each round's metrics)."""
        rounds = tuple(
            RoundLog(
                round=r.round,
                clients=tuple(r.clients),
                train_loss=r.train_loss,
                val_acc=r.val_acc,
                comm_bytes=r.comm_bytes,
                flops=r.flops,
                seconds=r.seconds,
                metrics=dict(r.extra),
            )
            for r in log.rounds
        )
        return cls(dict(start), log.stop_reason, rounds)

    def to_dict(self) -> dict[str, Any]:
        """The log's form in ``results.json``: ``start``, ``stop_reason``, ``rounds``."""
        return {
            "start": dict(self.start),
            "stop_reason": self.stop_reason,
            "rounds": [r.to_dict() for r in self.rounds],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellLog:
        """Inverse of `to_dict`."""
        return cls(
            start={k: _number(v) for k, v in (data.get("start") or {}).items()},
            stop_reason=str(data.get("stop_reason", "")),
            rounds=tuple(RoundLog.from_dict(r) for r in data.get("rounds", [])),
        )


Logs = Mapping[CellKey, CellLog]
"""Every cell's log, by (method, seed)."""


def logs_to_json(logs: Logs) -> dict[str, dict[str, Any]]:
    """``results.json``'s ``logs`` object: `CellKey.json_key` → `CellLog.to_dict`, in order."""
    return {key.json_key(): log.to_dict() for key, log in logs.items()}


def logs_from_json(data: Mapping[str, Mapping[str, Any]]) -> dict[CellKey, CellLog]:
    """Inverse of `logs_to_json` (a resumed run's saved logs)."""
    return {CellKey.from_json_key(key): CellLog.from_dict(log) for key, log in data.items()}


def _number(value: Any) -> float:
    """A stored number; null (a NaN or infinity written as strict JSON) reads as NaN."""
    if value is None:
        return math.nan
    number: float = value  # an int stays an int: results.json is rewritten as it was read
    return number
