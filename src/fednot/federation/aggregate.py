"""Aggregation math: pure functions of state dicts."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fednot.errors import ConfigError
from fednot.types import StateDict


def weighted_average(states: Sequence[StateDict], weights: Sequence[float]) -> StateDict:
    """FedAvg aggregation: the weighted mean of floating-point tensors.

    Integer tensors (e.g. BatchNorm's ``num_batches_tracked``) take the maximum instead, since a
    mean of counters is meaningless (docs/not.md, "Aggregation").

    Args:
        states: client states with identical keys and shapes.
        weights: non-negative weights, typically the clients' training-sample counts.
    """
    if not states or len(states) != len(weights):
        raise ConfigError(
            f"Expected one weight per state and at least one state, got {len(states)} states "
            f"and {len(weights)} weights."
        )
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ConfigError(
            f"Aggregation weights must be non-negative with a positive sum: {weights}."
        )
    result: StateDict = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            acc = torch.zeros_like(first, dtype=torch.float64)
            for state, weight in zip(states, weights, strict=True):
                acc += state[key].to(torch.float64) * (weight / total)
            result[key] = acc.to(first.dtype)
        else:
            result[key] = torch.stack([s[key] for s in states]).amax(dim=0)
    return result


def clone_state(state: StateDict) -> StateDict:
    """A detached copy of a state dict, on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
