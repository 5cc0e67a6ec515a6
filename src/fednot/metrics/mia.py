"""The primary membership-inference attack: a balanced, loss-based attack (`metrics.md` §3).

Question: can an attacker tell the forget samples from unseen test samples by the evaluated
model's per-sample loss? 50 means indistinguishable (the ideal after unlearning, and Retrain's
score); higher means the forget set is still recognisable, or over-forgotten (losses far above the
test losses are just as recognisable).

Recipe (feature and classifier from the NeurIPS 2023 Machine Unlearning Challenge starting kit):
draw n = min(|D_u|, |Test|) members and as many non-members without replacement, fit
scikit-learn's ``LogisticRegression`` on the loss (one feature), and score accuracy with a
shuffled, stratified k-fold cross-validation. MIA = 100 × mean fold accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from fednot.errors import ConfigError


@dataclass(frozen=True)
class MIAResult:
    """Attack accuracy in percent: mean and standard deviation over the folds."""

    mean: float
    std: float
    n: int  # members used (= non-members used)


def loss_mia(
    member_losses: ArrayLike,
    nonmember_losses: ArrayLike,
    *,
    seed: int,
    folds: int = 5,
    max_iter: int = 1000,
) -> MIAResult:
    """Balanced loss attack; see the module docstring.

    Both inputs are sorted first, so the result does not depend on their order.

    Args:
        member_losses: per-sample losses of the forget set D_u.
        nonmember_losses: per-sample losses of the test set.
        seed: seeds the draws and the fold assignment (the run's ``mia`` stream).
        folds: number of stratified folds.
        max_iter: iterations of the logistic regression.
    """
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("scikit-learn is needed for the MIA: pip install scikit-learn") from e
    members = np.sort(np.asarray(member_losses, dtype=np.float64).ravel())
    nonmembers = np.sort(np.asarray(nonmember_losses, dtype=np.float64).ravel())
    n = min(len(members), len(nonmembers))
    if n < folds:
        raise ConfigError(
            f"The MIA needs at least {folds} members and non-members (one per fold), got "
            f"{len(members)} and {len(nonmembers)}."
        )
    rng = np.random.default_rng(seed)
    members = members[rng.choice(len(members), size=n, replace=False)]
    nonmembers = nonmembers[rng.choice(len(nonmembers), size=n, replace=False)]
    features = np.concatenate([members, nonmembers]).reshape(-1, 1)
    labels = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % (2**32))
    scores = cross_val_score(
        LogisticRegression(max_iter=max_iter), features, labels, cv=splitter, scoring="accuracy"
    )
    return MIAResult(float(scores.mean() * 100), float(scores.std() * 100), n)


def label_matched(
    member_labels: np.ndarray, nonmember_labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices of non-members whose label histogram matches the members', as far as possible.

    For each class c with m_c members, min(m_c, available) non-members of class c are drawn
    without replacement. Use it when the forget set's labels are skewed (class-wise or non-IID
    forgetting), where random non-members differ from the members by class alone, and even
    Retrain would score above 50 (`metrics.md` §3).
    """
    chosen = []
    for label, count in zip(*np.unique(member_labels, return_counts=True), strict=True):
        pool = np.flatnonzero(nonmember_labels == label)
        chosen.append(rng.choice(pool, size=min(int(count), len(pool)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
