"""The one validation idiom of methods' hyperparameters (`fednot.unlearning.options`)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fednot.errors import ConfigError
from fednot.unlearning import options as o


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (o.positive_int, [1, 7], [0, -1, 1.0, True, "3"]),
        (o.non_negative_int, [0, 5], [-1, 2.5, False]),
        (o.positive_float, [1e-9, 3, math.inf], [0, -2.0, math.nan, True, "0.1"]),
        (o.non_negative_float, [0, 0.5, math.inf], [-1e-9, math.nan, None]),
        (o.unit_float, [0, 0.3, 1], [-0.1, 1.01, math.nan, True]),
    ],
)
def test_checks_accept_and_refuse(check: Any, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        assert check(value, "x") == value
    for value in bad:
        with pytest.raises(ConfigError, match=r"Expected `x` to be .*, got "):
            check(value, "x")


def test_ranges_choices_optional_and_layers() -> None:
    assert o.float_in(0.9, "m", 0, 1, high_open=True) == 0.9
    with pytest.raises(ConfigError, match=r"`m` to be a float in \[0, 1\), got 1"):
        o.float_in(1, "m", 0, 1, high_open=True)
    assert o.one_of("a", "v", ("a", "b")) == "a"
    with pytest.raises(ConfigError, match=r"`v` to be one of \['a', 'b'\], got 'c'"):
        o.one_of("c", "v", ("a", "b"))
    assert o.optional(None, o.positive_int, "n") is None
    with pytest.raises(ConfigError, match="`n` to be a positive int"):
        o.optional(0, o.positive_int, "n")
    assert o.layer_selection(["conv1", "fc"], "layers") == ("conv1", "fc")
    with pytest.raises(ConfigError, match="'first', 'last', 'all' or layer names"):
        o.layer_selection((), "layers")
    with pytest.raises(ConfigError, match="`k` to be a multiple of 3, got 4"):
        o.expect(4 % 3 == 0, "k", "a multiple of 3", 4)
