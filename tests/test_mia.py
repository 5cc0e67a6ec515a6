from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fednot.errors import ConfigError
from fednot.metrics.logistic import fit_logistic_1d, fold_accuracies
from fednot.metrics.mia import (
    MIAResult,
    balanced_draws,
    loss_mia,
    mia_noise_floor,
    permute_membership,
)


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    m = 240
    x = rng.normal(size=m)
    half = np.r_[np.ones(m // 2), np.zeros(m // 2)]
    return {
        "overlapping": (x, (rng.random(m) < 1 / (1 + np.exp(-2 * x))).astype(float)),
        "nearly separable": (np.r_[rng.uniform(0, 1, m // 2), rng.uniform(0.98, 2, m // 2)], half),
        "separable": (np.r_[rng.uniform(0, 1, m // 2), rng.uniform(5, 6, m // 2)], half),
        "heavy tailed": (rng.exponential(0.3, m) ** 3 * 20, (rng.random(m) < 0.5).astype(float)),
        "constant": (np.full(m, 3.0), (np.arange(m) % 2).astype(float)),
    }


@pytest.mark.parametrize("name", list(_datasets()))
def test_logistic_fit_matches_scikit_learn(name: str) -> None:
    x, y = _datasets()[name]
    w, b = fit_logistic_1d(x, y)
    exact = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x[:, None], y)
    assert w == pytest.approx(exact.coef_[0, 0], rel=1e-5, abs=1e-9)
    assert b == pytest.approx(exact.intercept_[0], rel=1e-5, abs=1e-9)
    grid = np.r_[x, np.linspace(x.min() - 1, x.max() + 1, 1001)]
    for clf in (exact, LogisticRegression().fit(x[:, None], y)):  # the attack's own settings
        np.testing.assert_array_equal(w * grid + b > 0, clf.predict(grid[:, None]) == 1)


def test_batched_fits_equal_separate_fits() -> None:
    data = list(_datasets().values())
    w, b = fit_logistic_1d(np.stack([x for x, _ in data]), np.stack([y for _, y in data]))
    for i, (x, y) in enumerate(data):
        wi, bi = fit_logistic_1d(x, y)
        assert (w[i], b[i]) == pytest.approx((float(wi), float(bi)), rel=1e-12, abs=1e-15)


def test_one_repeat_equals_scikit_learn_on_the_same_draw_and_folds() -> None:
    rng = np.random.default_rng(1)
    members, nonmembers = rng.exponential(0.3, 303), rng.exponential(0.45, 500)
    seed, folds, n = 11, 5, 303  # 303 members: folds of 61, 61, 61, 60, 60 per side
    # The documented draw: uniform keys per sample, the n smallest of each side in key order.
    draw = np.random.default_rng(seed)
    m_drawn = np.sort(members)[np.argsort(draw.random(len(members)))[:n]]
    n_drawn = np.sort(nonmembers)[np.argsort(draw.random(len(nonmembers)))[:n]]
    x, y = np.r_[m_drawn, n_drawn], np.r_[np.ones(n), np.zeros(n)]
    fold = np.r_[np.arange(n) % folds, np.arange(n) % folds]
    expected = []
    for f in range(folds):
        clf = LogisticRegression().fit(x[fold != f, None], y[fold != f])
        expected.append((clf.predict(x[fold == f, None]) == y[fold == f]).mean())
    np.testing.assert_array_equal(fold_accuracies(x, folds=folds), expected)
    result = loss_mia(members, nonmembers, seed=seed, folds=folds, repeats=1)
    assert result == MIAResult(pytest.approx(100 * np.mean(expected), abs=1e-9), 0.0, n, 1)
    assert 55 < result.mean < 80


@pytest.mark.parametrize("d", [0.0, 0.5, 1.0, 2.0])
def test_recovers_the_best_balanced_accuracy_of_known_separations(d: float) -> None:
    # Members ~ N(0, 1), non-members ~ N(d, 1): the best threshold, d/2, scores Phi(d/2).
    # Tolerance: the 4000 samples' own accuracy has a std <= 0.8 points; 2.5 is ~3 of those.
    rng = np.random.default_rng(7)
    result = loss_mia(rng.normal(0, 1, 2000), rng.normal(d, 1, 2000), seed=0, repeats=20)
    best = 100 * 0.5 * (1 + math.erf(d / 2 / math.sqrt(2)))
    assert result.mean == pytest.approx(best, abs=2.5)
    assert result.n == 2000 and result.repeats == 20


def test_averaging_repeats_shrinks_the_spread_across_seeds() -> None:
    rng = np.random.default_rng(2)
    members, nonmembers = rng.normal(0, 1, 300), rng.normal(0.3, 1, 1000)
    spread = {
        repeats: np.std(
            [loss_mia(members, nonmembers, seed=s, repeats=repeats).mean for s in range(30)], ddof=1
        )
        for repeats in (1, 50)
    }
    assert spread[50] < 0.5 * spread[1]


def test_std_is_the_spread_of_the_repeats() -> None:
    rng = np.random.default_rng(3)
    members, nonmembers = rng.normal(0, 1, 200), rng.normal(0.5, 1, 600)
    assert loss_mia(members, nonmembers, seed=0, repeats=1).std == 0.0
    many = loss_mia(members, nonmembers, seed=0, repeats=40)
    assert 0.5 < many.std < 8


def test_label_matched_draws_have_identical_histograms() -> None:
    rng = np.random.default_rng(4)
    member_labels = rng.choice(4, size=120, p=[0.7, 0.1, 0.2, 0.0])
    nonmember_labels = np.r_[rng.integers(0, 5, 300), np.full(5, 2)]
    members, nonmembers = balanced_draws(
        member_labels, nonmember_labels, repeats=6, rng=np.random.default_rng(0)
    )
    expected = [min((member_labels == c).sum(), (nonmember_labels == c).sum()) for c in range(4)]
    assert members.shape == nonmembers.shape == (6, sum(expected))
    for m_row, n_row in zip(members, nonmembers, strict=True):
        assert len(set(m_row)) == len(m_row) and len(set(n_row)) == len(n_row)  # no replacement
        np.testing.assert_array_equal(member_labels[m_row], nonmember_labels[n_row])
        assert np.bincount(member_labels[m_row], minlength=4).tolist() == expected
    assert len({tuple(row) for row in nonmembers}) == 6  # each repeat draws anew


def test_label_matching_removes_a_class_only_signal() -> None:
    # Members are mostly class 0, non-members mostly class 1, and the loss depends on the class
    # only: unmatched, the class alone separates them; matched, nothing does.
    rng = np.random.default_rng(5)
    m_labels, n_labels = np.r_[np.zeros(900), np.ones(100)], np.r_[np.zeros(100), np.ones(900)]
    m_losses, n_losses = rng.normal(2 * m_labels, 1), rng.normal(2 * n_labels, 1)
    unmatched = loss_mia(m_losses, n_losses, seed=0, repeats=20)
    matched = loss_mia(
        m_losses, n_losses, seed=0, repeats=20, member_labels=m_labels, nonmember_labels=n_labels
    )
    assert unmatched.mean > 70
    assert matched.n == 200 and matched.mean == pytest.approx(50, abs=2.5)


def test_noise_floor_is_centred_and_narrows_with_n() -> None:
    rng = np.random.default_rng(6)
    floors = {
        n: mia_noise_floor(
            rng.exponential(0.5, n),
            rng.exponential(0.5, 2 * n),
            seed=1,
            repeats=5,
            permutations=100,
        )
        for n in (100, 1000)
    }
    for n, floor in floors.items():
        assert floor.n == n and floor.permutations == 100
        assert floor.mean == pytest.approx(50, abs=1)
        assert 0 < floor.std < floor.half_width
    assert floors[1000].half_width < 0.6 * floors[100].half_width


def test_noise_floor_ignores_real_signal_and_the_attack_clears_it() -> None:
    rng = np.random.default_rng(7)
    members, nonmembers = rng.normal(0, 1, 300), rng.normal(1.5, 1, 900)
    labels = rng.integers(0, 3, 300), rng.integers(0, 3, 900)
    for sides in ({}, {"member_labels": labels[0], "nonmember_labels": labels[1]}):
        floor = mia_noise_floor(members, nonmembers, seed=0, repeats=10, permutations=50, **sides)
        attack = loss_mia(members, nonmembers, seed=0, repeats=10, **sides)
        assert floor.mean == pytest.approx(50, abs=1)
        assert attack.mean > 50 + 10 * floor.half_width


def _no_signal_world(
    rng: np.random.Generator, members: int = 280, nonmembers: int = 1000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-like losses of 10 classes, all from one distribution: most tiny, a few large."""
    labels = rng.integers(0, 10, members + nonmembers)
    hard = rng.random(len(labels)) < 0.05 + 0.01 * labels
    losses = np.where(
        hard, rng.exponential(2.0, len(labels)), rng.exponential(0.002 * (1 + labels))
    )
    return losses[:members], losses[members:], labels[:members], labels[members:]


def test_noise_floor_covers_the_scores_of_no_signal_forget_sets() -> None:
    # The floor answers "could a forget set of this size with no membership signal score
    # this?": in worlds where members and non-members come from one distribution, about 95 % of
    # attacks must land within it (~93 % expected with 50 permutations). The former null, which
    # shuffled membership inside each repeat's draw, covered 72 % of these worlds.
    rng = np.random.default_rng(0)
    inside = []
    for world in range(200):
        members, nonmembers, m_labels, n_labels = _no_signal_world(rng)
        kw = {"member_labels": m_labels, "nonmember_labels": n_labels, "repeats": 10}
        score = loss_mia(members, nonmembers, seed=world, **kw).mean
        floor = mia_noise_floor(members, nonmembers, seed=world, permutations=50, **kw)
        inside.append(abs(score - 50) <= floor.half_width)
    assert 0.88 <= np.mean(inside) <= 0.995


def test_membership_permutations_stay_within_each_class() -> None:
    rng = np.random.default_rng(8)
    m_labels, n_labels = rng.integers(0, 3, 40), np.r_[rng.integers(0, 4, 90), 5]
    members, nonmembers = permute_membership(
        m_labels, n_labels, permutations=30, rng=np.random.default_rng(0)
    )
    assert members.shape == (30, 40) and nonmembers.shape == (30, 91)
    pooled_labels = np.r_[m_labels, n_labels]
    for m_row, n_row in zip(members, nonmembers, strict=True):
        np.testing.assert_array_equal(np.sort(np.r_[m_row, n_row]), np.arange(131))
        np.testing.assert_array_equal(pooled_labels[m_row], m_labels)  # labels kept in place
        np.testing.assert_array_equal(pooled_labels[n_row], n_labels)
    assert (members >= 40).mean() == pytest.approx(91 / 131, abs=0.1)  # non-members move in
    assert len({tuple(row) for row in members}) == 30


def test_identical_distributions_score_about_fifty() -> None:
    rng = np.random.default_rng(1)
    scores = [
        loss_mia(rng.exponential(0.5, 400), rng.exponential(0.5, 400), seed=s, repeats=5).mean
        for s in range(5)
    ]
    assert abs(np.mean(scores) - 50) < 2


def test_constant_losses_score_exactly_fifty() -> None:
    assert loss_mia(np.ones(50), np.ones(80), seed=0, repeats=3).mean == 50.0


def test_perfectly_separated_losses_score_one_hundred() -> None:
    rng = np.random.default_rng(2)
    assert loss_mia(rng.uniform(0, 1, 200), rng.uniform(5, 6, 200), seed=0).mean == 100.0


def test_over_forgetting_is_also_detected() -> None:
    rng = np.random.default_rng(3)
    assert loss_mia(rng.uniform(5, 6, 200), rng.uniform(0, 1, 200), seed=0).mean == 100.0


def test_invariant_to_input_order() -> None:
    rng = np.random.default_rng(4)
    members, nonmembers = rng.exponential(0.3, 150).round(1), rng.exponential(0.5, 220).round(1)
    m_labels, n_labels = rng.integers(0, 3, 150), rng.integers(0, 3, 220)  # ties across labels
    m_order, n_order = rng.permutation(150), rng.permutation(220)
    for matched in (False, True):
        kw = {"member_labels": m_labels, "nonmember_labels": n_labels} if matched else {}
        shuffled = (
            {"member_labels": m_labels[m_order], "nonmember_labels": n_labels[n_order]}
            if matched
            else {}
        )
        a = loss_mia(members, nonmembers, seed=5, repeats=4, **kw)
        b = loss_mia(members[m_order], nonmembers[n_order], seed=5, repeats=4, **shuffled)
        assert a == b
        c = mia_noise_floor(members, nonmembers, seed=5, repeats=2, permutations=5, **kw)
        d = mia_noise_floor(
            members[m_order], nonmembers[n_order], seed=5, repeats=2, permutations=5, **shuffled
        )
        assert c == d


def test_too_few_samples_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="at least 5 members and 5 non-members"):
        loss_mia([0.1, 0.2, 0.3, 0.4], [0.3, 0.4, 0.5, 0.6, 0.7, 0.8], seed=0)
    with pytest.raises(ConfigError, match="got 2 label-matched"):  # classes barely overlap
        loss_mia(
            np.arange(10.0),
            np.arange(10.0),
            seed=0,
            member_labels=np.r_[np.zeros(8), np.ones(2)],
            nonmember_labels=np.ones(10),
        )


def test_labels_on_one_side_only_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="member_labels and nonmember_labels go together"):
        loss_mia(np.arange(10.0), np.arange(10.0), seed=0, member_labels=np.zeros(10))
    with pytest.raises(ConfigError, match="go together"):
        mia_noise_floor(np.arange(10.0), np.arange(10.0), seed=0, nonmember_labels=np.zeros(10))


def test_bad_arguments_are_clear_errors() -> None:
    x = np.arange(20.0)
    with pytest.raises(ConfigError, match="one label per loss, got 3 for 20"):
        loss_mia(x, x, seed=0, member_labels=[0, 1, 2], nonmember_labels=np.zeros(20))
    with pytest.raises(ConfigError, match="must not be NaN, got 1 NaN"):
        loss_mia(np.r_[x, np.nan], x, seed=0)
    with pytest.raises(ConfigError, match="folds must be at least 2"):
        loss_mia(x, x, seed=0, folds=1)
    with pytest.raises(ConfigError, match="repeats must be at least 1"):
        loss_mia(x, x, seed=0, repeats=0)
    with pytest.raises(ConfigError, match="permutations must be at least 1"):
        mia_noise_floor(x, x, seed=0, permutations=0)
