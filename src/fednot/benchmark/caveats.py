"""Warnings about a run as a whole: cases where its numbers cannot show what they seem to.

They are read from the summary (`fednot.benchmark.comparison.summarize`), listed in ``results.md``
under "Warnings" and printed at the end of ``fednot run``; they stop nothing. Each says what it
measured, the rule that fired, and what to change:

- `nothing_to_forget`: the original (untouched) model is already as close to Retrain as
  another retrain is. Rule, with Retrain′ in the run: the original's mean average gap is at
  most the upper bound of Retrain′'s 95 % CI (its mean, with one seed). Without Retrain′, with
  ≥ 2 seeds: the paired 95 % CI of the original's Δ to Retrain contains 0 on every gap metric.
- `mia_unresolved`: the forget set is too small for the loss attack to resolve anything. Rule:
  the attack's permutation noise floor (Retrain's, mean over seeds; docs/metrics.md) is wider
  than ±`MIA_FLOOR_LIMIT` points, more than the original model's MIA lead over Retrain on the
  benches that memorise (docs/results.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fednot.benchmark.results import ORIGINAL, RETRAIN_FLOOR
from fednot.benchmark.stats import Interval
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tables import format_interval, noise_floor
from fednot.metrics.gaps import GAP_METRICS

MIA_FLOOR_LIMIT = 5.0
"""The widest loss-attack noise floor (± points around 50) at which the MIA means something."""


@dataclass(frozen=True)
class Caveat:
    """One warning: a short title and what it means for the run's numbers."""

    title: str
    text: str

    def line(self) -> str:
        """The warning as one Markdown list item."""
        return f"- **{self.title}.** {self.text}"


def caveats(summary: Sequence[MethodSummary]) -> list[Caveat]:
    """Every warning that applies to ``summary`` (none: an empty list)."""
    found = (nothing_to_forget(summary), mia_unresolved(summary))
    return [c for c in found if c is not None]


def _gap(summary: Sequence[MethodSummary], method: str) -> tuple[MethodSummary, Interval] | None:
    """``method``'s row and its average gap (``None``: no such row, or no gap)."""
    row = next((r for r in summary if r.method == method and r.avg_gap is not None), None)
    return None if row is None or row.avg_gap is None else (row, row.avg_gap)


def nothing_to_forget(summary: Sequence[MethodSummary]) -> Caveat | None:
    """The original model is within retraining noise of Retrain (rule: the module docstring)."""
    found = _gap(summary, ORIGINAL)
    if found is None:
        return None
    original, gap = found
    floor = _gap(summary, RETRAIN_FLOOR)
    if floor is not None:
        ref = floor[1]
        bound = ref.high if ref.n >= 2 else ref.mean
        if gap.mean > bound:
            return None
        what = (
            f"its average gap to Retrain, {format_interval(gap)}, is within "
            f"what retraining itself scores (Retrain′, the same recipe from another training "
            f"seed: {format_interval(ref)}; rule: the original's mean at most "
            f"Retrain′'s {'upper 95 % bound' if ref.n >= 2 else 'gap'})"
        )
    else:
        compared = [original.compared.get(m) for m in GAP_METRICS]
        deltas = [None if c is None else c.delta for c in compared]
        if gap.n < 2 or any(d is None or not d.contains_zero for d in deltas):
            return None
        what = (
            "the paired 95 % CI of its difference to Retrain contains 0 on retain, forget and "
            "test accuracy and the MIA (no Retrain′ in this run to compare with)"
        )
    return Caveat(
        "Nothing to forget",
        f"The original (untouched) model is already as close to Retrain as retraining is: "
        f"{what}. The forgotten data left no mark these metrics can tell from retraining noise, "
        "so every method's gap here measures noise, not forgetting. Forget more (a larger "
        "client, whole classes), or use a setup where the original memorises its training data "
        "(more rounds, a larger model), before comparing methods.",
    )


def mia_unresolved(summary: Sequence[MethodSummary]) -> Caveat | None:
    """The loss attack's noise floor is wider than `MIA_FLOOR_LIMIT` (rule: module docstring)."""
    floor = noise_floor(summary)
    if floor is None or floor <= MIA_FLOOR_LIMIT:
        return None
    return Caveat(
        "Forget set too small for the MIA",
        f"The loss attack's noise floor is ±{floor:.1f} points, wider than the "
        f"±{MIA_FLOOR_LIMIT:g} at which it resolves anything: an attack with no membership "
        f"signal on a forget set of this size lands anywhere in 50 ± {floor:.1f} in 95 % of "
        "permutations, so no MIA difference in this run says whether membership is hidden. "
        "Forget more samples (a larger client, whole classes, a higher scenario.forget_ratio).",
    )
