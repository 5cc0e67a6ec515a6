"""Result records, their summary over seeds, and the NoT paper's Table 1 layout.

One `Record` per (method, seed). The summary follows `metrics.md` §5: Δ is the distance of the
mean over seeds to Retrain's mean, the average gap is the mean of the four Δ (the Table 1
convention), and the per-seed average gap (each seed against the Retrain of the same seed) is
reported next to it. Standard deviations are sample standard deviations (ddof = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fednot.metrics.gaps import GAP_METRICS, avg_gap, mean_std

REFERENCE = "retrain"
ORIGINAL = "original"


@dataclass(frozen=True)
class Record:
    """Metrics and costs of one method on one seed. Accuracies and MIA are in percent.

    ``comm_bytes`` and ``flops`` cover the unlearning step plus recovery (the paper's Comm. and
    Comp.); ``rounds_to_target`` is the first recovery round whose retained-validation accuracy
    reaches Retrain's final one (``None``: not within the budget).
    """

    method: str
    title: str
    seed: int
    retain_acc: float
    forget_acc: float
    test_acc: float
    mia: float
    mia_std: float
    val_acc: float
    scenario: str
    asr: float | None
    forget_class_acc: float | None
    remaining_class_test_acc: float | None
    avg_gap: float | None
    comm_bytes: int
    flops: int
    step_comm_bytes: int
    step_flops: int
    rounds: int
    stop_reason: str
    rounds_to_target: int | None
    comm_to_target: int | None
    seconds: float
    requirements: str
    storage_bytes: int = 0
    cached: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def rounds_to_target(val_accs: Sequence[float], target: float) -> int | None:
    """The first round (1-based) whose validation accuracy reaches ``target``, else ``None``."""
    for index, value in enumerate(val_accs):
        if value >= target:
            return index + 1
    return None


def with_gaps(records: Sequence[Record]) -> list[Record]:
    """Fill each record's ``avg_gap`` against the Retrain record of the same seed."""
    reference = {r.seed: r.to_dict() for r in records if r.method == REFERENCE}
    out = []
    for r in records:
        ref = reference.get(r.seed)
        gap = avg_gap(r.to_dict(), ref) if ref is not None else None
        out.append(Record(**{**r.to_dict(), "avg_gap": gap}))
    return out


def summarize(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Per method: mean and std of each metric, Δ to Retrain, both average gaps, mean costs."""
    methods = list(dict.fromkeys(r.method for r in records))
    by_method = {m: [r for r in records if r.method == m] for m in methods}
    ref_means = {
        metric: mean_std([getattr(r, metric) for r in by_method.get(REFERENCE, [])])[0]
        for metric in GAP_METRICS
    }
    rows = []
    for method, rs in by_method.items():
        row: dict[str, Any] = {
            "method": method,
            "title": rs[0].title,
            "seeds": [r.seed for r in rs],
        }
        for metric in (*GAP_METRICS, "val_acc"):
            mean, std = mean_std([getattr(r, metric) for r in rs])
            row[metric] = {"mean": mean, "std": std}
            if metric in GAP_METRICS and REFERENCE in by_method:
                row[metric]["delta"] = abs(mean - ref_means[metric])
        has_ref = REFERENCE in by_method
        row["avg_gap"] = (
            sum(row[m]["delta"] for m in GAP_METRICS) / len(GAP_METRICS) if has_ref else None
        )
        gaps = [r.avg_gap for r in rs if r.avg_gap is not None]
        row["avg_gap_per_seed"] = mean_std(gaps)[0] if gaps else None
        for metric in SCENARIO_METRICS:
            values = [getattr(r, metric) for r in rs if getattr(r, metric) is not None]
            mean, std = mean_std(values)
            row[metric] = {"mean": mean, "std": std} if values else None
        for cost in ("comm_bytes", "flops", "storage_bytes", "rounds", "seconds"):
            row[cost] = mean_std([float(getattr(r, cost)) for r in rs])[0]
        row["rounds_to_target"] = [r.rounds_to_target for r in rs]
        row["requirements"] = rs[0].requirements
        rows.append(row)
    return rows


def _cell(stat: dict[str, float], with_delta: bool, single: bool) -> str:
    text = f"{stat['mean']:.2f}" if single else f"{stat['mean']:.2f} ± {stat['std']:.2f}"
    return f"{text} ({stat['delta']:.2f})" if with_delta and "delta" in stat else text


SCENARIO_METRICS: tuple[str, ...] = ("asr", "forget_class_acc", "remaining_class_test_acc")
"""Metrics only some scenarios have (backdoor; class-wise), in percent."""

_HEADER = (
    "Method", "Retain (Δ↓)", "Forget (Δ↓)", "Test (Δ↓)", "MIA (Δ↓)", "Avg. Gap ↓",
    "Comm. (bytes) ↓", "Comp. (FLOPs) ↓", "Storage (bytes) ↓", "Rounds",
    "Rounds to Retrain's val. acc.", "Needs",
)  # fmt: skip
_SCENARIO_HEADER = {
    "asr": "ASR (backdoor)",
    "forget_class_acc": "Forget-class test acc.",
    "remaining_class_test_acc": "Remaining-class test acc.",
}


def _extra_metrics(summary: Sequence[dict[str, Any]]) -> list[str]:
    return [m for m in SCENARIO_METRICS if any(row.get(m) for row in summary)]


def table_rows(summary: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The summary as text cells: mean ± std (Δ), gaps, costs, rounds, scenario metrics."""
    rows = []
    extra = _extra_metrics(summary)
    for row in summary:
        single = len(row["seeds"]) == 1
        cells = [row["title"], *(_cell(row[m], True, single) for m in GAP_METRICS)]
        cells.append("—" if row["avg_gap"] is None else f"{row['avg_gap']:.2f}")
        cells += [_cell(row[m], False, single) if row.get(m) else "—" for m in extra]
        if row["method"] == ORIGINAL:
            cells += ["—"] * 6
        else:
            reached = ", ".join("—" if r is None else str(r) for r in row["rounds_to_target"])
            cells += [
                f"{row['comm_bytes']:.2e}", f"{row['flops']:.2e}", f"{row['storage_bytes']:.2e}",
                f"{row['rounds']:.0f}", reached, row["requirements"],
            ]  # fmt: skip
        rows.append(cells)
    return rows


def markdown_table(
    summary: Sequence[dict[str, Any]], not_applicable: dict[str, str] | None = None
) -> str:
    """The summary in the NoT paper's Table 1 layout, plus storage, rounds and requirements.

    Scenario metrics (ASR, class-wise test accuracies) get columns after the average gap when
    present; methods that cannot serve the scenario get a row saying so.
    """
    header = [*_HEADER[:6], *(_SCENARIO_HEADER[m] for m in _extra_metrics(summary)), *_HEADER[6:]]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    lines += [f"| {' | '.join(cells)} |" for cells in table_rows(summary)]
    for name in not_applicable or {}:
        cells = [name, "not applicable", *["—"] * (len(header) - 2)]
        lines.append(f"| {' | '.join(cells)} |")
    if not_applicable:
        lines.append("")
        lines += [f"- {name}: {reason}" for name, reason in not_applicable.items()]
    return "\n".join(lines)


def csv_text(records: Sequence[Record]) -> str:
    """One CSV row per (method, seed) record, with the scalar fields of `Record`."""
    import csv
    import io

    fields = [f for f in Record.__dataclass_fields__ if f != "notes"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        data = record.to_dict()
        writer.writerow({f: data[f] for f in fields})
    return out.getvalue()
