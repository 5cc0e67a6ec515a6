"""Trade-off curves: each method's average gap against its cost, pooled over seeds per round.

Every unlearning cell's log (`fednot.benchmark.runlog.CellLog`, filed by `CellKey`) becomes a
trajectory read against the same seed's Retrain (`CurveRun`); `pool_curves` pools the runs of a
method round by round into `CurvePoint` rows, which ``results.json`` keeps under ``tradeoff`` and
``tradeoff.png`` draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fednot.benchmark.results import ORIGINAL, REFERENCE, RETRAIN_FLOOR, Record
from fednot.benchmark.runlog import CellKey, Logs
from fednot.benchmark.stats import mean_ci
from fednot.benchmark.trajectory import Trajectory, trajectory
from fednot.metrics.gaps import GAP_METRICS


@dataclass(frozen=True)
class CurveRun:
    """One run's trajectory with the Retrain it is measured against (its seed's)."""

    label: str
    trajectory: Trajectory
    reference: Mapping[str, float]
    reference_comm_bytes: int


@dataclass(frozen=True)
class CurvePoint:
    """One round of a pooled curve.

    Attributes:
        round: the recovery round (0: right after the step).
        x: the mean over runs of the cumulative communication relative to the run's Retrain.
        gap: the mean average gap to Retrain.
        low: the 95 % CI's lower bound (NaN for one run).
        high: its upper bound (NaN for one run).
        n: the number of runs pooled.
    """

    round: int
    x: float
    gap: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``round``, ``x``, ``gap``, ``low``, ``high``, ``n``."""
        return asdict(self)


Curves = dict[str, list[CurvePoint]]
"""Label (a method's name) → its pooled curve, round by round."""


def curves_json(curves: Curves) -> dict[str, list[dict[str, Any]]]:
    """``results.json``'s ``tradeoff``: label → each point's `CurvePoint.to_dict`."""
    return {label: [p.to_dict() for p in curve] for label, curve in curves.items()}


def curve_runs(records: Sequence[Record], logs: Logs) -> list[tuple[int, CurveRun]]:
    """(seed, run) for every unlearning record with a log: its trajectory and its seed's Retrain.

    The reference is Retrain's final model measured as the trajectory's points are (the last
    point of Retrain's own trajectory: the same samples when ``eval.curve_subset`` cuts the
    sets); without one, Retrain's table metrics. Retrain′ (a retrain from scratch) has no curve.
    """
    reference = {r.seed: r for r in records if r.method == REFERENCE}
    runs = []
    for record in records:
        ref = reference.get(record.seed)
        log = logs.get(CellKey(record.method, record.seed))
        skipped = record.method in (ORIGINAL, REFERENCE, RETRAIN_FLOOR)
        if skipped or ref is None or log is None or record.diverged:
            continue
        run = trajectory(log, step_comm_bytes=record.step_comm_bytes, step_flops=record.step_flops)
        ref_metrics: Mapping[str, float] = {m: ref.value(m) for m in GAP_METRICS}
        ref_log = logs.get(CellKey(REFERENCE, record.seed))
        ref_last = (
            None if ref_log is None else trajectory(ref_log, step_comm_bytes=0, step_flops=0).last
        )
        if ref_last is not None and ref_last.round == ref.rounds:
            ref_metrics = ref_last.metrics
        runs.append((record.seed, CurveRun(record.method, run, ref_metrics, ref.comm_bytes)))
    return runs


def tradeoff_curves(records: Sequence[Record], logs: Logs) -> Curves:
    """Method → per evaluated round: communication relative to Retrain and the average gap.

    See `pool_curves`; each (method, seed) run is read against that seed's Retrain.
    """
    return pool_curves([run for _, run in curve_runs(records, logs)])


def pool_curves(runs: Sequence[CurveRun]) -> Curves:
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
    curves: Curves = {}
    for label, by_round in pooled.items():
        curve = []
        for round_, values in sorted(by_round.items()):
            gap = mean_ci([g for _, g in values])
            x = sum(c for c, _ in values) / len(values)
            curve.append(CurvePoint(round_, x, gap.mean, gap.low, gap.high, gap.n))
        curves[label] = curve
    return curves
