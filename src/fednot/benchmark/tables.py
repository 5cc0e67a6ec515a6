"""The summary as Markdown: the main table, paired comparisons, and the supported statements.

Statistics: docs/protocol.md, "Statistics".

A statement is generated only from a paired 95 % CI: "lower" or "higher" when the interval
excludes 0, otherwise "not distinguishable at n seeds". No ranking is stated otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fednot.benchmark.comparison import END, reading_points
from fednot.benchmark.results import ORIGINAL, REFERENCE
from fednot.benchmark.stats import Interval
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.trajectory import point_header
from fednot.metrics.metric import Column, Metric
from fednot.metrics.registry import registered

INEXACT = "*"
BEYOND = "†"
BELOW_NOISE = "‡"
NOT_DISTINGUISHABLE = "≈"
DIVERGED = "§"
TUNED = "♯"


def point_text(key: str, recovery_rounds: int | None = None) -> str:
    """A reading point in words."""
    if key == END:
        budget = f" of {recovery_rounds} recovery rounds" if recovery_rounds is not None else ""
        return f"the end of the common budget{budget}"
    if key.startswith("flops"):
        return f"{key.removeprefix('flops')} % of Retrain's training FLOPs"
    return f"{key.removeprefix('comm')} % of Retrain's communication"


def format_interval(value: Interval | None, digits: int = 2) -> str:
    """An `Interval` as "mean ± half-width" (the mean alone for one seed; —: none)."""
    if value is None:
        return "—"
    if value.n < 2 or math.isnan(value.half_width):
        return f"{value.mean:.{digits}f}"
    return f"{value.mean:.{digits}f} ± {value.half_width:.{digits}f}"


def _ci(value: Interval | None) -> str:
    if value is None:
        return "—"
    if value.n < 2:
        return f"{value.mean:+.2f} (1 seed)"
    mark = f" {NOT_DISTINGUISHABLE}" if value.contains_zero else ""
    return f"{value.mean:+.2f} [{value.low:+.2f}, {value.high:+.2f}]{mark}"


def _metric_cell(row: MethodSummary, metric: str, floor: float | None) -> str:
    stat = row.interval(metric)
    if stat is None:
        return "—"
    text = format_interval(stat)
    compared = row.compared.get(metric)
    delta = None if compared is None else compared.delta
    if delta is None or row.method == REFERENCE:
        return text
    mark = BELOW_NOISE if floor is not None and abs(delta.mean) < floor else ""
    return f"{text} ({delta.mean:+.2f}{mark})"


def _floors(summary: Sequence[MethodSummary]) -> dict[str, float | None]:
    """Per metric with a noise floor (`Metric.floor`): Retrain's (mean over seeds), else any."""
    out: dict[str, float | None] = {}
    for metric in registered():
        if metric.floor is None:
            continue
        values = {row.method: row.mean(metric.floor) for row in summary}
        value = values.get(REFERENCE)
        out[metric.name] = (
            value
            if value is not None
            else next((f for f in values.values() if f is not None), None)
        )
    return out


def noise_floor(summary: Sequence[MethodSummary]) -> float | None:
    """Retrain's MIA noise floor (mean over seeds), else any method's."""
    floors = {row.method: row.mean("mia_floor") for row in summary}
    value = floors.get(REFERENCE)
    if value is None:
        value = next((f for f in floors.values() if f is not None), None)
    return value


def table_metrics(summary: Sequence[MethodSummary], column: Column) -> list[Metric]:
    """The registered metrics shown in ``column``: those some row of ``summary`` has."""
    return [
        m for m in registered() if m.column is column and any(row.has(m.name) for row in summary)
    ]


def main_table(
    summary: Sequence[MethodSummary],
    not_applicable: Mapping[str, str] | None = None,
    tuned: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Metrics, gaps at the end of the budget and at equal cost, costs, and the oracle column.

    ``tuned`` (method -> its tuned values, `fednot.config.RunConfig.tuned_values`) marks those
    methods' titles with `TUNED` and lists the values under the table.
    """
    tuned = {method: values for method, values in (tuned or {}).items() if values}
    deltas = table_metrics(summary, Column.DELTA)
    values = table_metrics(summary, Column.VALUE)
    floors = _floors(summary)
    header = [
        "Method",
        *(f"{m.title} (Δ)" for m in deltas),
        "Avg. gap ↓",
        *(f"Gap {point_header(k)}" for k in reading_points()[1:]),
        *(m.title for m in values),
        "Comm. / Retrain",
        "FLOPs / Retrain",
        "Storage (B)",
        "Rounds",
        "Oracle: rounds to Retrain's val. acc.",
        "Needs",
    ]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    for row in summary:
        if not row.seeds or row.costs is None:  # diverged on every seed: no numbers
            text = f"diverged on every seed {DIVERGED}"
            title = _tuned_title(row, tuned)
            lines.append(f"| {' | '.join([title, text, *['—'] * (len(header) - 2)])} |")
            continue
        cells = [_title(row, tuned)]
        cells += [_metric_cell(row, m.name, floors.get(m.name)) for m in deltas]
        cells.append(format_interval(row.avg_gap))
        for key in reading_points()[1:]:
            text = format_interval(row.gap_at.get(key))
            if text != "—":
                text += BEYOND if row.beyond_run.get(key) else ""
                text += INEXACT if row.inexact.get(key) else ""
            cells.append(text)
        cells += [format_interval(row.interval(m.name)) for m in values]
        if row.method == ORIGINAL:
            cells += ["—"] * 6
        else:
            costs = row.costs
            ratio = {k: costs.ratio(k) for k in ("comm_bytes", "flops")}
            reached = ", ".join("—" if r is None else str(r) for r in costs.rounds_to_target)
            cells += [
                "—" if ratio["comm_bytes"] is None else f"{ratio['comm_bytes']:.2f}",
                "—" if ratio["flops"] is None else f"{ratio['flops']:.2f}",
                f"{costs.storage_bytes:.2e}",
                f"{costs.rounds:.0f}",
                reached,
                row.requirements,
            ]
        lines.append(f"| {' | '.join(cells)} |")
    for name in not_applicable or {}:
        lines.append(f"| {' | '.join([name, 'not applicable', *['—'] * (len(header) - 2)])} |")
    if not_applicable:
        lines.append("")
        lines += [f"- {name}: {reason}" for name, reason in not_applicable.items()]
    notes = divergence_notes(summary) + tuned_notes(summary, tuned)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _tuned_title(row: MethodSummary, tuned: Mapping[str, Any]) -> str:
    return f"{row.title} {TUNED}" if row.method in tuned else row.title


def _title(row: MethodSummary, tuned: Mapping[str, Any]) -> str:
    """The method's name, marked if tuned; with the count of diverged seeds, if some diverged."""
    title = _tuned_title(row, tuned)
    diverged = len(row.diverged)
    if not diverged:
        return title
    return f"{title} ({diverged} of {diverged + len(row.seeds)} seeds diverged {DIVERGED})"


def tuned_notes(
    summary: Sequence[MethodSummary], tuned: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """One line listing the tuned methods' values (none if nothing is tuned)."""
    titles = {row.method: row.title for row in summary}
    parts = [
        f"{titles[method]}: " + ", ".join(f"{key} = {value!r}" for key, value in values.items())
        for method, values in tuned.items()
        if method in titles
    ]
    if not parts:
        return []
    return [
        f"- {TUNED} Tuned by `fednot tune` on a validation request (another target client, other "
        f"seeds; docs/tuning.md); the others keep their published values. {'; '.join(parts)}."
    ]


def divergence_notes(summary: Sequence[MethodSummary]) -> list[str]:
    """One line per method that diverged on some seed: how many, and why."""
    out = []
    for row in summary:
        diverged = row.diverged
        if not diverged:
            continue
        total = len(diverged) + len(row.seeds)
        scope = (
            f"every seed ({total}): it has no numbers and is not compared"
            if not row.seeds
            else f"{len(diverged)} of {total} seeds, left out of its cells and paired differences"
        )
        by_reason: dict[str, list[str]] = {}
        for d in diverged:
            by_reason.setdefault(d.reason, []).append(str(d.seed))
        reasons = " ".join(
            f"{'Seed' if len(seeds) == 1 else 'Seeds'} {', '.join(seeds)}: {reason}"
            for reason, seeds in by_reason.items()
        )
        out.append(f"- {DIVERGED} {row.title} diverged on {scope}. {reasons}")
    return out


def _diverged_statement(row: MethodSummary) -> str:
    diverged = len(row.diverged)
    if not row.seeds:
        return f"- {row.title} diverged on every seed: it is not ranked."
    seeds = "seed" if len(row.seeds) == 1 else "seeds"
    return (
        f"- {row.title} diverged on {diverged} of {diverged + len(row.seeds)} seeds: it is "
        f"compared on the other {len(row.seeds)} {seeds} only."
    )
