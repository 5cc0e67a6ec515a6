"""The summary of a run: per method, CIs over seeds, gaps at equal cost, paired comparisons.

Metrics and gaps get confidence intervals over seeds, gaps are also read at equal cost, and
every method is compared seed by seed with NoT and FT (docs/protocol.md, "Statistics").

Every gap is per seed, against the Retrain of the same seed; a method's average gap is the mean
over seeds of those per-seed gaps, with a Student-t 95 % CI (`fednot.benchmark.stats`). The NoT
paper's Table 1 convention (the four Δ of the means over seeds) is kept as ``avg_gap_of_means``.

Diverged cells (`Record.diverged`) are left out of every mean, interval and paired difference:
a method is paired with NoT or FT only on the seeds where both have values, and each row lists
its diverged seeds with their reasons (``diverged``); a method that diverged on every seed gets
a row without numbers.

Reading points: ``end`` is the end of the common recovery budget (the final model); ``comm25``,
``comm50`` and ``comm100`` read each trajectory at 25, 50 and 100 % of the same seed's Retrain
communication (`fednot.benchmark.trajectory`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fednot.benchmark.paired import SeedGaps, compare
from fednot.benchmark.results import ORIGINAL, REFERENCE, RETRAIN_FLOOR, Record
from fednot.benchmark.stats import Interval, mean_ci, paired_ci
from fednot.benchmark.trajectory import Trajectory, cost_keys, read_cost_points, trajectory
from fednot.metrics.gaps import GAP_METRICS
from fednot.metrics.metric import Summary
from fednot.metrics.registry import registered

END = "end"
PAIRED_WITH: tuple[str, ...] = ("not", "ft", RETRAIN_FLOOR)
"""The rows every method is compared with, seed by seed: NoT, FT, and Retrain′ (whose gap
is what retraining itself scores: a method as close to Retrain as that is as good as a retrain).
"""
PRIMARY: tuple[tuple[str, str], ...] = (
    ("not", END),
    ("not", "comm50"),
    ("ft", END),
    ("ft", "comm50"),
    (RETRAIN_FLOOR, END),
)
"""The declared families of the primary analysis (docs/protocol.md, "Statistics"): one reference
× one reading point each, every method in it; Holm's correction within each family. Every
other paired comparison is exploratory."""


def reading_points() -> tuple[str, ...]:
    """``end`` and the cost points' keys (communication, then FLOPs), in table order."""
    return (END, *cost_keys())


def per_seed_gaps(records: Sequence[Record], logs: Mapping[str, Any]) -> dict[str, SeedGaps]:
    """Method → its `SeedGaps` (the original and Retrain have none; Retrain′ only at the end).

    At a cost point, the gap is taken against Retrain's final model measured on the same
    samples as the method's point (the last point of Retrain's own trajectory, which is its
    final model); without a Retrain trajectory, against Retrain's table metrics.
    """
    reference = {r.seed: r for r in records if r.method == REFERENCE}
    runs = {(run.label, seed): run for seed, run in curve_runs(records, logs)}
    out: dict[str, SeedGaps] = {}
    for record in records:
        ref = reference.get(record.seed)
        if ref is None or record.avg_gap is None or record.method in (ORIGINAL, REFERENCE):
            continue
        entry = out.setdefault(record.method, SeedGaps({}, {}, {}))
        entry.gaps.setdefault(END, {})[record.seed] = record.avg_gap
        run = runs.get((record.method, record.seed))
        if run is None:
            continue
        readings = read_cost_points(run.trajectory, ref.comm_bytes, ref.flops)
        for key, reading in readings.items():
            if reading is None:
                continue
            entry.gaps.setdefault(key, {})[record.seed] = reading.point.gap(run.reference)
            if reading.beyond_run:
                entry.beyond_run.setdefault(key, []).append(record.seed)
            if not reading.exact:
                entry.inexact.setdefault(key, []).append(record.seed)
    return out


def summarize(records: Sequence[Record], logs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per method (the original and Retrain included), in record order.

    ``seeds`` lists the seeds with values; ``diverged`` the others, as ``{"seed", "reason"}``.
    """
    methods = list(dict.fromkeys(r.method for r in records))
    measured = [r for r in records if not r.diverged]
    by_method = {m: [r for r in measured if r.method == m] for m in methods}
    reference = {r.seed: r for r in by_method.get(REFERENCE, [])}
    gaps = per_seed_gaps(measured, logs)
    not_methods = [m for m in gaps if m == RETRAIN_FLOOR]
    paired = compare(
        gaps,
        PAIRED_WITH,
        reading_points(),
        PRIMARY,
        skip={"not": not_methods, "ft": not_methods},
    )
    rows = []
    for method, rs in by_method.items():
        first = next(r for r in records if r.method == method)
        row: dict[str, Any] = {
            "method": method,
            "title": first.title,
            "seeds": [r.seed for r in rs],
            "requirements": first.requirements,
            "diverged": [
                {"seed": r.seed, "reason": r.diverged}
                for r in records
                if r.method == method and r.diverged
            ],
        }
        if not rs:
            rows.append(_without_values(row))
            continue
        row.update(metric_summaries(rs, reference))
        row["avg_gap"] = _interval([r.avg_gap for r in rs if r.avg_gap is not None])
        if reference and method == REFERENCE:
            row["avg_gap"] = Interval(0.0, 0.0, 0.0, len(rs)).to_dict()
        row["avg_gap_of_means"] = (
            sum(row[m]["delta_of_means"] for m in GAP_METRICS) / len(GAP_METRICS)
            if reference
            else None
        )
        mine = gaps.get(method, SeedGaps({}, {}, {}))
        row["gap_at"] = {
            key: _interval(list(mine.gaps.get(key, {}).values())) for key in reading_points()
        }
        row["beyond_run"] = {
            key: sorted(mine.beyond_run.get(key, [])) for key in reading_points()[1:]
        }
        row["inexact"] = {key: sorted(mine.inexact.get(key, [])) for key in reading_points()[1:]}
        row["paired"] = paired.get(method, {})
        row.update(_costs(rs, reference))
        rows.append(row)
    return rows


def metric_summaries(
    rs: Sequence[Record], reference: Mapping[int, Record]
) -> dict[str, dict[str, Any] | float | None]:
    """Each summarised registered metric over ``rs``, by name, as its `Metric.summary` says.

    `Summary.COMPARED`: mean, 95 % CI, paired Δ to Retrain and ``delta_of_means`` (``None`` if
    no record has it); `Summary.INTERVAL`: mean and CI; `Summary.MEAN`: the plain mean.
    """
    out: dict[str, dict[str, Any] | float | None] = {}
    for metric in registered():
        values = [v for r in rs if (v := r.get(metric.name)) is not None]
        if metric.summary is Summary.COMPARED:
            out[metric.name] = _optional_metric(rs, metric.name, reference)
        elif metric.summary is Summary.INTERVAL:
            out[metric.name] = _interval(values)
        elif metric.summary is Summary.MEAN:
            out[metric.name] = sum(values) / len(values) if values else None
    return out


def _without_values(row: dict[str, Any]) -> dict[str, Any]:
    """The row of a method that diverged on every seed: its keys, and no numbers."""
    summarised = (m.name for m in registered() if m.summary is not Summary.NONE)
    empty = dict.fromkeys((*summarised, "avg_gap", "avg_gap_of_means"))
    costs = dict.fromkeys(
        (
            "comm_bytes",
            "flops",
            "storage_bytes",
            "rounds",
            "seconds",
            "comm_bytes_ratio",
            "flops_ratio",
            "comm_to_target_ratio",
        )
    )
    return {
        **row,
        **empty,
        **costs,
        "gap_at": dict.fromkeys(reading_points()),
        "beyond_run": {key: [] for key in reading_points()[1:]},
        "inexact": {key: [] for key in reading_points()[1:]},
        "paired": {},
        "rounds_to_target": [],
    }


def _interval(values: Sequence[float]) -> dict[str, Any] | None:
    return mean_ci(list(values)).to_dict() if values else None


def _optional_metric(
    rs: Sequence[Record], metric: str, reference: Mapping[int, Record]
) -> dict[str, Any] | None:
    """`_metric` over the records that have ``metric`` (results from before it existed: none)."""
    have = [r for r in rs if r.get(metric) is not None]
    refs = {s: r for s, r in reference.items() if r.get(metric) is not None}
    return _metric(have, metric, refs) if have else None


def _metric(rs: Sequence[Record], metric: str, reference: Mapping[int, Record]) -> dict[str, Any]:
    values = [r.value(metric) for r in rs]
    out: dict[str, Any] = mean_ci(values).to_dict()
    paired = [(r.value(metric), reference[r.seed].value(metric)) for r in rs if r.seed in reference]
    out["delta"] = (
        paired_ci([a for a, _ in paired], [b for _, b in paired]).to_dict() if paired else None
    )
    if reference:  # over the same seeds as the method's mean (a diverged seed has no value)
        refs = [reference[r.seed] for r in rs if r.seed in reference] or list(reference.values())
        ref_mean = sum(r.value(metric) for r in refs) / len(refs)
        out["delta_of_means"] = abs(out["mean"] - ref_mean)
    return out


def _costs(rs: Sequence[Record], reference: Mapping[int, Record]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cost in ("comm_bytes", "flops", "storage_bytes", "rounds", "seconds"):
        out[cost] = sum(float(getattr(r, cost)) for r in rs) / len(rs)
    for cost in ("comm_bytes", "flops"):
        ratios = [
            getattr(r, cost) / getattr(reference[r.seed], cost)
            for r in rs
            if r.seed in reference and getattr(reference[r.seed], cost) > 0
        ]
        out[f"{cost}_ratio"] = sum(ratios) / len(ratios) if ratios else None
    out["rounds_to_target"] = [r.rounds_to_target for r in rs]
    oracle = [
        r.comm_to_target / reference[r.seed].comm_bytes
        for r in rs
        if r.comm_to_target is not None and r.seed in reference and reference[r.seed].comm_bytes
    ]
    out["comm_to_target_ratio"] = sum(oracle) / len(oracle) if oracle else None
    return out


def curve_runs(records: Sequence[Record], logs: Mapping[str, Any]) -> list[tuple[int, CurveRun]]:
    """(seed, run) for every unlearning record with a log: its trajectory and its seed's Retrain.

    The reference is Retrain's final model measured as the trajectory's points are (the last
    point of Retrain's own trajectory: the same samples when ``eval.curve_subset`` cuts the
    sets); without one, Retrain's table metrics. Retrain′ (a retrain from scratch) has no curve.
    """
    reference = {r.seed: r for r in records if r.method == REFERENCE}
    runs = []
    for record in records:
        ref = reference.get(record.seed)
        log = logs.get(f"{record.method}/seed{record.seed}")
        skipped = record.method in (ORIGINAL, REFERENCE, RETRAIN_FLOOR)
        if skipped or ref is None or log is None or record.diverged:
            continue
        run = trajectory(log, step_comm_bytes=record.step_comm_bytes, step_flops=record.step_flops)
        ref_metrics: Mapping[str, float] = {m: ref.value(m) for m in GAP_METRICS}
        ref_log = logs.get(f"{REFERENCE}/seed{record.seed}")
        ref_last = (
            None if ref_log is None else trajectory(ref_log, step_comm_bytes=0, step_flops=0).last
        )
        if ref_last is not None and ref_last.round == ref.rounds:
            ref_metrics = ref_last.metrics
        runs.append((record.seed, CurveRun(record.method, run, ref_metrics, ref.comm_bytes)))
    return runs


def tradeoff_curves(
    records: Sequence[Record], logs: Mapping[str, Any]
) -> dict[str, list[dict[str, float]]]:
    """Method → per evaluated round: communication relative to Retrain and the average gap.

    See `pool_curves`; each (method, seed) run is read against that seed's Retrain.
    """
    return pool_curves([run for _, run in curve_runs(records, logs)])


@dataclass(frozen=True)
class CurveRun:
    """One run's trajectory with the Retrain it is measured against (its seed's)."""

    label: str
    trajectory: Trajectory
    reference: Mapping[str, float]
    reference_comm_bytes: int


def pool_curves(runs: Sequence[CurveRun]) -> dict[str, list[dict[str, float]]]:
    """Label → per round: the mean over seeds of cost (relative to Retrain) and average gap.

    Points of the same round are pooled over the runs of one label: ``x`` is the mean of the
    per-run ratios (cumulative bytes over that run's Retrain bytes), ``gap`` the mean average
    gap with its 95 % CI (``low``, ``high``; NaN for one run), ``n`` the number of runs. Runs
    whose Retrain sent nothing (centralized) have no curve.
    """
    pooled: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for run in runs:
        if run.reference_comm_bytes <= 0:
            continue
        for point in run.trajectory.points:
            pooled.setdefault(run.label, {}).setdefault(point.round, []).append(
                (point.comm_bytes / run.reference_comm_bytes, point.gap(run.reference))
            )
    curves: dict[str, list[dict[str, float]]] = {}
    for label, by_round in pooled.items():
        curve = []
        for round_, values in sorted(by_round.items()):
            gap = mean_ci([g for _, g in values])
            x = sum(c for c, _ in values) / len(values)
            curve.append(
                {
                    "round": round_,
                    "x": x,
                    "gap": gap.mean,
                    "low": gap.low,
                    "high": gap.high,
                    "n": gap.n,
                }
            )
        curves[label] = curve
    return curves
