"""Search-space types: what ``fednot tune`` may vary in a method, declared next to its defaults.

A method's ``search_space`` (`fednot.unlearning.base.Unlearner.search_space`) maps constructor
options to one of these frozen types; the published value (the constructor default) lies inside
each. `Range` and `IntRange` are intervals (log-uniform with ``log=True``), `Choice` a set of
values, and `LayerChoice` the model-dependent choice of a layer to perturb (NoT), which
`LayerChoice.resolve` turns into a `Choice` of the model's layer names.

Each type turns into an Optuna distribution (`distribution`), the form that ``study.ask`` and
``trial.suggest_*`` sample from. Optuna is imported only there, so declaring a space costs no
import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fednot.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from torch import nn


def _check_bounds(low: float, high: float, log: bool, what: str) -> None:
    if not low < high:
        raise ConfigError(f"Expected a {what} with low < high, got [{low}, {high}].")
    if log and low <= 0:
        raise ConfigError(f"Expected a log-scale {what} with low > 0, got [{low}, {high}].")


@dataclass(frozen=True)
class Range:
    """Floats in [low, high], log-uniform if ``log`` (learning rates, scales)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high, self.log, "Range")

    def contains(self, value: object) -> bool:
        """Whether ``value`` is a number in [low, high]."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        """``"log-range [0.0001, 0.1]"`` or ``"range [0.1, 0.9]"``."""
        return f"{'log-range' if self.log else 'range'} [{self.low:g}, {self.high:g}]"

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution (``trial.suggest_float(name, low, high, log=log)``)."""
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def resolve(self, model: nn.Module) -> Range:
        """The space on ``model``: itself."""
        return self


@dataclass(frozen=True)
class IntRange:
    """Integers in [low, high] (epochs, steps), log-uniform if ``log``, else every ``step``."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high, self.log, "IntRange")
        if self.step < 1 or (self.log and self.step != 1):
            raise ConfigError(
                f"Expected an IntRange step >= 1, and 1 on a log scale, got {self.step}."
            )

    def contains(self, value: object) -> bool:
        """Whether ``value`` is an int in [low, high] on the grid of ``step``."""
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def describe(self) -> str:
        """``"int log-range [1, 50]"`` or ``"int range [10, 500] step 10"``."""
        kind = "int log-range" if self.log else "int range"
        step = f" step {self.step}" if self.step != 1 else ""
        return f"{kind} [{self.low}, {self.high}]{step}"

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution (``trial.suggest_int(name, low, high, step=, log=)``)."""
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def resolve(self, model: nn.Module) -> IntRange:
        """The space on ``model``: itself."""
        return self


@dataclass(frozen=True)
class Choice:
    """One of a few values (str, int, float or bool): variants, layer names."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values or len(set(self.values)) != len(self.values):
            raise ConfigError(f"Expected a Choice of distinct values, got {list(self.values)}.")

    def contains(self, value: object) -> bool:
        """Whether ``value`` is one of the values."""
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self) -> str:
        """``"choice ['update', 'renormalize']"``."""
        return f"choice {list(self.values)}"

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution (``trial.suggest_categorical(name, values)``)."""
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.values))

    def resolve(self, model: nn.Module) -> Choice:
        """The space on ``model``: itself."""
        return self


@dataclass(frozen=True)
class LayerChoice:
    """The layer to negate or perturb: ``"first"`` (published) or one of the next early layers.

    On a model it resolves to a `Choice` of ``"first"`` and the names of the next ``count - 1``
    conv or linear layers in computation order, never the output layer (NoT refuses it).
    """

    count: int = 3

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"Expected a LayerChoice count >= 1, got {self.count}.")

    def contains(self, value: object) -> bool:
        """Whether ``value`` is the published ``"first"`` (layer names depend on the model)."""
        return value == "first"

    def describe(self) -> str:
        """In words, before the model is known."""
        return f"choice: 'first' or one of the next {self.count - 1} conv/linear layers"

    def distribution(self) -> BaseDistribution:
        """Refused: resolve on a model first."""
        raise ConfigError("A LayerChoice depends on the model: call resolve(model) first.")

    def resolve(self, model: nn.Module) -> Choice:
        """``"first"`` and the names of the next early conv/linear layers of ``model``."""
        from fednot.models.layers import layer_graph

        graph = layer_graph(model)
        early = [
            layer.name
            for layer in graph.layers
            if layer.kind in ("conv", "linear") and not graph.is_output(layer.name)
        ]
        return Choice(("first", *early[1 : self.count]))


Space = Range | IntRange | Choice | LayerChoice
"""A search space of one option."""


def describe_space(space: Mapping[str, Space]) -> dict[str, str]:
    """Option → its space in words."""
    return {key: value.describe() for key, value in space.items()}
