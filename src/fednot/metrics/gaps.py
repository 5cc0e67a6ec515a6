"""Distance to Retrain: Δ per metric and the average gap (docs/metrics.md, "Average gap")."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fednot.metrics.registry import registered

GAP_METRICS: tuple[str, ...] = tuple(m.name for m in registered() if m.in_gap)
"""The metrics the average gap is taken over (``Metric.in_gap``): the NoT paper's four, in
percent (retain, forget, test accuracy and the loss MIA)."""


def deltas(values: Mapping[str, float], reference: Mapping[str, float]) -> dict[str, float]:
    """Δ_m = |m(method) − m(Retrain)| for each metric of `GAP_METRICS`."""
    return {m: abs(values[m] - reference[m]) for m in GAP_METRICS}


def avg_gap(values: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """The mean of the four Δ, in percentage points; lower is better."""
    d = deltas(values, reference)
    return sum(d.values()) / len(d)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN for none)."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)
