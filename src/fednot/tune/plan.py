"""What a search is: `TuneSettings` (the budget rule and the sampler's seed) and a method's `Plan`.

The budget rule (docs/tuning.md, "Budget"): a method whose space has d knobs (its own
``search_space`` plus the recovery learning rate, where recovery follows its step) gets
K·d search trials, K = ``--trials-per-knob``: trial 1 at the published values, random trials up to
``max(2, n // 4)`` of its n, then TPE. Then, where it has a recovery learning rate, up to
`REFINE_CAP` refinement trials of that rate around the best value (`fednot.tune.refine`).

`fednot.tune.study` runs the search and re-exports both; `fednot.tune.preset` writes them into
the tuned preset. A module of its own so that the preset writer need not import the search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fednot.errors import ConfigError
from fednot.unlearning.space import Space

DEFAULT_TRIALS_PER_KNOB = 3
"""K: search trials per knob of a method's space."""

REFINE_CAP = 6
"""The most refinement trials of the recovery learning rate, per method and search."""

REFINE_FACTOR = 2.0
"""Refinement closes every untried gap wider than this factor around the best recovery rate."""

SAMPLER_SEED = "derive_seed(sampler seed, 'tune', data.dataset, preset, method, trial number)"
"""How each trial's sampler is seeded, in words (for the log)."""


@dataclass(frozen=True)
class Plan:
    """One method's search: its space on the model and its published values."""

    name: str
    space: dict[str, Space]
    published: dict[str, Any]

    @property
    def knobs(self) -> int:
        """d: the dimensions of the space (the recovery learning rate included)."""
        return len(self.space)

    def enqueued(self) -> dict[str, Any]:
        """The published values that lie in the space: trial 0."""
        return {k: v for k, v in self.published.items() if self.space[k].contains(v)}


@dataclass(frozen=True)
class TuneSettings:
    """The budget rule, the same for every method, and the sampler's seed.

    Attributes:
        trials_per_knob: K; a method of d knobs gets K·d search trials.
        seed: the sampler seed (``--sampler-seed``), from which each trial's is derived.
        refine_cap: the most refinement trials of the recovery learning rate per method.
    """

    trials_per_knob: int = DEFAULT_TRIALS_PER_KNOB
    seed: int = 0
    refine_cap: int = REFINE_CAP

    def __post_init__(self) -> None:
        if self.trials_per_knob < 1:
            raise ConfigError(
                f"Expected --trials-per-knob to be a positive int, got {self.trials_per_knob}."
            )
        if self.refine_cap < 0:
            raise ConfigError(f"Expected refine_cap >= 0, got {self.refine_cap}.")

    def search_trials(self, plan: Plan) -> int:
        """K·d: the search trials of ``plan``'s method (refinement comes on top)."""
        return self.trials_per_knob * plan.knobs

    @staticmethod
    def startup(n: int) -> int:
        """Of n search trials, those (the published one included) before TPE: n/4, at least 2."""
        return max(2, n // 4)

    def sampler(self, dataset: str, preset: str) -> dict[str, Any]:
        """The sampler, for the log (a resumed search must use the same)."""
        return {
            "name": "TPESampler",
            "seed": self.seed,
            "dataset": dataset,
            "preset": preset,
            "seeded_by": SAMPLER_SEED,
        }

    def budget(self, plans: Sequence[Plan]) -> dict[str, Any]:
        """The budget rule in words and numbers, and what it gives each method, for the log."""
        k = self.trials_per_knob
        return {
            "trials_per_knob": k,
            "rule": (
                f"a method of d knobs (its search_space plus the recovery learning rate where "
                f"recovery follows its step) gets {k}·d search trials: trial 1 the published "
                "setting, random trials up to max(2, n // 4) of its n, then TPE"
            ),
            "refinement": {
                "rule": (
                    "then, for a method with a recovery learning rate: keep the best trial's other "
                    "values, and on each side of its rate b where no tried rate lies within a "
                    f"factor {REFINE_FACTOR:g}, try b/{REFINE_FACTOR:g} (resp. "
                    f"{REFINE_FACTOR:g}b) clipped to the space; repeat around the new best"
                ),
                "factor": REFINE_FACTOR,
                "cap": self.refine_cap,
            },
            "methods": {
                p.name: {
                    "knobs": p.knobs,
                    "search_trials": self.search_trials(p),
                    "startup_trials": self.startup(self.search_trials(p)),
                }
                for p in plans
            },
        }
