"""The paired comparisons as Markdown, and the statements they support (docs/protocol.md).

A ranking ("lower", "higher") is stated only in a primary family (`fednot.comparison.PRIMARY`)
and only where the Holm-adjusted paired t-test gives p < 0.05. Every other comparison is listed
as not distinguishable, or, outside the primary families, as exploratory: an unadjusted p below
0.05 there is a lead, never a ranking. No statement rests on a cell where a side's run ended
before the cost point (†) or was not read at its last round within the cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fednot.comparison import END, PAIRED_WITH, reading_points
from fednot.paired import EXPLORATORY, supported
from fednot.results import RETRAIN_FLOOR
from fednot.stats import LEVEL, seeds_for_exact, smallest_sign_flip_p
from fednot.tables import BEYOND, NOT_DISTINGUISHABLE, _diverged_statement, point_text

ALPHA = 1 - LEVEL
EXCLUDED = "×"
POINT_HEADER = {
    END: "end", "comm25": "@25 % comm.", "comm50": "@50 % comm.", "comm100": "@100 % comm.",
    "flops25": "@25 % FLOPs", "flops50": "@50 % FLOPs", "flops100": "@100 % FLOPs",
}  # fmt: skip


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def _cell(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "—"
    if entry["n"] < 2:
        return f"{entry['mean']:+.2f} (1 seed)"
    text = f"{entry['mean']:+.2f} [{entry['low']:+.2f}, {entry['high']:+.2f}]"
    if entry.get("excluded"):
        return f"{text} {EXCLUDED}"
    tests = f"p {_p(entry.get('p'))}, exact {_p(entry.get('p_exact'))}"
    if entry.get("family") != EXPLORATORY:
        tests += f", Holm {_p(entry.get('p_holm'))}"
    mark = "" if supported(entry, ALPHA) else f" {NOT_DISTINGUISHABLE}"
    return f"{text}{mark} ({tests})"


def paired_table(summary: Sequence[Mapping[str, Any]]) -> str:
    """Per reference, a table: each method's per-seed average gap minus the reference's."""
    titles = {row["method"]: row["title"] for row in summary}
    parts = []
    for ref in PAIRED_WITH:
        rows = [row for row in summary if ref in (row.get("paired") or {})]
        if not rows:
            continue
        points = [k for k in reading_points() if any(r["paired"][ref].get(k) for r in rows)]
        header = ["Method", *(POINT_HEADER.get(k, k) for k in points)]
        lines = [f"**Minus {titles.get(ref, ref)}**", "", f"| {' | '.join(header)} |",
                 f"|{'---|' * len(header)}"]  # fmt: skip
        for row in rows:
            cells = [row["title"], *(_cell(row["paired"][ref].get(k)) for k in points)]
            lines.append(f"| {' | '.join(cells)} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def statements(summary: Sequence[Mapping[str, Any]], recovery_rounds: int | None = None) -> str:
    """The sentences the primary families support, then the exploratory leads.

    Differences are the reference's per-seed gap minus the other method's, over the seeds
    where both have values; a method that diverged on some seed is listed with that count.
    """
    titles = {row["method"]: row["title"] for row in summary}
    out: list[str] = []
    leads: list[str] = []
    seeds: set[int] = set()
    stated: set[tuple[frozenset[str], str]] = set()  # NoT vs FT is stated once, not twice
    for ref in PAIRED_WITH:
        if ref not in titles:
            continue
        for key in reading_points():
            entries = []
            for row in summary:
                entry = (row.get("paired") or {}).get(ref, {}).get(key)
                pair = (frozenset((row["method"], ref)), key)
                if entry is None or entry["n"] < 2 or pair in stated:
                    continue
                stated.add(pair)
                entries.append((titles[row["method"]], entry))
            if not entries:
                continue
            seeds |= {e["n"] for _, e in entries}
            if entries[0][1]["family"] == EXPLORATORY:
                leads += _leads(titles[ref], key, entries, recovery_rounds)
            else:
                out.append(_family(titles[ref], ref, key, entries, recovery_rounds))
    if not out:
        out.append("- No paired comparison is possible (fewer than two seeds, or no NoT/FT row).")
    out += [_diverged_statement(row) for row in summary if row.get("diverged")]
    if seeds:
        fewest = min(seeds)
        out.append(
            f"- With {fewest} seeds the exact sign-flip test cannot go below "
            f"p = {smallest_sign_flip_p(fewest):.4g}; it can reach {ALPHA:.2g} from "
            f"{seeds_for_exact(ALPHA)} seeds on. "
            + (
                "Every ranking above therefore rests on the t-test's normality assumption."
                if smallest_sign_flip_p(fewest) > ALPHA
                else "A ranking whose exact p is above 0.05 rests on the t-test's normality."
            )
        )
    if leads:
        out += ["", "Exploratory (no multiplicity control: leads, not rankings):", "", *leads]
    return "\n".join(out)


def _numbers(entry: Mapping[str, Any], *, adjusted: bool) -> str:
    """The reference's side of a difference (row − reference), with its tests."""
    holm = f", Holm p {_p(entry['p_holm'])}" if adjusted else ""
    return (
        f"(difference {-entry['mean']:+.2f}, 95 % CI [{-entry['high']:+.2f}, "
        f"{-entry['low']:+.2f}], p {_p(entry['p'])}{holm}, exact p {_p(entry['p_exact'])})"
    )


def _family(
    ref_title: str, ref: str, key: str, entries: Sequence[tuple[str, Mapping[str, Any]]],
    recovery_rounds: int | None,
) -> str:  # fmt: skip
    """One primary family's sentence."""
    tested = [(name, e) for name, e in entries if not e["excluded"]]
    excluded = [name for name, e in entries if e["excluded"]]
    lower = [f"{n}'s {_numbers(e, adjusted=True)}" for n, e in tested
             if supported(e, ALPHA) and e["mean"] > 0]  # fmt: skip
    higher = [f"{n}'s {_numbers(e, adjusted=True)}" for n, e in tested
              if supported(e, ALPHA) and e["mean"] < 0]  # fmt: skip
    same = [f"{n} {_numbers(e, adjusted=True)}" for n, e in tested if not supported(e, ALPHA)]
    n = "/".join(str(k) for k in sorted({e["n"] for _, e in entries}))
    where = (
        f"- Primary, at {point_text(key, recovery_rounds)} ({n} seeds; Holm over the family of "
        f"every method against {ref_title})"
    )
    own = "gap" if ref == RETRAIN_FLOOR else "average gap"
    parts = []
    if lower:
        parts.append(f"{ref_title}'s {own} is lower than {'; '.join(lower)}")
    if higher:
        coupled = (
            " (closer to this Retrain than another retrain is: they share its initial weights "
            "or client streams, which a gap rewards besides forgetting)"
            if ref == RETRAIN_FLOOR
            else ""
        )
        parts.append(f"{ref_title}'s {own} is higher than {'; '.join(higher)}{coupled}")
    if same:
        what = (
            "as close to Retrain as retraining itself is (not distinguishable from Retrain′'s gap)"
            if ref == RETRAIN_FLOOR
            else f"not distinguishable from {ref_title}'s"
        )
        parts.append(f"{what}: {'; '.join(same)}")
    if excluded:
        parts.append(f"not compared ({BEYOND} a run ended before this cost): {', '.join(excluded)}")
    return f"{where}: " + ". ".join(p[0].upper() + p[1:] for p in parts) + "."


def _leads(
    ref_title: str, key: str, entries: Sequence[tuple[str, Mapping[str, Any]]],
    recovery_rounds: int | None,
) -> list[str]:  # fmt: skip
    """Exploratory comparisons with an unadjusted p below 0.05 (excluded ones left out)."""
    found = [
        f"{name}'s gap {'lower' if e['mean'] < 0 else 'higher'} than {ref_title}'s "
        f"({e['mean']:+.2f} [{e['low']:+.2f}, {e['high']:+.2f}], p {_p(e['p'])})"
        for name, e in entries
        if not e["excluded"] and not math.isnan(e["p"]) and e["p"] < ALPHA
    ]
    if not found:
        return []
    return [f"- At {point_text(key, recovery_rounds)}: {'; '.join(found)}."]
