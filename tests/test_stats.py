"""Confidence intervals and paired differences agree with scipy.stats on fixed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fednot.benchmark.stats import (
    Interval,
    holm,
    mean_ci,
    paired_ci,
    seeds_for_exact,
    sign_flip_p,
    smallest_sign_flip_p,
    t_test_p,
)

VALUES = [0.82, 1.31, 0.59, 1.05, 0.97]
OTHER = [1.21, 1.40, 1.02, 1.11, 1.38]


def test_mean_ci_matches_scipy_t_interval() -> None:
    got = mean_ci(VALUES)
    low, high = stats.t.interval(
        0.95, len(VALUES) - 1, loc=np.mean(VALUES), scale=stats.sem(VALUES)
    )
    assert got.mean == pytest.approx(np.mean(VALUES), abs=1e-12)
    assert (got.low, got.high) == pytest.approx((low, high), abs=1e-12)
    assert got.n == 5 and got.half_width == pytest.approx((high - low) / 2)


def test_paired_ci_matches_scipy_ttest_rel() -> None:
    got = paired_ci(VALUES, OTHER)
    expected = stats.ttest_rel(VALUES, OTHER).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert got.mean == pytest.approx(np.mean(np.subtract(VALUES, OTHER)), abs=1e-12)
    assert not got.contains_zero and got.high < 0  # VALUES is lower on every seed


def test_an_interval_that_straddles_zero_is_not_distinguishable() -> None:
    got = paired_ci([1.0, 2.0, 3.0], [2.0, 1.0, 3.5])
    assert got.low < 0 < got.high and got.contains_zero


def test_one_seed_has_no_interval() -> None:
    got = mean_ci([2.5])
    assert got.mean == 2.5 and math.isnan(got.low) and math.isnan(got.high)
    assert got.contains_zero  # nothing can be stated from one seed


def test_interval_round_trips_through_json_form() -> None:
    interval = mean_ci(VALUES)
    assert Interval.from_dict(interval.to_dict()) == interval


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match="equal lengths"):
        paired_ci([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        mean_ci([1.0, 2.0], level=1.5)


def test_t_test_p_matches_scipy_ttest_rel() -> None:
    expected = stats.ttest_rel(VALUES, OTHER).pvalue
    assert t_test_p(np.subtract(VALUES, OTHER).tolist()) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(t_test_p([0.3]))


def test_sign_flip_p_equals_a_hand_enumeration() -> None:
    # differences -0.39, -0.09, -0.43, -0.06, -0.41: all five negative, so only the observed
    # pattern and its mirror reach |sum| = 1.38 among the 32 sign patterns: p = 2/32.
    assert sign_flip_p(np.subtract(VALUES, OTHER).tolist()) == pytest.approx(2 / 32)
    # 1, -2, 3: sums over the 8 patterns are ±6, ±4, ±2, ±0 ... |sum| >= |1-2+3| = 2 for
    # (1,2,3)->6, (1,-2,3)->2, (-1,2,3)->4, (1,2,-3)->0, and their mirrors: 6 of 8.
    assert sign_flip_p([1.0, -2.0, 3.0]) == pytest.approx(6 / 8)
    assert smallest_sign_flip_p(5) == 1 / 16 and smallest_sign_flip_p(3) == 0.25
    assert seeds_for_exact(0.05) == 6
    with pytest.raises(ValueError, match="exceeds"):
        sign_flip_p([1.0] * 21)


def test_holm_equals_a_hand_computation() -> None:
    # m = 4 tests, sorted 0.01, 0.02, 0.03, 0.04: 4*0.01 = 0.04, 3*0.02 = 0.06,
    # 2*0.03 = 0.06 (running max 0.06), 1*0.04 = 0.04 -> 0.06; NaN untouched.
    got = holm([0.03, 0.01, math.nan, 0.04, 0.02])
    assert got[1] == pytest.approx(0.04) and got[4] == pytest.approx(0.06)
    assert got[0] == pytest.approx(0.06) and got[3] == pytest.approx(0.06)
    assert math.isnan(got[2])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])  # capped at 1
