"""A method's recovery as a trajectory: metrics against cumulative cost (docs/protocol.md).

Each unlearning run logs, per evaluated round, the four metrics (its curve points) and that
round's communication and FLOPs. A trajectory turns the log into points (round, cumulative
bytes, cumulative FLOPs, metrics), where the cumulative cost starts with the method's own step
(FedEraser's calibration, PGD's projected ascent, ...) and round 0 is the model right after
the step, before any recovery round.

Reading a trajectory at a cost point (e.g. 50 % of Retrain's communication) takes the last
evaluated model whose cumulative cost does not exceed it: the model a server holds when it has
spent at most that much. Nothing is interpolated between rounds (no such model exists). A cost
below the method's step cost has no model (``None``); a cost beyond the method's last round
reads its final model, flagged as beyond the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fednot.metrics.gaps import GAP_METRICS

COST_POINTS: tuple[float, ...] = (0.25, 0.5, 1.0)
"""Fractions of Retrain's communication at which every method is read."""


def cost_key(fraction: float) -> str:
    """The JSON key of a cost point: ``comm25`` for 25 % of Retrain's communication."""
    return f"comm{round(fraction * 100)}"


@dataclass(frozen=True)
class Point:
    """One evaluated model along a recovery.

    Attributes:
        round: recovery rounds done (0: right after the method's step).
        comm_bytes: cumulative communication, the step's included.
        flops: cumulative training FLOPs, the step's included.
        metrics: the four metrics of `GAP_METRICS` (percent).
    """

    round: int
    comm_bytes: int
    flops: int
    metrics: Mapping[str, float]

    def gap(self, reference: Mapping[str, float]) -> float:
        """Average gap to ``reference`` (Retrain's final metrics): mean of the four |Δ|."""
        return sum(abs(self.metrics[m] - reference[m]) for m in GAP_METRICS) / len(GAP_METRICS)


def trajectory(log: Mapping[str, Any], *, step_comm_bytes: int, step_flops: int) -> list[Point]:
    """The evaluated points of one run's log (``results.json`` ``logs[...]``).

    Rounds without all four metrics (not evaluated: ``eval.curve_every > 1``) add their cost
    but no point.
    """
    points = []
    start = log.get("start") or {}
    if all(m in start for m in GAP_METRICS):
        points.append(Point(0, step_comm_bytes, step_flops, dict(start)))
    comm, flops = step_comm_bytes, step_flops
    for record in log.get("rounds", []):
        comm += int(record["comm_bytes"])
        flops += int(record["flops"])
        extra = record.get("extra") or {}
        if all(m in extra for m in GAP_METRICS):
            points.append(Point(int(record["round"]), comm, flops, dict(extra)))
    return points


@dataclass(frozen=True)
class Reading:
    """A trajectory read at a cost: the point, and whether the run ended before that cost."""

    point: Point
    beyond_run: bool


def read_at_cost(points: Sequence[Point], budget: float, run_comm: int) -> Reading | None:
    """The last point whose cumulative communication is at most ``budget`` bytes.

    Args:
        points: the trajectory, in round order.
        budget: the cost point in bytes.
        run_comm: the run's total communication; ``beyond_run`` is set when ``budget`` exceeds
            it (the run ended before spending that much, so its final model is read).

    Returns:
        ``None`` when no evaluated model costs that little (the step alone costs more).
    """
    chosen = None
    for point in points:
        if point.comm_bytes <= budget:
            chosen = point
    if chosen is None:
        return None
    return Reading(chosen, beyond_run=budget > run_comm)


def read_cost_points(
    points: Sequence[Point], reference_comm: int, run_comm: int
) -> dict[str, Reading | None]:
    """The trajectory read at each of `COST_POINTS` of ``reference_comm`` (Retrain's bytes).

    Keys are `cost_key` names; every value is ``None`` when Retrain sent nothing (centralized:
    no cost point exists).
    """
    return {
        cost_key(fraction): (
            read_at_cost(points, fraction * reference_comm, run_comm)
            if reference_comm > 0
            else None
        )
        for fraction in COST_POINTS
    }
