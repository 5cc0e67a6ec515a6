"""Forgetting quality: the NeurIPS 2023 Machine Unlearning Challenge's score (docs/audit.md).

Triantafillou et al., "Are we making progress in unlearning? Findings from the first NeurIPS
unlearning competition" (2024), and the challenge's technical report "Machine Unlearning
Metric". Unlearning is framed as (ε, δ)-indistinguishability between the outputs of models
unlearned by a method and models retrained without the forgotten data. For each forgotten example
the score looks at one scalar per model, the logit-scaled confidence in the true label, and asks
how well a family of threshold attacks tells the two sets of models apart:

1. **Which side is positive.** The set whose median confidence is larger (Retrain on ties goes
   negative, as in the reference).
2. **A degenerate spread.** If one set's range is under 1 % of the other's, the example gets the
   cap ε = 50: a peaked set of models is distinguishable even where the attack family misses it.
3. **Attacks.** Single thresholds (predict positive above ``t``, a grid of 100 per unit over the
   pooled range) and intervals around the peakier set (predict it inside ``[l, r]``, 400 right
   ends by 400 left ends, each spanning ±2 units, the interval width starting at the peakier
   set's range).
4. **ε of one attack.** ``max(log(1 - δ - FPR) - log(FNR), log(1 - δ - FNR) - log(FPR))``,
   clipped at 0, with δ = 1e-5. An attack with FPR = FNR = 0 separates the sets perfectly
   (ε = ∞); one with exactly one of them 0 says nothing (too few models) and is dropped.
5. **ε of the example.** The largest over the attacks, clipped to [0, 50].
6. **Score.** ε is bucketed in steps of 0.5 from 0 up to ⌈ln(N − 1)⌉ (N unlearned models: the
   largest ε such a sample can resolve is about ln(N − 1)); bucket ``b`` earns ``2^-b`` points and
   an ε past the last bucket none. The forgetting quality is the mean over forgotten examples, in
   [0, 1]: 1 when every example is indistinguishable.
7. **Utility.** The final score multiplies by the unlearned models' mean retain and test
   accuracies relative to the retrained models'.

Departures from the reference code (``google-deepmind/unlearning_evaluation``, ``metric.py``),
none of which changes a score on inputs the reference handles:

- the confidence ``log p_y - log(1 - p_y)`` is computed as ``z_y - logsumexp(z_{j≠y})`` in
  float64, exact where the reference's ``+1e-45`` guard saturates;
- the rate of an attack is counted with a binary search over the sorted confidences instead of a
  models × thresholds comparison matrix on a GPU (same decisions, same ``≤``/``<`` boundaries);
- two sets of models that are each constant (the reference divides 0 by 0) get ε = 0 if equal
  and the cap otherwise; an example no attack can score (every one dropped; the reference
  asserts) gets ε = 0 and is counted in ``EpsilonEstimate.unscored``;
- the two sets may differ in size (a model that diverged is left out), each rate using its own
  count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

DELTA = 1e-5
"""δ of the (ε, δ) definition, the reference's."""
EPSILON_CAP = 50.0
"""The largest ε reported; also given to an example whose models' spread is degenerate."""
THRESHOLDS_PER_UNIT = 100
"""Grid density of the threshold attacks, per unit of confidence."""
BUFFER = 2.0
"""How far the interval attacks' ends range around the peakier set, in confidence units."""
DEGENERATE_RATIO = 0.01
"""A set whose range is under this fraction of the other's is degenerate (ε = the cap)."""
BUCKET = 0.5
"""Width of the ε buckets of the score."""


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log p_y - log(1 - p_y)`` per row: the logit-scaled confidence in the true label.

    Args:
        logits: ``[n, classes]`` raw model outputs.
        labels: ``[n]`` true labels.

    Returns:
        ``[n]`` float64 confidences (unbounded; 0 means p_y = 1/2).
    """
    z = logits.double()
    rows = torch.arange(len(labels))
    true = z[rows, labels]
    others = z.clone()
    others[rows, labels] = -math.inf
    return true - torch.logsumexp(others, dim=1)


def _rates(samples: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """The fraction of ``samples`` inside each closed interval ``[lows[i], highs[i]]``."""
    ordered = np.sort(samples)
    inside = np.searchsorted(ordered, highs, "right") - np.searchsorted(ordered, lows, "left")
    rates: np.ndarray = np.maximum(inside, 0) / len(samples)
    return rates


def _attack_epsilons(tpr: np.ndarray, fpr: np.ndarray, delta: float) -> np.ndarray:
    """ε of each attack from its true and false positive rates; NaN for an uninformative one."""
    fnr = 1.0 - tpr
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = np.log(1.0 - delta - fpr) - np.log(fnr)
        backward = np.log(1.0 - delta - fnr) - np.log(fpr)
        eps = np.clip(np.fmax(forward, backward), 0.0, None)
    separated = (fpr == 0) & (fnr == 0)
    eps = np.where((fpr == 0) | (fnr == 0), np.nan, eps)  # one of them 0: too few models
    return np.where(separated, np.inf, eps)


def _interval_attacks(peaked: np.ndarray, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TPR and FPR of the interval attacks that predict ``peaked`` inside ``[l, r]``."""
    width = float(np.ptp(peaked))
    low, high = peaked.min() + width - BUFFER, peaked.max() + BUFFER
    rights = np.linspace(low, high, math.ceil((high - low) * THRESHOLDS_PER_UNIT))
    per_right = math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT)
    offsets = np.linspace(-width - BUFFER, -width + BUFFER, per_right)
    lefts = (rights[:, None] + offsets[None, :]).ravel()
    rights = np.repeat(rights, per_right)
    return _rates(peaked, lefts, rights), _rates(wide, lefts, rights)


def _threshold_attacks(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TPR and FPR of the single-threshold attacks that predict positive at or above ``t``."""
    pooled = np.concatenate([pos, neg])
    low, high = float(pooled.min()), float(pooled.max())
    thresholds = np.linspace(low, high, math.ceil((high - low) * THRESHOLDS_PER_UNIT))
    top = np.full_like(thresholds, np.inf)
    return _rates(pos, thresholds, top), _rates(neg, thresholds, top)


def example_epsilon(
    unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA
) -> float | None:
    """ε of one forgotten example from its confidence under each unlearned and retrained model.

    Returns:
        ε in [0, `EPSILON_CAP`], or ``None`` if no attack was informative.
    """
    u, r = np.asarray(unlearned, np.float64), np.asarray(retrained, np.float64)
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    spreads = float(np.ptp(pos)), float(np.ptp(neg))
    if max(spreads) == 0.0:
        return 0.0 if pos[0] == neg[0] else EPSILON_CAP
    if min(spreads) / max(spreads) < DEGENERATE_RATIO:
        return EPSILON_CAP
    peaked, wide = (neg, pos) if spreads[0] >= spreads[1] else (pos, neg)
    tpr_i, fpr_i = _interval_attacks(peaked, wide)
    tpr_t, fpr_t = _threshold_attacks(pos, neg)
    eps = _attack_epsilons(np.concatenate([tpr_i, tpr_t]), np.concatenate([fpr_i, fpr_t]), delta)
    if np.all(np.isnan(eps)):
        return None
    return float(min(np.nanmax(eps), EPSILON_CAP))


@dataclass(frozen=True)
class EpsilonEstimate:
    """Per-example ε of one method against Retrain.

    Attributes:
        epsilons: ``[examples]`` ε per forgotten example (0 where no attack was informative).
        n_unlearned: the number of unlearned models the score's resolution depends on.
        n_retrained: the number of retrained models.
        unscored: how many examples no attack could score.
    """

    epsilons: np.ndarray
    n_unlearned: int
    n_retrained: int
    unscored: int


def example_epsilons(
    unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA
) -> EpsilonEstimate:
    """`example_epsilon` of every column of ``[models, examples]`` confidence matrices."""
    u, r = np.asarray(unlearned, np.float64), np.asarray(retrained, np.float64)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1]:
        raise ValueError(
            f"Expected [models, examples] matrices with the same examples, got {u.shape} and "
            f"{r.shape}."
        )
    if min(len(u), len(r)) < 2:
        raise ValueError(f"Need at least 2 models per side, got {len(u)} and {len(r)}.")
    values = [example_epsilon(u[:, i], r[:, i], delta) for i in range(u.shape[1])]
    eps = np.array([0.0 if v is None else v for v in values])
    return EpsilonEstimate(eps, len(u), len(r), sum(v is None for v in values))


def resolvable_epsilon(n_models: int) -> float:
    """``ln(N - 1)``: about the largest finite ε that ``N`` models per side can show."""
    return math.log(n_models - 1)


def bucket_points(epsilons: np.ndarray, n_models: int) -> np.ndarray:
    """The points each example earns: ``2^-b`` in bucket ``b`` of width 0.5 below ⌈ln(N-1)⌉."""
    if n_models < 3:
        raise ValueError(f"The score needs at least 3 unlearned models, got {n_models}.")
    buckets = int(math.ceil(resolvable_epsilon(n_models)) / BUCKET)
    index = np.floor(np.asarray(epsilons, np.float64) / BUCKET)
    return np.where(index < buckets, 0.5**index, 0.0)


def forgetting_quality(estimate: EpsilonEstimate) -> float:
    """The forgetting quality in [0, 1]: the mean of the examples' `bucket_points`."""
    return float(bucket_points(estimate.epsilons, estimate.n_unlearned).mean())


def utility_factor(
    unlearned_retain: float, retrained_retain: float, unlearned_test: float, retrained_test: float
) -> float:
    """The challenge's utility adjustment: retain and test accuracy relative to Retrain's."""
    return (unlearned_retain / retrained_retain) * (unlearned_test / retrained_test)


def bootstrap_interval(
    points: np.ndarray,
    generator: np.random.Generator,
    *,
    resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``points`` over resampled examples."""
    values = np.asarray(points, np.float64)
    draws = generator.integers(0, len(values), size=(resamples, len(values)))
    means = values[draws].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
