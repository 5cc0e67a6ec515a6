"""The summary ``fednot run`` and ``fednot bench`` print at their end, for a narrow terminal.

Per method: the average gap to Retrain with its 95 % CI, the gap read at 25, 50 and 100 % of
Retrain's communication and training FLOPs (means; the table's marks), and the communication
relative to Retrain. Then the statements the primary families support (each once), the warnings
(`fednot.benchmark.caveats`), and where the full table is: ``results.md`` keeps every column, the
paired differences, the exploratory leads and the notes.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fednot.benchmark.caveats import caveats
from fednot.benchmark.comparison import reading_points
from fednot.benchmark.report import tuned_values
from fednot.benchmark.results import ORIGINAL, RETRAIN_FLOOR
from fednot.benchmark.statements import supported_statements
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tables import BEYOND, DIVERGED, INEXACT, TUNED, format_interval
from fednot.config import RunConfig

WIDTH = 100
"""The widest line the summary prints (statements and warnings are wrapped to it)."""
_SHORT = {ORIGINAL: "original", RETRAIN_FLOOR: "Retrain′"}
_GROUPS = (("comm", " gap @ comm. "), ("flops", " gap @ FLOPs "))


def compact_table(
    summary: Sequence[MethodSummary],
    not_applicable: Mapping[str, str] | None = None,
    tuned: Mapping[str, Any] | None = None,
) -> str:
    """One aligned line per method: average gap, the gaps at equal cost, communication."""
    points = reading_points()[1:]
    head = ["Method", "Avg. gap ↓", *(_percent(k) for k in points), "Comm./Retrain"]
    body = [_cells(row, points, tuned or {}) for row in summary]
    body += [[name, "not applicable"] for name in not_applicable or {}]
    full = [head, *(r for r in body if len(r) == len(head))]
    widths = [max(len(r[i]) for r in full) for i in range(len(head))]
    widths[0] = max(widths[0], *(len(r[0]) for r in body))
    groups = [" " * widths[0], " " * widths[1]]
    for prefix, label in _GROUPS:
        span = [w for k, w in zip(points, widths[2:-1], strict=True) if k.startswith(prefix)]
        groups.append(label.center(sum(span) + 2 * (len(span) - 1), "─"))
    lines = ["  ".join(groups).rstrip(), _line(head, widths)]
    lines += [_line(cells, widths) for cells in body]
    lines.append("Gap @ x %: the average gap after the last round within x % of Retrain's cost.")
    marks = {
        BEYOND: "the run ended before that cost (its final model is read)",
        INEXACT: "an earlier round is read",
        DIVERGED: "diverged on some seeds (why: results.md)",
        TUNED: "tuned by `fednot tune`",
    }
    used = [
        f"{mark} {text}"
        for mark, text in marks.items()
        if any(mark in cell for row in body for cell in row)
    ]
    if used:
        lines.append(textwrap.fill("; ".join(used) + ".", WIDTH, break_on_hyphens=False))
    return "\n".join(lines)


def _percent(key: str) -> str:
    return f"{key.removeprefix('comm').removeprefix('flops')} %"


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells padded to ``widths``; a row of two cells (diverged, not applicable) runs on."""
    if len(cells) == 2:
        return f"{cells[0].ljust(widths[0])}  {cells[1]}"
    padded = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
    padded += [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
    return "  ".join(padded).rstrip()


def _cells(row: MethodSummary, points: Sequence[str], tuned: Mapping[str, Any]) -> list[str]:
    title = _SHORT.get(row.method, row.title)
    title += f" {TUNED}" if row.method in tuned else ""
    title += f" {DIVERGED}" if row.diverged and row.seeds else ""
    if not row.seeds:
        return [title, f"diverged on every seed {DIVERGED}"]
    readings = []
    for key in points:
        stat = row.gap_at.get(key)
        text = "—" if stat is None else f"{stat.mean:.2f}"
        if stat is not None:
            text += BEYOND if row.beyond_run.get(key) else ""
            text += INEXACT if row.inexact.get(key) else ""
        readings.append(text)
    ratio = None if row.costs is None else row.costs.comm_bytes_ratio
    comm = "—" if row.method == ORIGINAL or ratio is None else f"{ratio:.2f}"
    return [title, format_interval(row.avg_gap), *readings, comm]


def terminal_summary(
    config: RunConfig,
    summary: Sequence[MethodSummary],
    run_dir: Path,
    not_applicable: Mapping[str, str] | None = None,
) -> str:
    """The end-of-run summary: compact table, supported statements, warnings, where to read on."""
    said = supported_statements(summary, config.unlearn.recovery_rounds, brief=True)
    parts = [
        compact_table(summary, not_applicable, tuned_values(config)),
        "What the numbers support (paired tests, docs/protocol.md):\n" + _wrap(said.supported),
    ]
    if said.leads:
        parts[-1] += (
            f"\n{len(said.leads)} exploratory lead(s) without multiplicity control: results.md."
        )
    warnings = caveats(summary)
    if warnings:
        parts.append("Warnings:\n" + _wrap([f"- {c.title}. {c.text}" for c in warnings]))
    where = (
        "The full table (each metric's Δ, the attacks, costs, oracle rounds), every paired test's "
        f"numbers and the notes: {run_dir / 'results.md'}",
        f"Results written to {run_dir}/: results.md, results.json, results.csv, results.png and "
        ".svg, tradeoff.png and .svg, config.toml, partitions.",
    )
    parts.append("\n".join(textwrap.fill(text, WIDTH, break_on_hyphens=False) for text in where))
    return "\n\n".join(parts)


def _wrap(items: Sequence[str]) -> str:
    """Markdown list items wrapped to `WIDTH`, continuation lines indented under the text."""
    lines = []
    for item in items:
        lines += textwrap.wrap(item, WIDTH, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return "\n".join(lines)
