"""Partitioners: how a training pool is split among clients. Pure functions of labels and a seed.

Every partitioner shuffles with the run's ``partition`` stream, so the same seed gives the same
split. Each client's share is then split into train and validation (80:20 in the NoT paper).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fednot.errors import ConfigError, DataError


def iid(num_samples: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle all samples, then cut them into ``num_clients`` near-equal parts."""
    _check_enough(num_samples, num_clients)
    return [np.sort(part) for part in np.array_split(rng.permutation(num_samples), num_clients)]


def dirichlet(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    rng: np.random.Generator,
    *,
    min_samples: int = 10,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Label-skewed split: each class is spread over clients by proportions ~ Dir(alpha).

    Smaller ``alpha`` means more skew (each client sees fewer classes); large ``alpha``
    approaches IID. Draws are repeated until every client has at least ``min_samples`` samples.
    """
    _check_enough(len(labels), num_clients * min_samples)
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_samples:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ConfigError(
        f"Dirichlet(alpha={alpha}) gave some client fewer than {min_samples} samples in "
        f"{max_tries} draws; raise data.alpha, lower data.num_clients or data.min_client_samples."
    )


def shards(
    labels: np.ndarray, num_clients: int, shards_per_client: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Pathological split (McMahan et al. 2017): sort by label, cut into shards, deal them out."""
    total = num_clients * shards_per_client
    _check_enough(len(labels), total)
    order = np.argsort(labels, kind="stable")
    pieces = np.array_split(order, total)
    dealt = rng.permutation(total).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([pieces[s] for s in row])) for row in dealt]


def train_val_split(
    indices: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split one client's indices into train and validation parts, seeded."""
    shuffled = rng.permutation(indices)
    num_val = int(round(val_fraction * len(indices)))
    return np.sort(shuffled[num_val:]), np.sort(shuffled[:num_val])


def stratified_holdout(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return (kept, held_out) indices with ``fraction`` of each class held out."""
    held: list[np.ndarray] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held.append(members[: int(round(fraction * len(members)))])
    held_out = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def _check_enough(num_samples: int, needed: int) -> None:
    if num_samples < needed:
        raise ConfigError(
            f"Cannot split {num_samples} samples into {needed} non-empty parts; use fewer "
            "clients (data.num_clients) or shards."
        )


@dataclass(frozen=True, eq=False)
class Partition:
    """Which samples each client holds, and which samples form the server's test set.

    All indices refer to the reader's *training* split. ``test`` is ``None`` when the data set
    has its own test split, or the indices of the seeded hold-out otherwise. ``server`` is the
    unlabeled slice the server holds (empty unless ``data.server_samples`` is set); it is
    reserved before the clients' split, so no client ever holds it.
    """

    scheme: str
    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]
    test: np.ndarray | None
    server: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return len(self.train)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "scheme": self.scheme,
            "indices_refer_to": "the data set's training split",
            "test": None if self.test is None else self.test.tolist(),
            "server": self.server.tolist(),
            "clients": [
                {"id": k, "train": t.tolist(), "val": v.tolist()}
                for k, (t, v) in enumerate(zip(self.train, self.val, strict=True))
            ],
        }

    def save(self, path: Path) -> None:
        """Write the partition as JSON."""
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> Partition:
        """Read a partition written by `save`."""
        try:
            data = json.loads(path.read_text())
            clients = sorted(data["clients"], key=lambda c: c["id"])
            test = None if data["test"] is None else np.asarray(data["test"], dtype=np.int64)
            return cls(
                scheme=str(data["scheme"]),
                train=tuple(np.asarray(c["train"], dtype=np.int64) for c in clients),
                val=tuple(np.asarray(c["val"], dtype=np.int64) for c in clients),
                test=test,
                server=np.asarray(data.get("server", []), dtype=np.int64),
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(
                f"Cannot read the partition file {path}: {e}. Expected the JSON written by "
                "fednot (keys: scheme, test, clients[id, train, val])."
            ) from e
