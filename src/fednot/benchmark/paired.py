"""Paired comparisons of average gaps, with multiplicity control (docs/protocol.md, "Statistics").

Every method's per-seed average gap is compared with each reference's (`PAIRED_WITH`: NoT, FT
and Retrain′) at every reading point, over the seeds where both have values. Each comparison
carries:

- the mean difference (method − reference) and its 95 % Student-t interval;
- ``p``: the paired t-test's two-sided p-value (the test behind the interval);
- ``p_exact``: the exact sign-flip test's two-sided p-value, which assumes no normality but
  cannot go below 2^(1−n) with n seeds (0.0625 with 5 seeds: 6 seeds can reach 0.05);
- ``p_holm``: in a primary family (`PRIMARY`: one reference × one reading point, declared
  before any number), ``p`` adjusted by Holm's step-down procedure over the family's tested
  comparisons; ``None`` for an exploratory comparison. A pair that two families share (FT
  against NoT is in NoT's family, NoT against FT in FT's) is tested once, in the family
  declared first, and keeps that adjusted p in the other;
- ``excluded``: why no statement may rest on it ("" when one may): a side's run ended before
  the cost point (its final model would be read: †), or a side's reading is not the last round
  within the cost (an evaluation grid skipped it). Excluded comparisons are not tested.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fednot.benchmark.stats import Interval, holm, paired_ci, sign_flip_p, t_test_p

PRIMARY_FAMILY = "primary"
EXPLORATORY = "exploratory"


@dataclass(frozen=True)
class SeedGaps:
    """One method's per-seed average gaps at every reading point.

    Attributes:
        gaps: reading point → seed → average gap to that seed's Retrain.
        beyond_run: cost point → seeds whose run ended before that cost (final model read).
        inexact: cost point → seeds whose reading is not the last round within the cost (logs
            whose evaluation grid skipped it: results written before exact readings).
    """

    gaps: dict[str, dict[int, float]]
    beyond_run: dict[str, list[int]]
    inexact: dict[str, list[int]]


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of per-seed average gaps: a method minus a reference.

    Attributes:
        difference: the mean per-seed difference and its 95 % CI (``n``: the common seeds).
        p: the paired t-test's two-sided p-value.
        p_exact: the exact sign-flip test's two-sided p-value.
        p_holm: Holm-adjusted ``p`` within its primary family (``None``: exploratory, or not
            tested).
        family: `PRIMARY_FAMILY` or `EXPLORATORY`.
        excluded: why no statement may rest on it ("": one may).
    """

    difference: Interval
    p: float
    p_exact: float
    p_holm: float | None
    family: str
    excluded: str

    @property
    def mean(self) -> float:
        """The mean difference (method − reference)."""
        return self.difference.mean

    @property
    def low(self) -> float:
        """The CI's lower bound."""
        return self.difference.low

    @property
    def high(self) -> float:
        """The CI's upper bound."""
        return self.difference.high

    @property
    def n(self) -> int:
        """The number of common seeds."""
        return self.difference.n

    @property
    def tested(self) -> bool:
        """Whether the comparison is tested: not excluded, two seeds or more, a defined p."""
        return not self.excluded and self.n >= 2 and not math.isnan(self.p)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the interval's keys, then ``p``, ``p_exact``, ``p_holm``, ``family``, ..."""
        return {
            **self.difference.to_dict(),
            "p": self.p,
            "p_exact": self.p_exact,
            "p_holm": self.p_holm,
            "family": self.family,
            "excluded": self.excluded,
        }


Compared = dict[str, dict[str, dict[str, Comparison | None]]]
"""Method → reference → reading point → the comparison (``None``: no common seed)."""


def compare(
    gaps: Mapping[str, SeedGaps],
    references: Sequence[str],
    points: Sequence[str],
    primary: Sequence[tuple[str, str]],
    skip: Mapping[str, Sequence[str]] | None = None,
) -> Compared:
    """Method → reference → reading point → the comparison (``None``: no common seeds).

    Args:
        gaps: every method's per-seed gaps.
        references: the methods every other method is compared with.
        points: the reading points.
        primary: the (reference, point) pairs that form the primary families.
        skip: reference → methods not compared with it (they have a family of their own).
    """
    skip = skip or {}
    out: Compared = {}
    for method, mine in gaps.items():
        row: dict[str, dict[str, Comparison | None]] = {}
        for ref in references:
            if ref == method or ref not in gaps or method in skip.get(ref, ()):
                continue
            row[ref] = {key: _one(mine, gaps[ref], key, (ref, key) in primary) for key in points}
        out[method] = row
    Pair = tuple[frozenset[str], str]
    done: dict[Pair, float] = {}
    for ref, key in primary:
        family: list[tuple[str, Pair, Comparison]] = []
        repeats: list[tuple[str, Pair, Comparison]] = []
        for method, row in out.items():
            entry = row.get(ref, {}).get(key)
            if entry is None or not entry.tested:
                continue
            pair = (frozenset((method, ref)), key)
            (repeats if pair in done else family).append((method, pair, entry))
        adjusted = holm([entry.p for _, _, entry in family])
        for (method, pair, entry), p_holm in zip(family, adjusted, strict=True):
            out[method][ref][key] = replace(entry, p_holm=p_holm)
            done[pair] = p_holm
        for method, pair, entry in repeats:  # NoT against FT: tested once, in the first family
            out[method][ref][key] = replace(entry, p_holm=done[pair])
    return out


def _one(mine: SeedGaps, theirs: SeedGaps, key: str, primary: bool) -> Comparison | None:
    a, b = mine.gaps.get(key, {}), theirs.gaps.get(key, {})
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    differences = [a[s] - b[s] for s in seeds]
    late = any(set(g.beyond_run.get(key, [])) & set(seeds) for g in (mine, theirs))
    skipped = any(set(g.inexact.get(key, [])) & set(seeds) for g in (mine, theirs))
    return Comparison(
        difference=paired_ci([a[s] for s in seeds], [b[s] for s in seeds]),
        p=t_test_p(differences),
        p_exact=sign_flip_p(differences),
        p_holm=None,
        family=PRIMARY_FAMILY if primary else EXPLORATORY,
        excluded=(
            "a run ended before this cost"
            if late
            else "a reading is not the last round within this cost"
            if skipped
            else ""
        ),
    )


def supported(entry: Comparison, alpha: float) -> bool:
    """Whether a comparison supports a ranking: primary, tested, Holm-adjusted p below alpha."""
    p_holm = entry.p_holm
    return entry.family == PRIMARY_FAMILY and p_holm is not None and p_holm < alpha
