"""Confidence intervals over seeds, and paired differences between methods (docs/protocol.md).

Every interval is a two-sided Student-t interval for a mean over seeds: the seeds are the
independent replicates (each seed redraws the partition, the initial weights, every client's
stream and the MIA's draws), n − 1 degrees of freedom. A paired difference compares two methods
seed by seed (the same seed gives both the same federation, original model and Retrain), so the
shared seed-to-seed variation cancels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats as _scipy_stats

LEVEL = 0.95
"""The confidence level of every interval fednot reports."""


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds and its confidence interval ``[low, high]``.

    With one seed the interval is undefined: ``low`` and ``high`` are NaN.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN for one seed)."""
        return (self.high - self.low) / 2

    @property
    def contains_zero(self) -> bool:
        """Whether 0 lies in the interval: the sign of the mean is not established (n < 2: True)."""
        return not (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interval:
        """Inverse of `to_dict`."""
        return cls(float(data["mean"]), float(data["low"]), float(data["high"]), int(data["n"]))


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` with its two-sided Student-t confidence interval.

    Raises:
        ValueError: for no values, or a level outside (0, 1).
    """
    if not values:
        raise ValueError("mean_ci needs at least one value.")
    if not 0 < level < 1:
        raise ValueError(f"The confidence level must lie in (0, 1), got {level}.")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = float(_scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(variance / n)
    return Interval(mean, mean - half, mean + half, n)


def paired_ci(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of the per-seed differences ``a[i] - b[i]`` with its confidence interval.

    ``a`` and ``b`` must be aligned by seed (the caller pairs them).
    """
    if len(a) != len(b):
        raise ValueError(f"Paired values need equal lengths, got {len(a)} and {len(b)}.")
    return mean_ci([x - y for x, y in zip(a, b, strict=True)], level)
