"""The primary membership-inference attack: a balanced, loss-based attack, and its noise floor.

Can an attacker tell the forget samples (members) from unseen test samples (non-members) by the
evaluated model's per-sample loss? 50 means indistinguishable (the ideal after unlearning, and
Retrain's score); higher means the forget set is still recognisable, or over-forgotten (losses
far above the test losses are just as recognisable).

Recipe (loss feature and classifier as in the simple MIA of the NeurIPS 2023 Machine Unlearning
Challenge starting kit): draw n members and n non-members without replacement, fit a logistic
regression on the loss alone (scikit-learn's defaults: L2 penalty on the slope, C = 1) and
score it by shuffled, stratified k-fold cross-validation. One draw is noisy (1 to 2.5 points
with 300 members), so the attack averages ``repeats`` independent draws: MIA = 100 × the mean
over the repeats of each repeat's mean fold accuracy.

A draw gives every sample a uniform random key and takes, per side, the n smallest keys in key
order; the j-th drawn of each side falls in fold j mod k. Label-matched, both sides give, per
class c, their k_c = min(members of c, non-members of c) smallest-key samples of class c, so
the two sides cannot differ by class alone (which, for skewed forget sets, would let even
Retrain score above 50).

Noise floor (`mia_noise_floor`): could a forget set of this size with no membership signal
score this? Under that null hypothesis the members' and non-members' losses of each class are
exchangeable, so each permutation pools the m_c members and n_c non-members of class c (all
samples when unlabelled), reassigns m_c of them at random as the members, and reruns the whole
averaged attack of `loss_mia` (its own ``repeats`` draws of samples and folds) on the permuted
sides. Membership is permuted once per permutation, not per repeat: the real attack meets the
same forget set in every repeat, and so does each null attack, whose forget set's chance
idiosyncrasies therefore survive the averaging just as the real one's do. The floor is the 95th
percentile of |score − 50| over the permutations.

Infinite losses: finite weights can still give logits that overflow, and so a per-sample loss
of +inf. Such a loss is replaced by the largest finite loss of either side (-inf by the
smallest; 0 if no loss is finite): the sample counts as predicted at least as badly as any
other, the order of the losses is kept, and no arbitrary stand-in far above the others (which
would dominate the one-feature fit) or NaN reaches the fit. A NaN loss is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fednot.errors import ConfigError
from fednot.metrics.logistic import fold_accuracies

DEFAULT_REPEATS: int = 50
"""Fewest repeats in {10, 20, 50, 100} whose score varies ≤ 0.25 points across seeds on the
default run (`benchmarks/mia_stability.py`)."""

_SHUFFLE_ELEMENTS = 1 << 22  # losses permuted at once by the noise floor (32 MB)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
AnyArray = NDArray[Any]


@dataclass(frozen=True)
class MIAResult:
    """Attack accuracy in percent: the MIA."""

    mean: float  # 100 × the mean over the repeats of each repeat's mean fold accuracy
    std: float  # of one repeat's score (ddof=1; 0 for one repeat); mean's own is ~std/√repeats
    n: int  # members per draw (= non-members per draw)
    repeats: int


@dataclass(frozen=True)
class NoiseFloor:
    """The attack's scores under a permutation null (no signal), in percent."""

    mean: float  # about 50
    std: float  # ddof=1, in points
    half_width: float  # 95th percentile of |score − 50|: within 50 ± half_width is chance
    permutations: int
    n: int  # members per draw


def loss_mia(
    member_losses: ArrayLike,
    nonmember_losses: ArrayLike,
    *,
    seed: int,
    folds: int = 5,
    repeats: int = DEFAULT_REPEATS,
    max_iter: int = 100,
    member_labels: ArrayLike | None = None,
    nonmember_labels: ArrayLike | None = None,
) -> MIAResult:
    """Balanced loss attack averaged over ``repeats`` draws (module docstring).

    Each side is sorted first (by loss, then label): the result does not depend on input order.

    Args:
        member_losses: per-sample losses of the forget set D_u.
        nonmember_losses: per-sample losses of the test set.
        seed: seeds every draw (one generator, draws in a fixed order).
        folds: stratified cross-validation folds per repeat.
        repeats: independent draws of samples and folds to average.
        max_iter: Newton iterations of each logistic regression.
        member_labels: the members' classes; with ``nonmember_labels``, label-matches the draws.
        nonmember_labels: the non-members' classes.
    """
    m_loss, m_label, n_loss, n_label = _sides(
        member_losses,
        nonmember_losses,
        member_labels,
        nonmember_labels,
        folds=folds,
        repeats=repeats,
        max_iter=max_iter,
    )
    _matched_size(m_label, n_label, folds=folds, labelled=member_labels is not None)
    m_index, n_index = balanced_draws(
        m_label, n_label, repeats=repeats, rng=np.random.default_rng(seed)
    )
    x = np.concatenate([m_loss[m_index], n_loss[n_index]], axis=1)
    scores = fold_accuracies(x, folds=folds, max_iter=max_iter).mean(axis=-1) * 100
    std = float(scores.std(ddof=1)) if repeats > 1 else 0.0
    return MIAResult(float(scores.mean()), std, x.shape[1] // 2, repeats)


def mia_noise_floor(
    member_losses: ArrayLike,
    nonmember_losses: ArrayLike,
    *,
    seed: int,
    folds: int = 5,
    repeats: int = DEFAULT_REPEATS,
    permutations: int = 200,
    max_iter: int = 100,
    member_labels: ArrayLike | None = None,
    nonmember_labels: ArrayLike | None = None,
) -> NoiseFloor:
    """Permutation null of `loss_mia`: arguments as there, plus ``permutations`` null attacks.

    Each permutation reassigns membership once, within each class when labelled
    (`permute_membership`), then scores `loss_mia`'s whole procedure on the permuted sides:
    ``repeats`` fresh balanced draws of samples and folds, averaged (module docstring, "Noise
    floor"). Pass the attack's ``repeats``, ``folds`` and labels. The attacks of several
    permutations are fitted together, ``_SHUFFLE_ELEMENTS`` pooled losses' worth at a time.
    """
    _require(
        permutations >= 1, f"permutations must be at least 1 (200 is stable), got {permutations}."
    )
    m_loss, m_label, n_loss, n_label = _sides(
        member_losses,
        nonmember_losses,
        member_labels,
        nonmember_labels,
        folds=folds,
        repeats=repeats,
        max_iter=max_iter,
    )
    n = _matched_size(m_label, n_label, folds=folds, labelled=member_labels is not None)
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([m_loss, n_loss])
    chunk = max(1, _SHUFFLE_ELEMENTS // (repeats * len(pooled)))
    scores = np.empty(permutations)
    for start in range(0, permutations, chunk):
        count = min(chunk, permutations - start)
        m_pos, n_pos = permute_membership(m_label, n_label, permutations=count, rng=rng)
        m_index, n_index = balanced_draws(m_label, n_label, repeats=count * repeats, rng=rng)
        row = np.repeat(np.arange(count), repeats)[:, None]  # each repeat's permutation
        x = np.concatenate([pooled[m_pos[row, m_index]], pooled[n_pos[row, n_index]]], axis=1)
        accuracies = fold_accuracies(
            x.reshape(count, repeats, 2 * n), folds=folds, max_iter=max_iter
        )
        scores[start : start + count] = accuracies.mean(axis=(-2, -1)) * 100
    std = float(scores.std(ddof=1)) if permutations > 1 else 0.0
    half_width = float(np.percentile(np.abs(scores - 50), 95))
    return NoiseFloor(float(scores.mean()), std, half_width, permutations, n)


def permute_membership(
    member_labels: ArrayLike,
    nonmember_labels: ArrayLike,
    *,
    permutations: int,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray]:
    """Label-matched membership permutations, as indices into the members, then non-members.

    Returns ``(members, nonmembers)``, ``(permutations, m)`` and ``(permutations, n)``: row p's
    member i is pooled sample ``members[p, i]`` (index j < m: member j; m + j: non-member j).
    Per row and class c, the m_c members and n_c non-members of class c are pooled and shuffled;
    the first m_c fill the members' class-c positions, the rest the non-members'. So every
    position keeps its label, and the members of class c are a uniformly random m_c-subset of
    the class's pool. One label for all samples: an unlabelled permutation.
    """
    m_label, n_label = np.asarray(member_labels).ravel(), np.asarray(nonmember_labels).ravel()
    members = np.empty((permutations, len(m_label)), np.intp)
    nonmembers = np.empty((permutations, len(n_label)), np.intp)
    for label in np.union1d(m_label, n_label):
        m_at, n_at = np.flatnonzero(m_label == label), np.flatnonzero(n_label == label)
        pool = np.concatenate([m_at, len(m_label) + n_at])
        shuffled = rng.permuted(np.broadcast_to(pool, (permutations, len(pool))), axis=1)
        members[:, m_at], nonmembers[:, n_at] = shuffled[:, : len(m_at)], shuffled[:, len(m_at) :]
    return members, nonmembers


def balanced_draws(
    member_labels: ArrayLike, nonmember_labels: ArrayLike, *, repeats: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Indices ``(members, nonmembers)``, each ``(repeats, Σ k_c)``, of label-matched draws.

    Per class in ascending order (members' keys drawn first), as in the module docstring; each
    row's two label histograms are identical. One label for all samples: an unmatched draw.
    """
    sides = np.asarray(member_labels).ravel(), np.asarray(nonmember_labels).ravel()
    blocks: tuple[list[IntArray], list[IntArray]] = ([], [])
    for label in np.intersect1d(*sides):
        pools = [np.flatnonzero(side == label) for side in sides]
        size = min(len(pool) for pool in pools)
        for pool, block in zip(pools, blocks, strict=True):
            keys = rng.random((repeats, len(pool)))
            smallest = np.argpartition(keys, size - 1, axis=1)[:, :size]
            order = np.argsort(np.take_along_axis(keys, smallest, axis=1), axis=1)
            block.append(pool[np.take_along_axis(smallest, order, axis=1)])
    members, nonmembers = (
        np.concatenate(b, axis=1) if b else np.zeros((repeats, 0), np.intp) for b in blocks
    )
    return members, nonmembers


def _sides(
    m_losses: ArrayLike,
    n_losses: ArrayLike,
    m_labels: ArrayLike | None,
    n_labels: ArrayLike | None,
    *,
    folds: int,
    repeats: int,
    max_iter: int,
) -> tuple[FloatArray, AnyArray, FloatArray, AnyArray]:
    """Check the arguments; each side's losses and labels, sorted by loss, then label."""
    for name, value, least, advice in (
        ("folds", folds, 2, "test on one, fit on the rest"),
        ("repeats", repeats, 1, f"{DEFAULT_REPEATS} is stable"),
        ("max_iter", max_iter, 1, "100 is plenty"),
    ):
        _require(value >= least, f"{name} must be at least {least} ({advice}), got {value}.")
    _require(
        (m_labels is None) == (n_labels is None),
        "member_labels and nonmember_labels go together: pass both for a label-matched attack, "
        "or neither.",
    )
    sides: list[FloatArray | AnyArray] = []
    raw = [np.asarray(losses, dtype=np.float64).ravel() for losses in (m_losses, n_losses)]
    for name, loss, labels in zip(
        ("member", "nonmember"), clamp_infinite(*raw), (m_labels, n_labels), strict=True
    ):
        label = np.zeros(len(loss), np.intp) if labels is None else np.asarray(labels).ravel()
        bad = int(np.isnan(loss).sum())
        _require(not bad, f"{name}_losses must not be NaN, got {bad} NaN; drop those samples.")
        _require(
            len(label) == len(loss),
            f"{name}_labels needs one label per loss, got {len(label)} for {len(loss)} losses.",
        )
        order = np.lexsort((label, loss))
        sides += [loss[order], label[order]]
    m_loss, m_label, n_loss, n_label = sides
    return m_loss, m_label, n_loss, n_label


def _matched_size(m_label: AnyArray, n_label: AnyArray, *, folds: int, labelled: bool) -> int:
    """The members per draw, Σ_c min(members of c, non-members of c); at least one per fold."""
    classes, m_counts = np.unique(m_label, return_counts=True)
    n_counts = np.array([np.count_nonzero(n_label == c) for c in classes], dtype=np.intp)
    n = int(np.minimum(m_counts, n_counts).sum())
    _require(
        n >= folds,
        f"The MIA needs at least {folds} members and {folds} non-members (one per fold), got "
        f"{n}{' label-matched' if labelled else ''} from {len(m_label)} members and "
        f"{len(n_label)} non-members; pass more samples or fewer folds.",
    )
    return n


def clamp_infinite(*sides: FloatArray) -> list[FloatArray]:
    """``sides`` with ±inf replaced by the largest (smallest) finite value of all of them.

    See the module docstring, "Infinite losses"; 0 stands in when no value is finite. NaN is
    left as it is.
    """
    finite = np.concatenate([side[np.isfinite(side)] for side in sides])
    high, low = (float(finite.max()), float(finite.min())) if finite.size else (0.0, 0.0)
    return [np.where(np.isposinf(s), high, np.where(np.isneginf(s), low, s)) for s in sides]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
