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

from fednot.benchmark.paired import SeedGaps, compare
from fednot.benchmark.results import ORIGINAL, REFERENCE, RETRAIN_FLOOR, Record
from fednot.benchmark.runlog import Logs
from fednot.benchmark.stats import Interval, mean_ci, paired_ci
from fednot.benchmark.summary import (
    ComparedMetric,
    DivergedSeed,
    MeanCosts,
    MethodSummary,
    PairedComparisons,
)
from fednot.benchmark.tradeoff import curve_runs
from fednot.benchmark.trajectory import cost_keys, read_cost_points
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


def per_seed_gaps(records: Sequence[Record], logs: Logs) -> dict[str, SeedGaps]:
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


def summarize(records: Sequence[Record], logs: Logs) -> list[MethodSummary]:
    """One row per method (the original and Retrain included), in record order.

    ``seeds`` lists the seeds with values; ``diverged`` the others, with the reasons.
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
    return [
        _row(method, records, rs, reference, gaps.get(method), paired.get(method, {}))
        for method, rs in by_method.items()
    ]


def _row(
    method: str,
    records: Sequence[Record],
    rs: Sequence[Record],
    reference: Mapping[int, Record],
    mine: SeedGaps | None,
    paired: PairedComparisons,
) -> MethodSummary:
    """``method``'s row: ``rs`` are its measured records, ``records`` every record of the run."""
    first = next(r for r in records if r.method == method)
    diverged = tuple(
        DivergedSeed(r.seed, r.diverged) for r in records if r.method == method and r.diverged
    )
    points = reading_points()
    if not rs:  # diverged on every seed: no numbers
        return MethodSummary(
            method=method,
            title=first.title,
            seeds=(),
            requirements=first.requirements,
            diverged=diverged,
            compared={},
            intervals={},
            means={},
            avg_gap=None,
            avg_gap_of_means=None,
            gap_at=dict.fromkeys(points),
            beyond_run={k: () for k in points[1:]},
            inexact={k: () for k in points[1:]},
            paired={},
            costs=None,
        )
    compared, intervals, means = metric_summaries(rs, reference)
    avg_gap = _interval([r.avg_gap for r in rs if r.avg_gap is not None])
    if reference and method == REFERENCE:
        avg_gap = Interval(0.0, 0.0, 0.0, len(rs))
    of_means = _avg_gap_of_means(compared) if reference else None
    mine = mine or SeedGaps({}, {}, {})
    return MethodSummary(
        method=method,
        title=first.title,
        seeds=tuple(r.seed for r in rs),
        requirements=first.requirements,
        diverged=diverged,
        compared=compared,
        intervals=intervals,
        means=means,
        avg_gap=avg_gap,
        avg_gap_of_means=of_means,
        gap_at={key: _interval(list(mine.gaps.get(key, {}).values())) for key in points},
        beyond_run={key: tuple(sorted(mine.beyond_run.get(key, []))) for key in points[1:]},
        inexact={key: tuple(sorted(mine.inexact.get(key, []))) for key in points[1:]},
        paired=paired,
        costs=_costs(rs, reference),
    )


def _avg_gap_of_means(compared: Mapping[str, ComparedMetric | None]) -> float:
    """The NoT paper's Table 1 average gap: the mean over the gap metrics of the Δ of means."""
    deltas = []
    for name in GAP_METRICS:
        metric = compared.get(name)
        if metric is None or metric.delta_of_means is None:
            raise ValueError(f"{name} has no difference of means to Retrain to average.")
        deltas.append(metric.delta_of_means)
    return sum(deltas) / len(GAP_METRICS)


def metric_summaries(
    rs: Sequence[Record], reference: Mapping[int, Record]
) -> tuple[dict[str, ComparedMetric | None], dict[str, Interval | None], dict[str, float | None]]:
    """Each summarised registered metric over ``rs``, by name, as its `Metric.summary` says.

    Returns the `Summary.COMPARED` metrics (mean, 95 % CI, paired Δ to Retrain and the Δ of the
    means; ``None`` if no record has it), the `Summary.INTERVAL` ones (mean and CI) and the
    `Summary.MEAN` ones (the plain mean).
    """
    compared: dict[str, ComparedMetric | None] = {}
    intervals: dict[str, Interval | None] = {}
    means: dict[str, float | None] = {}
    for metric in registered():
        values = [v for r in rs if (v := r.get(metric.name)) is not None]
        if metric.summary is Summary.COMPARED:
            compared[metric.name] = _optional_metric(rs, metric.name, reference)
        elif metric.summary is Summary.INTERVAL:
            intervals[metric.name] = _interval(values)
        elif metric.summary is Summary.MEAN:
            means[metric.name] = sum(values) / len(values) if values else None
    return compared, intervals, means


def _interval(values: Sequence[float]) -> Interval | None:
    return mean_ci(list(values)) if values else None


def _optional_metric(
    rs: Sequence[Record], metric: str, reference: Mapping[int, Record]
) -> ComparedMetric | None:
    """`_metric` over the records that have ``metric`` (results from before it existed: none)."""
    have = [r for r in rs if r.get(metric) is not None]
    refs = {s: r for s, r in reference.items() if r.get(metric) is not None}
    return _metric(have, metric, refs) if have else None


def _metric(rs: Sequence[Record], metric: str, reference: Mapping[int, Record]) -> ComparedMetric:
    values = [r.value(metric) for r in rs]
    interval = mean_ci(values)
    paired = [(r.value(metric), reference[r.seed].value(metric)) for r in rs if r.seed in reference]
    delta = paired_ci([a for a, _ in paired], [b for _, b in paired]) if paired else None
    of_means = None
    if reference:  # over the same seeds as the method's mean (a diverged seed has no value)
        refs = [reference[r.seed] for r in rs if r.seed in reference] or list(reference.values())
        ref_mean = sum(r.value(metric) for r in refs) / len(refs)
        of_means = abs(interval.mean - ref_mean)
    return ComparedMetric(interval, delta, of_means)


def _costs(rs: Sequence[Record], reference: Mapping[int, Record]) -> MeanCosts:
    mean = {
        cost: sum(float(getattr(r, cost)) for r in rs) / len(rs)
        for cost in ("comm_bytes", "flops", "storage_bytes", "rounds", "seconds")
    }
    ratio: dict[str, float | None] = {}
    for cost in ("comm_bytes", "flops"):
        ratios = [
            getattr(r, cost) / getattr(reference[r.seed], cost)
            for r in rs
            if r.seed in reference and getattr(reference[r.seed], cost) > 0
        ]
        ratio[cost] = sum(ratios) / len(ratios) if ratios else None
    oracle = [
        r.comm_to_target / reference[r.seed].comm_bytes
        for r in rs
        if r.comm_to_target is not None and r.seed in reference and reference[r.seed].comm_bytes
    ]
    return MeanCosts(
        **mean,
        comm_bytes_ratio=ratio["comm_bytes"],
        flops_ratio=ratio["flops"],
        rounds_to_target=tuple(r.rounds_to_target for r in rs),
        comm_to_target_ratio=sum(oracle) / len(oracle) if oracle else None,
    )
