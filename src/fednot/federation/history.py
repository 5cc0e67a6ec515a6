"""An opt-in record of the training history, for the methods that need one.

NoT, FT and Retrain need no history. FedEraser needs the global model and every client's update
every Δt rounds; FUKD needs each client's accumulated, weighted updates; PGD and negative-gradient
subtraction need each client's last local model. A method declares what it needs as a
`HistorySpec`; the engine records the union of the specs of the methods in a run during
pre-training, hands each method only the parts it declared, and reports their size as the
method's storage cost (docs/metrics.md, "Storage").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fednot.federation.costs import state_bytes
from fednot.types import StateDict


@dataclass(frozen=True)
class HistorySpec:
    """What to record during training.

    Attributes:
        every: store the global model and every client's update at rounds 1, 1+every, 1+2·every,
            ... (FedEraser's Δt); ``None`` stores none.
        last_local_models: keep each client's latest local model, with the global model it
            started from, its sample count and its share p_k of that round's aggregation (PGD,
            negative-gradient subtraction).
        update_sums: keep, per client k, Σ_t p_k^t (θ_k^t − θ^t), its weighted updates summed
            over rounds (FUKD).
    """

    every: int | None = None
    last_local_models: bool = False
    update_sums: bool = False

    def union(self, other: HistorySpec) -> HistorySpec:
        """A spec that records what either spec records."""
        everies = [e for e in (self.every, other.every) if e is not None]
        every = None
        if everies:
            every = everies[0]
            for e in everies[1:]:
                every = _gcd(every, e)
        return HistorySpec(
            every,
            self.last_local_models or other.last_local_models,
            self.update_sums or other.update_sums,
        )

    @property
    def empty(self) -> bool:
        """True if nothing is recorded."""
        return self.every is None and not self.last_local_models and not self.update_sums

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (part of the pre-training cache key)."""
        return {
            "every": self.every,
            "last_local_models": self.last_local_models,
            "update_sums": self.update_sums,
        }


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


@dataclass
class Snapshot:
    """One stored round: the global model it started from and each client's update."""

    round: int
    global_state: StateDict
    updates: dict[int, StateDict]
    weights: dict[int, float]  # aggregation weights (training-sample counts)


@dataclass
class TrainingHistory:
    """What was recorded; see `HistorySpec` for each part."""

    spec: HistorySpec
    snapshots: list[Snapshot] = field(default_factory=list)
    last_local: dict[int, StateDict] = field(default_factory=dict)
    last_start: dict[int, StateDict] = field(default_factory=dict)
    last_weights: dict[int, float] = field(default_factory=dict)
    last_share: dict[int, float] = field(default_factory=dict)
    update_sums: dict[int, StateDict] = field(default_factory=dict)
    rounds: int = 0

    def record(
        self,
        round_: int,
        global_state: StateDict,
        locals_: dict[int, StateDict],
        weights: dict[int, float],
    ) -> None:
        """Record one FedAvg round: ``global_state`` went out, ``locals_`` came back."""
        self.rounds = round_
        spec = self.spec
        if spec.every is not None and (round_ - 1) % spec.every == 0:
            updates = {k: _diff(s, global_state) for k, s in locals_.items()}
            self.snapshots.append(Snapshot(round_, dict(global_state), updates, dict(weights)))
        if spec.last_local_models:
            total = sum(weights.values())
            for k, local in locals_.items():
                self.last_local[k] = local
                self.last_start[k] = dict(global_state)
                self.last_weights[k] = weights[k]
                self.last_share[k] = weights[k] / total  # p_k in the round it last took part in
        if spec.update_sums:
            total = sum(weights.values())
            for k, local in locals_.items():
                scaled = {
                    n: (local[n] - global_state[n]) * (weights[k] / total)
                    for n in local
                    if local[n].is_floating_point()
                }
                previous = self.update_sums.get(k)
                self.update_sums[k] = (
                    scaled if previous is None else {n: previous[n] + v for n, v in scaled.items()}
                )

    def restrict(self, spec: HistorySpec) -> TrainingHistory:
        """The parts ``spec`` asks for, and nothing else."""
        every = spec.every
        snapshots = []
        if every is not None:
            snapshots = [s for s in self.snapshots if (s.round - 1) % every == 0]
        return TrainingHistory(
            spec=spec,
            snapshots=snapshots,
            last_local=self.last_local if spec.last_local_models else {},
            last_start=self.last_start if spec.last_local_models else {},
            last_weights=self.last_weights if spec.last_local_models else {},
            last_share=self.last_share if spec.last_local_models else {},
            update_sums=self.update_sums if spec.update_sums else {},
            rounds=self.rounds,
        )

    def storage_bytes(self) -> int:
        """Bytes the server keeps for this history."""
        total = sum(
            state_bytes(s.global_state) + sum(state_bytes(u) for u in s.updates.values())
            for s in self.snapshots
        )
        total += sum(state_bytes(s) for s in self.last_local.values())
        total += sum(state_bytes(s) for s in self.update_sums.values())
        # the global model a last local model started from is the server's previous global
        # model, kept once whatever the number of clients
        total += state_bytes(next(iter(self.last_start.values()))) if self.last_start else 0
        return total

    def to_payload(self) -> dict[str, Any]:
        """Plain containers for `torch.save` (loadable with ``weights_only=True``)."""
        return {
            "spec": self.spec.to_dict(),
            "snapshots": [
                {
                    "round": s.round,
                    "global": s.global_state,
                    "updates": _int_keys_out(s.updates),
                    "weights": _int_keys_out(s.weights),
                }
                for s in self.snapshots
            ],
            "last_local": _int_keys_out(self.last_local),
            "last_start": _int_keys_out(self.last_start),
            "last_weights": _int_keys_out(self.last_weights),
            "last_share": _int_keys_out(self.last_share),
            "update_sums": _int_keys_out(self.update_sums),
            "rounds": self.rounds,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> TrainingHistory:
        """Inverse of `to_payload`."""
        return cls(
            spec=HistorySpec(**data["spec"]),
            snapshots=[
                Snapshot(
                    s["round"], s["global"], _int_keys_in(s["updates"]), _int_keys_in(s["weights"])
                )
                for s in data["snapshots"]
            ],
            last_local=_int_keys_in(data["last_local"]),
            last_start=_int_keys_in(data["last_start"]),
            last_weights=_int_keys_in(data["last_weights"]),
            last_share=_int_keys_in(data["last_share"]),
            update_sums=_int_keys_in(data["update_sums"]),
            rounds=int(data["rounds"]),
        )


def _diff(local: StateDict, start: StateDict) -> StateDict:
    return {n: local[n] - start[n] for n in local if local[n].is_floating_point()}


def _int_keys_out(d: dict[int, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in d.items()}


def _int_keys_in(d: dict[str, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in d.items()}
