from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from fednot.errors import ConfigError
from fednot.metrics.mia import loss_mia


def _reference(members: np.ndarray, nonmembers: np.ndarray, seed: int, folds: int) -> float:
    """A straightforward scikit-learn computation of the same attack."""
    members, nonmembers = np.sort(members), np.sort(nonmembers)
    n = min(len(members), len(nonmembers))
    rng = np.random.default_rng(seed)
    members = members[rng.choice(len(members), n, replace=False)]
    nonmembers = nonmembers[rng.choice(len(nonmembers), n, replace=False)]
    x = np.concatenate([members, nonmembers])[:, None]
    y = np.r_[np.ones(n), np.zeros(n)]
    accuracies = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(max_iter=1000).fit(x[train], y[train])
        accuracies.append((clf.predict(x[test]) == y[test]).mean())
    return 100 * float(np.mean(accuracies))


def test_agrees_with_a_scikit_learn_reference() -> None:
    rng = np.random.default_rng(0)
    members = rng.exponential(0.3, size=300)
    nonmembers = rng.exponential(0.6, size=500)
    result = loss_mia(members, nonmembers, seed=11, folds=5)
    assert result.n == 300
    assert result.mean == pytest.approx(_reference(members, nonmembers, 11, 5), abs=1e-9)
    assert 50 < result.mean < 80


def test_identical_distributions_score_about_fifty() -> None:
    rng = np.random.default_rng(1)
    scores = [
        loss_mia(rng.exponential(0.5, 400), rng.exponential(0.5, 400), seed=s).mean
        for s in range(5)
    ]
    assert abs(np.mean(scores) - 50) < 4


def test_perfectly_separated_losses_score_one_hundred() -> None:
    rng = np.random.default_rng(2)
    result = loss_mia(rng.uniform(0, 1, 200), rng.uniform(5, 6, 200), seed=0)
    assert result.mean == 100.0


def test_over_forgetting_is_also_detected() -> None:
    rng = np.random.default_rng(3)
    result = loss_mia(rng.uniform(5, 6, 200), rng.uniform(0, 1, 200), seed=0)
    assert result.mean == 100.0


def test_invariant_to_input_order() -> None:
    rng = np.random.default_rng(4)
    members, nonmembers = rng.exponential(0.3, 150), rng.exponential(0.5, 220)
    a = loss_mia(members, nonmembers, seed=5)
    b = loss_mia(members[::-1], rng.permutation(nonmembers), seed=5)
    assert a == b


def test_too_few_samples_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="at least 5"):
        loss_mia([0.1, 0.2], [0.3, 0.4, 0.5], seed=0)


def test_label_matched_nonmembers_follow_the_members_histogram() -> None:
    from fednot.metrics.mia import label_matched

    members = np.array([0, 0, 0, 2])
    nonmembers = np.array([0, 1, 2, 0, 1, 2, 0, 1, 0, 1])
    chosen = label_matched(members, nonmembers, np.random.default_rng(0))
    assert sorted(nonmembers[chosen].tolist()) == [0, 0, 0, 2]
    scarce = label_matched(np.array([2, 2, 2, 2, 2]), nonmembers, np.random.default_rng(0))
    assert nonmembers[scarce].tolist() == [2, 2]  # as far as the test set allows
