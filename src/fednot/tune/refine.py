"""Refinement of the recovery learning rate around a method's best trial.

After a method's search trials, the tuner keeps the best trial's other values and varies only
the recovery learning rate (`fednot.config.TUNED_RECOVERY_LR`). Let b be the best trial's rate.
On each side of b, the side is *closed* if a tried rate (of any trial with the best's other
values, rejected ones included) lies within a factor `REFINE_FACTOR` of b on that side, or if b
is at the space's bound there; otherwise the next refinement trial tries b/2 (below first, then
2b above) clipped to the space. After each refinement trial the best is taken again, so the
refinement moves with a new best, until both sides are closed or `TuneSettings.refine_cap`
refinement trials have run since the last search trial.

Everything here is a function of the logged trials, so a resumed search and ``--jobs 2`` ask
for the same refinement trials as an uninterrupted single process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fednot.config import TUNED_RECOVERY_LR
from fednot.tune.log import REFINE, MethodLog, Trial
from fednot.tune.plan import REFINE_FACTOR, Plan
from fednot.unlearning.space import Range

_TOLERANCE = 1e-9  # relative: b / 2 computed twice must compare equal to itself

MET, CAP, PENDING, NO_BEST = "met", "stopped by the cap", "pending", "no finished trial"


@dataclass(frozen=True)
class Side:
    """One side of the best rate: closed by a tried rate or the bound, or the rate to try."""

    closed_by: str  # "tried", "bound" or "" (open)
    candidate: float | None = None  # the rate to try where open


@dataclass(frozen=True)
class Refinement:
    """Where one method's refinement stands (computed from its trials by `refinement`)."""

    best_lr: float | None
    tried: tuple[float, ...]
    below: Side
    above: Side
    trials: int
    cap: int

    def next_rate(self) -> float | None:
        """The rate of the next refinement trial, or None when refinement is over."""
        if self.best_lr is None or self.trials >= self.cap:
            return None
        open_side = next((s for s in (self.below, self.above) if not s.closed_by), None)
        return None if open_side is None else open_side.candidate

    @property
    def status(self) -> str:
        """``met``, ``stopped by the cap``, ``pending`` or ``no finished trial``."""
        if self.best_lr is None:
            return NO_BEST
        if self.below.closed_by and self.above.closed_by:
            return MET
        return CAP if self.trials >= self.cap else PENDING

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the log."""
        return {
            "status": self.status,
            "trials": self.trials,
            "cap": self.cap,
            "best_lr": self.best_lr,
            "tried_lrs": list(self.tried),
            "below": self.below.closed_by or "open",
            "above": self.above.closed_by or "open",
        }


def refinement(plan: Plan, trials: Sequence[Trial], cap: int) -> Refinement | None:
    """The refinement state of ``plan``'s method after ``trials``; None without recovery rate."""
    space = plan.space.get(TUNED_RECOVERY_LR)
    if not isinstance(space, Range):
        return None
    since_search = 0
    for trial in reversed(trials):  # the refinement trials since the last search trial
        if trial.phase != REFINE:
            break
        since_search += 1
    best = MethodLog.best_of(trials)
    if best is None:
        return Refinement(None, (), Side(""), Side(""), since_search, cap)
    rate = float(best.params[TUNED_RECOVERY_LR])
    others = _others(best.params)
    tried = tuple(
        sorted({float(t.params[TUNED_RECOVERY_LR]) for t in trials if _others(t.params) == others})
    )
    below = _side(rate, tried, space.low, lower=True)
    above = _side(rate, tried, space.high, lower=False)
    return Refinement(rate, tried, below, above, since_search, cap)


def refine_params(plan: Plan, trials: Sequence[Trial], cap: int) -> dict[str, Any] | None:
    """The next refinement trial's values (the best's, another rate), or None when done."""
    state = refinement(plan, trials, cap)
    rate = None if state is None else state.next_rate()
    if rate is None:
        return None
    best = MethodLog.best_of(trials)
    assert best is not None
    return {**best.params, TUNED_RECOVERY_LR: rate}


def _others(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != TUNED_RECOVERY_LR}


def _side(rate: float, tried: tuple[float, ...], bound: float, *, lower: bool) -> Side:
    """Side ``lower`` (or upper) of ``rate``: closed by the ``bound``, a tried rate, or open."""
    if (rate <= bound) if lower else (rate >= bound):
        return Side("bound")
    edge = rate / REFINE_FACTOR if lower else rate * REFINE_FACTOR
    slack = _TOLERANCE * rate
    near = [
        r
        for r in tried
        if (edge - slack <= r < rate - slack if lower else rate + slack < r <= edge + slack)
    ]
    if near:
        return Side("tried")
    return Side("", max(edge, bound) if lower else min(edge, bound))
