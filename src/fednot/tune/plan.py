"""What a search is: `TuneSettings` (the budget and the sampler's seed) and a method's `Plan`.

`fednot.tune.study` runs the search and re-exports both; `fednot.tune.preset` writes them into
the tuned preset. A module of its own so that the preset writer need not import the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fednot.errors import ConfigError
from fednot.unlearning.space import Space


@dataclass(frozen=True)
class TuneSettings:
    """The search budget, the same for every method, and the sampler's seed."""

    trials: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"Expected --trials to be a positive int, got {self.trials}.")

    @property
    def startup(self) -> int:
        """Trials (the published one included) before TPE models the results: a quarter, >= 2."""
        return max(2, self.trials // 4)

    def to_dict(self) -> dict[str, Any]:
        """The sampler, for the log (a resumed search must use the same)."""
        return {"name": "TPESampler", "seed": self.seed}


@dataclass(frozen=True)
class Plan:
    """One method's search: its space on the model and its published values."""

    name: str
    space: dict[str, Space]
    published: dict[str, Any]

    def enqueued(self) -> dict[str, Any]:
        """The published values that lie in the space: trial 0."""
        return {k: v for k, v in self.published.items() if self.space[k].contains(v)}
