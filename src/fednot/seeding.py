"""Independent, reproducible random streams, one per stage of a run.

A run has one integer seed. Every stage that draws random numbers (the test split, the partition,
model initialisation, each client in each round, participation sampling, the unlearning step, the
MIA) asks `SeedStreams` for a generator keyed by the stage's name and its coordinates, e.g.
``streams.torch("train", "pretrain", round, client)``. The key is hashed, so streams do not
overlap, a stage's numbers do not depend on how many numbers another stage drew, and a run
resumed at round r draws exactly what an uninterrupted run draws.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

_MASK_63 = (1 << 63) - 1


def derive_seed(seed: int, *key: object) -> int:
    """Return a 63-bit seed derived from ``seed`` and a key of strings and ints."""
    text = "\x1f".join([str(seed), *(str(part) for part in key)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK_63


@dataclass(frozen=True)
class SeedStreams:
    """Factory of per-stage generators derived from one run seed."""

    seed: int

    def seed_for(self, *key: object) -> int:
        """Return the integer seed of the stream named by ``key``."""
        return derive_seed(self.seed, *key)

    def torch(self, *key: object) -> torch.Generator:
        """Return a fresh CPU `torch.Generator` for the stream named by ``key``."""
        generator = torch.Generator()
        generator.manual_seed(self.seed_for(*key))
        return generator

    def numpy(self, *key: object) -> np.random.Generator:
        """Return a fresh NumPy generator for the stream named by ``key``."""
        return np.random.default_rng(self.seed_for(*key))
