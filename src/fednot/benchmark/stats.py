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


EXACT_ENUMERATION_LIMIT = 20
"""Up to this many seeds, `sign_flip_p` enumerates every sign pattern (2^20 patterns)."""


def t_test_p(differences: Sequence[float]) -> float:
    """Two-sided p-value of the one-sample t-test of mean 0 (the test behind `paired_ci`).

    NaN for fewer than two values. With no spread, 1 for a mean of 0 and 0 otherwise.
    """
    n = len(differences)
    if n < 2:
        return math.nan
    mean = math.fsum(differences) / n
    variance = math.fsum((v - mean) ** 2 for v in differences) / (n - 1)
    if variance == 0:
        return 1.0 if mean == 0 else 0.0
    statistic = mean / math.sqrt(variance / n)
    return float(2 * _scipy_stats.t.sf(abs(statistic), n - 1))


def sign_flip_p(differences: Sequence[float]) -> float:
    """Exact two-sided p-value of the paired sign-flip (permutation) test of mean 0.

    Under the null that each per-seed difference is as likely negative as positive, every one
    of the 2^n sign patterns is equally likely; p is the share of patterns whose |mean| is at
    least the observed |mean| (the observed pattern included, so p ≥ 2^(1−n) for a nonzero
    mean: `smallest_sign_flip_p`). No normality is assumed. NaN for no values.

    Raises:
        ValueError: more than `EXACT_ENUMERATION_LIMIT` values.
    """
    n = len(differences)
    if n == 0:
        return math.nan
    if n > EXACT_ENUMERATION_LIMIT:
        raise ValueError(
            f"sign_flip_p enumerates 2^n sign patterns; n = {n} exceeds "
            f"{EXACT_ENUMERATION_LIMIT}. Use fewer seeds per comparison."
        )
    import numpy as np

    values = np.asarray(differences, dtype=np.float64)
    patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
    sums = np.abs(patterns @ values)
    observed = abs(float(values.sum()))
    return float(np.mean(sums >= observed * (1 - 1e-12) - 1e-15))


def smallest_sign_flip_p(n: int) -> float:
    """The smallest p-value `sign_flip_p` can give with ``n`` seeds: 2^(1−n)."""
    return 2.0 ** (1 - n) if n >= 1 else math.nan


def seeds_for_exact(alpha: float = 1 - LEVEL) -> int:
    """The fewest seeds with which the exact sign-flip test can reach ``alpha`` (6 for 0.05)."""
    n = 1
    while smallest_sign_flip_p(n) > alpha:
        n += 1
    return n


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values of one family of tests (NaN entries stay NaN).

    Sorted ascending, the i-th smallest of m p-values (i from 0) is multiplied by m − i, the
    running maximum keeps the order, and values are capped at 1. Rejecting where the adjusted
    p is below alpha controls the family-wise error rate at alpha under any dependence.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(tested)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
