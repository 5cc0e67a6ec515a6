"""The paired comparisons as Markdown, and the statements they support (docs/protocol.md).

A ranking ("lower", "higher") is stated only in a primary family
(`fednot.benchmark.comparison.PRIMARY`) and only where the Holm-adjusted paired t-test gives p <
0.05. Every other comparison is listed as not distinguishable, or, outside the primary families, as
exploratory: an unadjusted p below 0.05 there is a lead, never a ranking. No statement rests on a
cell where a side's run ended before the cost point (†) or was not read at its last round within the
cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fednot.benchmark.comparison import END, PAIRED_WITH, reading_points
from fednot.benchmark.paired import EXPLORATORY, Comparison, supported
from fednot.benchmark.results import RETRAIN_FLOOR
from fednot.benchmark.stats import LEVEL, seeds_for_exact, smallest_sign_flip_p
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tables import BEYOND, NOT_DISTINGUISHABLE, _diverged_statement, point_text
from fednot.benchmark.trajectory import point_header

ALPHA = 1 - LEVEL
EXCLUDED = "×"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def _cell(entry: Comparison | None) -> str:
    if entry is None:
        return "—"
    if entry.n < 2:
        return f"{entry.mean:+.2f} (1 seed)"
    text = f"{entry.mean:+.2f} [{entry.low:+.2f}, {entry.high:+.2f}]"
    if entry.excluded:
        return f"{text} {EXCLUDED}"
    tests = f"p {_p(entry.p)}, exact {_p(entry.p_exact)}"
    if entry.family != EXPLORATORY:
        tests += f", Holm {_p(entry.p_holm)}"
    mark = "" if supported(entry, ALPHA) else f" {NOT_DISTINGUISHABLE}"
    return f"{text}{mark} ({tests})"


def paired_table(summary: Sequence[MethodSummary]) -> str:
    """Per reference, a table: each method's per-seed average gap minus the reference's."""
    titles = {row.method: row.title for row in summary}
    parts = []
    for ref in PAIRED_WITH:
        rows = [row for row in summary if ref in row.paired]
        if not rows:
            continue
        points = [k for k in reading_points() if any(r.paired[ref].get(k) for r in rows)]
        header = ["Method", *("end" if k == END else point_header(k) for k in points)]
        lines = [
            f"**Minus {titles.get(ref, ref)}**",
            "",
            f"| {' | '.join(header)} |",
            f"|{'---|' * len(header)}",
        ]
        for row in rows:
            cells = [row.title, *(_cell(row.paired[ref].get(k)) for k in points)]
            lines.append(f"| {' | '.join(cells)} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


Pair = tuple[frozenset[str], str]
"""Two methods (a row and its reference) at one reading point."""


@dataclass(frozen=True)
class Statements:
    """What the paired comparisons support, in sentences (Markdown list items).

    Attributes:
        supported: the primary families' sentences, then notes (diverged methods, the exact
            test's floor at this number of seeds).
        leads: exploratory comparisons with an unadjusted p below 0.05 (leads, not rankings).
    """

    supported: list[str]
    leads: list[str]

    def markdown(self, *, leads: bool = True) -> str:
        """The sentences as a Markdown list; ``leads``: with the exploratory section."""
        out = list(self.supported)
        if leads and self.leads:
            out += [
                "",
                "Exploratory (no multiplicity control: leads, not rankings):",
                "",
                *self.leads,
            ]
        return "\n".join(out)


def seed_count(summary: Sequence[MethodSummary]) -> int:
    """The most seeds any method has values on (0: no values)."""
    return max((len(row.seeds) for row in summary), default=0)


def too_few_seeds(seeds: int) -> str:
    """The one line said instead of paired comparisons when a run has fewer than two seeds."""
    return (
        f"No paired comparison: paired comparisons need ≥ 2 seeds and this run has {seeds}, so no "
        "method is ranked (run more seeds, e.g. --seeds 0,1,2,3,4,5)."
    )


def statements(summary: Sequence[MethodSummary], recovery_rounds: int | None = None) -> str:
    """`supported_statements` as Markdown, the exploratory leads included."""
    return supported_statements(summary, recovery_rounds).markdown()


def supported_statements(
    summary: Sequence[MethodSummary], recovery_rounds: int | None = None, *, brief: bool = False
) -> Statements:
    """The sentences the primary families support, then the exploratory leads.

    Differences are the reference's per-seed gap minus the other method's, over the seeds
    where both have values; a method that diverged on some seed is listed with that count.
    Each comparison is stated once: NoT against FT is in NoT's families, not again in FT's; and
    an exploratory lead whose readings are those of a comparison stated at an earlier point
    (communication and FLOPs fractions coincide for methods that cost the same per round; a
    run within the cost is read at its final model, as at the end) is not repeated: the
    earlier statement names the other points. ``brief``: the methods a family cannot tell from
    its reference are named without their numbers (the terminal's summary).
    """
    if seed_count(summary) < 2:
        return Statements([f"- {too_few_seeds(seed_count(summary))}"], [])
    groups = _groups(summary)
    also, repeats = _same_readings(groups)
    titles = {row.method: row.title for row in summary}
    out: list[str] = []
    leads: list[str] = []
    seeds: set[int] = set()
    for ref, key, entries in groups:
        shown = [
            (titles[m], e, _also(also.get((frozenset((m, ref)), key)), recovery_rounds))
            for m, e in entries
            if (frozenset((m, ref)), key) not in repeats
        ]
        seeds |= {e.n for _, e, _ in shown}
        if entries[0][1].family == EXPLORATORY:
            leads += _leads(titles[ref], key, shown, recovery_rounds)
        else:
            out.append(_family(titles[ref], ref, key, shown, recovery_rounds, brief))
    if not out:
        out.append(
            "- No paired comparison: the run has no NoT, FT or Retrain′ row to compare with."
        )
    out += [_diverged_statement(row) for row in summary if row.diverged]
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
    return Statements(out, leads)


Group = tuple[str, str, list[tuple[str, Comparison]]]
"""A reference, a reading point, and (method, comparison) for every method compared with it."""


def _groups(summary: Sequence[MethodSummary]) -> list[Group]:
    """Per reference and reading point, the comparisons to state (each pair once)."""
    methods = {row.method for row in summary}
    out: list[Group] = []
    stated: set[Pair] = set()  # NoT vs FT is stated once, not twice
    for ref in PAIRED_WITH:
        if ref not in methods:
            continue
        for key in reading_points():
            entries = []
            for row in summary:
                entry = row.paired.get(ref, {}).get(key)
                pair = (frozenset((row.method, ref)), key)
                if entry is None or entry.n < 2 or pair in stated:
                    continue
                stated.add(pair)
                entries.append((row.method, entry))
            if entries:
                out.append((ref, key, entries))
    return out


def _same_readings(groups: list[Group]) -> tuple[dict[Pair, list[str]], set[Pair]]:
    """The leads that repeat an earlier comparison's readings, and where each earlier one recurs.

    A repeat is an exploratory comparison of the same two methods with the same mean, interval
    and seeds as one stated at an earlier point, that would be listed as a lead. Returns, per
    earlier comparison, the points its readings recur at, and the set of repeats to leave out.
    """
    first: dict[tuple[Any, ...], Pair] = {}
    also: dict[Pair, list[str]] = {}
    repeats: set[Pair] = set()
    for ref, key, entries in groups:
        for method, entry in entries:
            pair = frozenset((method, ref))
            same = (pair, entry.n, *(round(v, 9) for v in (entry.mean, entry.low, entry.high)))
            if same not in first:
                first[same] = (pair, key)
            elif entry.family == EXPLORATORY and _is_lead(entry):
                repeats.add((pair, key))
                also.setdefault(first[same], []).append(key)
    return also, repeats


def _also(keys: list[str] | None, recovery_rounds: int | None) -> str:
    if not keys:
        return ""
    return "; the same readings at " + " and ".join(point_text(k, recovery_rounds) for k in keys)


def _is_lead(entry: Comparison) -> bool:
    return not entry.excluded and not math.isnan(entry.p) and entry.p < ALPHA


def _numbers(entry: Comparison, also: str) -> str:
    """The reference's side of a difference (row − reference), with its tests."""
    return (
        f"(difference {-entry.mean:+.2f}, 95 % CI [{-entry.high:+.2f}, "
        f"{-entry.low:+.2f}], p {_p(entry.p)}, Holm p {_p(entry.p_holm)}, exact p "
        f"{_p(entry.p_exact)}{also})"
    )


Shown = Sequence[tuple[str, Comparison, str]]
"""(method's title, comparison, the other points with the same readings in words)."""


def _family(
    ref_title: str, ref: str, key: str, entries: Shown, recovery_rounds: int | None, brief: bool
) -> str:
    """One primary family's sentence (``brief``: indistinguishable methods without numbers)."""
    tested = [(name, e, also) for name, e, also in entries if not e.excluded]
    excluded = [name for name, e, _ in entries if e.excluded]
    lower = [
        f"{n}'s {_numbers(e, also)}" for n, e, also in tested if supported(e, ALPHA) and e.mean > 0
    ]
    higher = [
        f"{n}'s {_numbers(e, also)}" for n, e, also in tested if supported(e, ALPHA) and e.mean < 0
    ]
    same = [
        n if brief else f"{n} {_numbers(e, also)}"
        for n, e, also in tested
        if not supported(e, ALPHA)
    ]
    n = "/".join(str(k) for k in sorted({e.n for _, e, _ in entries}))
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
        parts.append(f"{what}: {(', ' if brief else '; ').join(same)}")
    if excluded:
        parts.append(f"not compared ({BEYOND} a run ended before this cost): {', '.join(excluded)}")
    return f"{where}: " + ". ".join(p[0].upper() + p[1:] for p in parts) + "."


def _leads(ref_title: str, key: str, entries: Shown, recovery_rounds: int | None) -> list[str]:
    """Exploratory comparisons with an unadjusted p below 0.05 (excluded ones left out)."""
    found = [
        f"{name}'s gap {'lower' if e.mean < 0 else 'higher'} than {ref_title}'s "
        f"({e.mean:+.2f} [{e.low:+.2f}, {e.high:+.2f}], p {_p(e.p)}{also})"
        for name, e, also in entries
        if _is_lead(e)
    ]
    if not found:
        return []
    return [f"- At {point_text(key, recovery_rounds)}: {'; '.join(found)}."]
