"""A stronger membership-inference attack: calibrated logit-scaled confidence, and its null.

The statistic is LiRA's (N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis, F. Tramèr,
"Membership Inference Attacks From First Principles", IEEE S&P 2022): the logit-scaled confidence
of the true class y,

    phi = log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j,

computed from the logits z (`true_class_margin`), never from the float32 loss, which rounds to 0
for confident samples and so loses exactly the samples a model memorised. LiRA fits phi's
distributions from shadow models; this is its single-model ("offline", no shadow models)
form, calibrated per class on the non-members: for class c, with mu_c and sigma_c the mean and
standard deviation (ddof=1) of the non-members' phi of class c,

    score = (phi − mu_c) / sigma_c,   higher = predicted member.

A class with fewer than 2 non-members or sigma_c = 0 uses the pooled non-members' mean and
standard deviation instead (sigma 1 if that is 0 too). Two statistics of the scores:

- ``auc``: 100 × the ROC AUC of members against non-members, i.e. the probability that a random
  member outscores a random non-member, ties counting half (Mann–Whitney, with midranks).
  50 = chance.
- ``tpr_at_1fpr``: the percentage of members whose score exceeds a threshold t, the
  non-members' score quantile that at most 1 % of non-members exceed (t = the
  (⌊0.01·n⌋ + 1)-th largest non-member score). Chance ≈ 1.

Null (no membership signal, as the loss attack's in `fednot.metrics.mia`): each permutation
pools the members and non-members of each class, reassigns as many members as there were at
random (`fednot.metrics.mia.permute_membership`), recalibrates and recomputes both statistics.
``auc_floor`` is the 95th percentile of |AUC − 50| (two-sided, like the loss attack's floor) and
``tpr_floor`` the 95th percentile of the null TPR (one-sided: only a high TPR means leakage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fednot.errors import ConfigError
from fednot.metrics.mia import clamp_infinite, permute_membership

FPR: float = 0.01
"""The false-positive rate at which ``tpr_at_1fpr`` is read."""

_PERMUTE_ELEMENTS = 1 << 21  # pooled values permuted and ranked at once by the null (16 MB)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ConfidenceAttack:
    """The calibrated confidence attack on one model, in percent (module docstring)."""

    auc: float  # 100 × ROC AUC, members vs non-members; 50 = chance
    tpr_at_1fpr: float  # % of members above the 1 %-FPR threshold; chance ≈ 1
    auc_floor: float | None  # 95th percentile of the null's |AUC − 50| (None: not computed)
    tpr_floor: float | None  # 95th percentile of the null's TPR (None: not computed)
    members: int
    nonmembers: int


def true_class_margin(logits: ArrayLike, labels: ArrayLike) -> FloatArray:
    """The true-class margin phi = z_y − logsumexp_{j≠y} z_j = log(p_y / (1 − p_y)), in float64.

    ``logits`` is ``(n, classes)`` with at least 2 classes, ``labels`` ``(n,)`` class indices.
    The log-sum-exp subtracts the row's largest other logit, so no finite input overflows;
    infinite logits give ±inf (or NaN for inf − inf), which the attack clamps (or refuses).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.intp).ravel()
    _require(
        z.ndim == 2 and z.shape[1] >= 2 and len(z) == len(y),
        f"true_class_margin needs logits of shape (n, classes >= 2) and n labels, got logits "
        f"{z.shape} and {len(y)} labels.",
    )
    if not len(y):
        return np.zeros(0)
    true = np.take_along_axis(z, y[:, None], axis=1)[:, 0]
    others = z.copy()
    np.put_along_axis(others, y[:, None], -np.inf, axis=1)
    top = others.max(axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        rest = safe + np.log(np.exp(others - safe[:, None]).sum(axis=1))
        return np.asarray(true - np.where(np.isfinite(top), rest, top), dtype=np.float64)


def confidence_attack(
    member_margins: ArrayLike,
    nonmember_margins: ArrayLike,
    *,
    member_labels: ArrayLike,
    nonmember_labels: ArrayLike,
    seed: int,
    permutations: int = 200,
) -> ConfidenceAttack:
    """The calibrated confidence attack and its permutation null (module docstring).

    Args:
        member_margins: `true_class_margin` of the members (the forget set D_u).
        nonmember_margins: `true_class_margin` of the non-members (the test set).
        member_labels: the members' classes (the calibration is per class).
        nonmember_labels: the non-members' classes.
        seed: seeds the null's permutations.
        permutations: null attacks; 0 skips the null (both floors ``None``).
    """
    _require(
        permutations >= 0, f"permutations must be >= 0 (0 skips the null), got {permutations}."
    )
    sides = []
    raw = [np.asarray(v, dtype=np.float64).ravel() for v in (member_margins, nonmember_margins)]
    for name, values, labels in zip(
        ("member", "nonmember"),
        clamp_infinite(*raw),
        (member_labels, nonmember_labels),
        strict=True,
    ):
        label = np.asarray(labels).ravel()
        bad = int(np.isnan(values).sum())
        _require(not bad, f"{name}_margins must not be NaN, got {bad} NaN; drop those samples.")
        _require(
            len(label) == len(values),
            f"{name}_labels needs one label per margin, got {len(label)} for {len(values)}.",
        )
        order = np.lexsort((label, values))  # the result does not depend on input order
        sides.append((values[order], label[order]))
    (m_phi, m_label), (n_phi, n_label) = sides
    _require(
        len(m_phi) >= 1 and len(n_phi) >= 2,
        f"The confidence attack needs at least 1 member and 2 non-members, got {len(m_phi)} "
        f"and {len(n_phi)}.",
    )
    auc, tpr = attack_statistics(m_phi, n_phi, m_label, n_label)
    auc_floor = tpr_floor = None
    if permutations:
        rng = np.random.default_rng(seed)
        pooled = np.concatenate([m_phi, n_phi])
        chunk = max(1, _PERMUTE_ELEMENTS // len(pooled))
        null_auc, null_tpr = np.empty(permutations), np.empty(permutations)
        for start in range(0, permutations, chunk):
            count = min(chunk, permutations - start)
            m_pos, n_pos = permute_membership(m_label, n_label, permutations=count, rng=rng)
            stats = attack_statistics(pooled[m_pos], pooled[n_pos], m_label, n_label)
            null_auc[start : start + count], null_tpr[start : start + count] = stats
        auc_floor = float(np.percentile(np.abs(null_auc - 50), 95))
        tpr_floor = float(np.percentile(null_tpr, 95))
    return ConfidenceAttack(
        float(auc), float(tpr), auc_floor, tpr_floor, members=len(m_phi), nonmembers=len(n_phi)
    )


def attack_statistics(
    member_phi: ArrayLike,
    nonmember_phi: ArrayLike,
    member_labels: ArrayLike,
    nonmember_labels: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """``(auc, tpr_at_1fpr)`` in percent of ``(..., m)`` and ``(..., n)`` batched margins.

    Calibrates per class on the non-members (`calibrate`), then `roc_auc` and `tpr_at_fpr`.
    """
    m_phi = np.asarray(member_phi, dtype=np.float64)
    n_phi = np.asarray(nonmember_phi, dtype=np.float64)
    m_score, n_score = calibrate(m_phi, n_phi, member_labels, nonmember_labels)
    return roc_auc(m_score, n_score), tpr_at_fpr(m_score, n_score, fpr=FPR)


def calibrate(
    member_phi: FloatArray,
    nonmember_phi: FloatArray,
    member_labels: ArrayLike,
    nonmember_labels: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Both sides' scores (phi − mu_c) / sigma_c, standardised on each class's non-members.

    Batched over the leading axes of ``(..., m)`` and ``(..., n)``; the labels are per column.
    The fallbacks for thin or constant classes are in the module docstring.
    """
    m_label, n_label = np.asarray(member_labels).ravel(), np.asarray(nonmember_labels).ravel()
    pooled_mu, pooled_sigma = _mean_std(nonmember_phi)
    pooled_sigma = np.where(pooled_sigma > 0, pooled_sigma, 1.0)
    m_score, n_score = np.empty_like(member_phi), np.empty_like(nonmember_phi)
    for label in np.union1d(m_label, n_label):
        m_at, n_at = m_label == label, n_label == label
        mu, sigma = pooled_mu, pooled_sigma
        if n_at.sum() >= 2:
            own_mu, own_sigma = _mean_std(nonmember_phi[..., n_at])
            use = own_sigma > 0
            mu, sigma = np.where(use, own_mu, pooled_mu), np.where(use, own_sigma, pooled_sigma)
        m_score[..., m_at] = (member_phi[..., m_at] - mu[..., None]) / sigma[..., None]
        n_score[..., n_at] = (nonmember_phi[..., n_at] - mu[..., None]) / sigma[..., None]
    return m_score, n_score


def roc_auc(member_scores: FloatArray, nonmember_scores: FloatArray) -> FloatArray:
    """100 × ROC AUC of ``(..., m)`` member against ``(..., n)`` non-member scores.

    Mann–Whitney: AUC = (R_m − m(m+1)/2) / (m·n), with R_m the sum of the members' midranks
    (1-based; tied values share the mean of their ranks) among all m + n scores.
    """
    m, n = member_scores.shape[-1], nonmember_scores.shape[-1]
    both = np.concatenate([member_scores, nonmember_scores], axis=-1)
    order = np.argsort(both, axis=-1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=-1)
    index = np.broadcast_to(np.arange(m + n), ordered.shape)
    new = np.ones(ordered.shape, dtype=bool)
    new[..., 1:] = ordered[..., 1:] != ordered[..., :-1]  # a tie group starts here
    last = np.ones(ordered.shape, dtype=bool)
    last[..., :-1] = new[..., 1:]  # a tie group ends here
    first_of = np.maximum.accumulate(np.where(new, index, 0), axis=-1)
    last_of = np.flip(np.minimum.accumulate(np.flip(np.where(last, index, m + n), -1), -1), -1)
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, (first_of + last_of) / 2 + 1, axis=-1)
    member_ranks = ranks[..., :m].sum(axis=-1)
    return np.asarray(100 * (member_ranks - m * (m + 1) / 2) / (m * n), dtype=np.float64)


def tpr_at_fpr(
    member_scores: FloatArray, nonmember_scores: FloatArray, *, fpr: float = FPR
) -> FloatArray:
    """% of members scoring above t, the (⌊fpr·n⌋ + 1)-th largest non-member score.

    At most ⌊fpr·n⌋ non-members exceed t, so the false-positive rate is at most ``fpr``.
    """
    n = nonmember_scores.shape[-1]
    allowed = int(np.floor(fpr * n))
    threshold = np.partition(nonmember_scores, n - 1 - allowed, axis=-1)[..., n - 1 - allowed]
    return np.asarray(100 * (member_scores > threshold[..., None]).mean(axis=-1))


def _mean_std(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation (ddof=1; 0 for fewer than 2 values) over the last axis."""
    mu = values.mean(axis=-1)
    sigma = values.std(axis=-1, ddof=1) if values.shape[-1] >= 2 else np.zeros_like(mu)
    return np.asarray(mu), np.asarray(sigma)


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise ConfigError(message)
