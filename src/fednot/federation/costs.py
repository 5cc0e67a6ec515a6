"""Cost accounting: bytes that travel and FLOPs that are computed.

The recipes are in docs/metrics.md, "Communication" and "Computation".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fednot.types import StateDict


def state_bytes(state: StateDict) -> int:
    """Bytes of every tensor of a state dict: numel × element size, buffers included."""
    return sum(t.numel() * t.element_size() for t in state.values())


@dataclass(frozen=True)
class Costs:
    """Communication and computation of one phase (or a sum of phases)."""

    comm_bytes: int = 0
    flops: int = 0
    seconds: float = 0.0

    def __add__(self, other: Costs) -> Costs:
        return Costs(
            self.comm_bytes + other.comm_bytes,
            self.flops + other.flops,
            self.seconds + other.seconds,
        )


class FlopMeter:
    """FLOPs of training steps and forward passes, measured once per batch shape.

    Uses `torch.utils.flop_counter.FlopCounterMode`, which counts matmuls, convolutions and
    attention at 2 FLOPs per multiply-accumulate, forward and backward. Each distinct input shape
    is measured on a private copy of the model (so the trained model's state is untouched) and
    cached; the cost of a run is the sum of the cached counts of the batches it processed.
    Optimiser updates, elementwise ops, aggregation and evaluation are not counted.
    """

    def __init__(self, model: nn.Module) -> None:
        self._model = copy.deepcopy(model).cpu()
        self._cache: dict[tuple[str, tuple[int, ...]], int] = {}

    def train_step(self, shape: tuple[int, ...]) -> int:
        """FLOPs of one forward and backward pass of a batch of ``shape``."""
        return self._measure("train", shape)

    def forward(self, shape: tuple[int, ...]) -> int:
        """FLOPs of one forward pass of a batch of ``shape``."""
        return self._measure("forward", shape)

    def _measure(self, mode: str, shape: tuple[int, ...]) -> int:
        key = (mode, tuple(shape))
        if key not in self._cache:
            model = self._model
            model.train(mode == "train")
            x = torch.zeros(shape)
            counter = FlopCounterMode(display=False)
            with counter:
                if mode == "train":
                    out = model(x)
                    loss = nn.functional.cross_entropy(out, torch.zeros(shape[0], dtype=torch.long))
                    loss.backward()  # type: ignore[no-untyped-call]
                else:
                    with torch.no_grad():
                        model(x)
            model.zero_grad(set_to_none=True)
            self._cache[key] = int(counter.get_total_flops())
        return self._cache[key]
