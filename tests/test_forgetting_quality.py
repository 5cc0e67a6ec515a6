"""The forgetting-quality score's math on synthetic confidences (docs/audit.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fednot.metrics.forgetting_quality import (
    DELTA,
    EPSILON_CAP,
    EpsilonEstimate,
    bootstrap_interval,
    bucket_points,
    example_epsilon,
    example_epsilons,
    forgetting_quality,
    logit_confidence,
    resolvable_epsilon,
    utility_factor,
)


def test_logit_confidence_is_log_odds_of_the_true_label() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [-3.0, 4.0, 1.0]])
    labels = torch.tensor([0, 2, 0])
    p = torch.softmax(logits.double(), dim=1)[torch.arange(3), labels]
    expected = torch.log(p) - torch.log1p(-p)
    assert torch.allclose(logit_confidence(logits, labels), expected, atol=1e-12)
    assert logit_confidence(logits, labels)[1].item() == pytest.approx(math.log(1 / 2))


def test_logit_confidence_stays_finite_where_probabilities_underflow() -> None:
    logits = torch.tensor([[200.0, -200.0], [-200.0, 200.0]])
    conf = logit_confidence(logits, torch.tensor([0, 0]))
    assert conf.tolist() == pytest.approx([400.0, -400.0])


def test_epsilon_of_a_small_example_matches_the_hand_computation() -> None:
    # Retrained 0, 1, 2, 3; unlearned 1.5 .. 4.5 (positive: larger median). The best attack
    # (a threshold in (2, 2.5], or the interval [l, 2.2] around the retrained ones) has
    # FPR = FNR = 1/4: eps = log(1 - delta - 1/4) - log(1/4) = log(3 - 4 delta). Attacks with
    # FPR = 0 (a threshold in (3, 3.5]) are dropped, not infinite.
    retrained = np.array([0.0, 1.0, 2.0, 3.0])
    unlearned = np.array([1.5, 2.5, 3.5, 4.5])
    expected = math.log(3 - 4 * DELTA)
    assert example_epsilon(unlearned, retrained) == pytest.approx(expected, abs=1e-9)
    assert example_epsilon(retrained, unlearned) == pytest.approx(expected, abs=1e-9)


def test_perfect_separation_and_a_degenerate_spread_get_the_cap() -> None:
    assert example_epsilon(np.array([10.0, 11.0, 12.0]), np.array([0.0, 1.0, 2.0])) == EPSILON_CAP
    peaked = np.array([1.0, 1.0 + 1e-4, 1.0 - 1e-4])  # range under 1 % of the other's
    assert example_epsilon(peaked, np.array([-5.0, 1.0, 7.0])) == EPSILON_CAP
    assert example_epsilon(np.ones(4), np.ones(4)) == 0.0
    assert example_epsilon(np.ones(4), np.zeros(4)) == EPSILON_CAP


def test_identical_outputs_score_one() -> None:
    confs = np.random.default_rng(0).normal(size=(32, 40))
    estimate = example_epsilons(confs, confs.copy())
    assert np.all(estimate.epsilons == 0)
    assert forgetting_quality(estimate) == 1.0


def test_draws_of_one_distribution_score_high_and_separated_ones_near_zero() -> None:
    rng = np.random.default_rng(1)
    same = example_epsilons(rng.normal(size=(64, 60)), rng.normal(size=(64, 60)))
    apart = example_epsilons(rng.normal(4.0, 1.0, size=(64, 60)), rng.normal(size=(64, 60)))
    # Independent draws of one distribution do not score 1: the largest ε over many attacks
    # lands on tail events (1 model against 5 outside an interval: ε = ln 5), at any N. Measured
    # 0.16-0.21 for N = 16..512 (docs/audit.md); the audit reports Retrain's own score for this.
    assert forgetting_quality(same) > 0.15
    assert forgetting_quality(apart) < 0.02
    assert np.median(apart.epsilons) > resolvable_epsilon(64) - 0.05  # as far as 64 can show


def test_bucket_points_follow_the_challenge_table() -> None:
    # N = 32: ln(31) = 3.43, buckets of 0.5 up to 4, 2^-b points, nothing at or past 4
    eps = np.array([0.0, 0.49, 0.5, 1.2, 3.9, 4.0, EPSILON_CAP])
    assert bucket_points(eps, 32).tolist() == [1.0, 1.0, 0.5, 0.25, 2**-7, 0.0, 0.0]
    estimate = EpsilonEstimate(np.array([0.2, 0.7, 1.2, 10.0]), 32, 32, 0)
    assert forgetting_quality(estimate) == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)
    assert bucket_points(np.array([0.9]), 3).tolist() == [0.5]  # ln 2 -> buckets end at 1
    with pytest.raises(ValueError, match="at least 3"):
        bucket_points(eps, 2)


def test_utility_factor_and_bootstrap_interval() -> None:
    assert utility_factor(90.0, 100.0, 50.0, 100.0) == pytest.approx(0.45)
    points = np.array([1.0, 0.5, 0.5, 0.25, 0.0, 1.0])
    low, high = bootstrap_interval(points, np.random.default_rng(0))
    assert low < points.mean() < high
    again = bootstrap_interval(points, np.random.default_rng(0))
    assert (low, high) == again


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="same examples"):
        example_epsilons(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 2 models"):
        example_epsilons(np.zeros((1, 3)), np.zeros((4, 3)))
