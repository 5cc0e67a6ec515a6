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
from dataclasses import dataclass
from typing import Any

from fednot.benchmark.stats import holm, paired_ci, sign_flip_p, t_test_p

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


def compare(
    gaps: Mapping[str, SeedGaps],
    references: Sequence[str],
    points: Sequence[str],
    primary: Sequence[tuple[str, str]],
    skip: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, dict[str, dict[str, Any] | None]]]:
    """Method → reference → reading point → the comparison's JSON form (``None``: no seeds).

    Args:
        gaps: every method's per-seed gaps.
        references: the methods every other method is compared with.
        points: the reading points.
        primary: the (reference, point) pairs that form the primary families.
        skip: reference → methods not compared with it (they have a family of their own).
    """
    skip = skip or {}
    out: dict[str, dict[str, dict[str, dict[str, Any] | None]]] = {}
    for method, mine in gaps.items():
        row: dict[str, dict[str, dict[str, Any] | None]] = {}
        for ref in references:
            if ref == method or ref not in gaps or method in skip.get(ref, ()):
                continue
            row[ref] = {key: _one(mine, gaps[ref], key, (ref, key) in primary) for key in points}
        out[method] = row
    Pair = tuple[frozenset[str], str]
    done: dict[Pair, dict[str, Any]] = {}
    for ref, key in primary:
        family: list[tuple[Pair, dict[str, Any]]] = []
        repeats: list[tuple[Pair, dict[str, Any]]] = []
        for method, row in out.items():
            entry = row.get(ref, {}).get(key)
            if entry is None or not _tested(entry):
                continue
            pair = (frozenset((method, ref)), key)
            (repeats if pair in done else family).append((pair, entry))
        for (pair, entry), adjusted in zip(family, holm([e["p"] for _, e in family]), strict=True):
            entry["p_holm"] = adjusted
            done[pair] = entry
        for pair, entry in repeats:  # NoT against FT: tested once, in the first family
            entry["p_holm"] = done[pair]["p_holm"]
    return out


def _tested(entry: Mapping[str, Any]) -> bool:
    return not entry["excluded"] and entry["n"] >= 2 and not math.isnan(entry["p"])


def _one(mine: SeedGaps, theirs: SeedGaps, key: str, primary: bool) -> dict[str, Any] | None:
    a, b = mine.gaps.get(key, {}), theirs.gaps.get(key, {})
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    differences = [a[s] - b[s] for s in seeds]
    entry: dict[str, Any] = paired_ci([a[s] for s in seeds], [b[s] for s in seeds]).to_dict()
    late = any(set(g.beyond_run.get(key, [])) & set(seeds) for g in (mine, theirs))
    skipped = any(set(g.inexact.get(key, [])) & set(seeds) for g in (mine, theirs))
    entry.update(
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
    return entry


def supported(entry: Mapping[str, Any], alpha: float) -> bool:
    """Whether a comparison supports a ranking: primary, tested, Holm-adjusted p below alpha."""
    p_holm = entry.get("p_holm")
    return entry.get("family") == PRIMARY_FAMILY and p_holm is not None and p_holm < alpha
