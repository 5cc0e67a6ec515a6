"""Confidence intervals and paired differences agree with scipy.stats on fixed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fednot.stats import Interval, mean_ci, paired_ci

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
