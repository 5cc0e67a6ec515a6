"""A method's recovery as a trajectory: metrics against cumulative cost (docs/protocol.md).

Each unlearning run logs every recovery round's communication and FLOPs, and the four metrics
of the rounds it evaluated (its curve points). A trajectory turns the log into points (round,
cumulative bytes, cumulative FLOPs, metrics), where the cumulative cost starts with the
method's own step (FedEraser's calibration, PGD's projected ascent, ...) and round 0 is the
model right after the step, before any recovery round.

Reading a trajectory at a cost point (e.g. 50 % of Retrain's communication, or of its FLOPs)
takes the last evaluated model whose cumulative cost does not exceed it: the model a server
holds when it has spent at most that much. Nothing is interpolated between rounds (no such
model exists). The reading is *exact* when that model is the last round within the cost: the
engine evaluates that round for every cost point it is given (`reading_rounds`), so an
evaluation grid (``eval.curve_every``) never makes a method read early. A cost below the
method's step cost has no model (``None``); a cost beyond the method's last round reads its
final model, flagged as beyond the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fednot.benchmark.runlog import CellLog
from fednot.metrics.gaps import GAP_METRICS

COST_POINTS: tuple[float, ...] = (0.25, 0.5, 1.0)
"""Fractions of Retrain's cost at which every method is read."""

CostKind = Literal["comm", "flops"]
COST_KINDS: tuple[CostKind, ...] = ("comm", "flops")
"""Communication (bytes) and computation (training FLOPs): each has its own cost points."""


def cost_key(fraction: float, kind: CostKind = "comm") -> str:
    """The JSON key of a cost point: ``comm25`` for 25 % of Retrain's communication."""
    return f"{kind}{round(fraction * 100)}"


def cost_keys(kind: CostKind | None = None) -> tuple[str, ...]:
    """Every cost point's key (of one kind, or of both: communication first)."""
    kinds = COST_KINDS if kind is None else (kind,)
    return tuple(cost_key(f, k) for k in kinds for f in COST_POINTS)


def point_header(key: str) -> str:
    """A cost point's column header: ``@25 % comm.`` for ``comm25``, ``@50 % FLOPs``."""
    kind = kind_of(key)
    return f"@{key.removeprefix(kind)} % {'comm.' if kind == 'comm' else 'FLOPs'}"


def kind_of(key: str) -> CostKind:
    """The cost kind of a cost point's key."""
    return "flops" if key.startswith("flops") else "comm"


def budgets(reference_comm: int, reference_flops: int) -> dict[str, float]:
    """Every cost point in absolute units (bytes, FLOPs) for a Retrain that cost this much.

    A kind Retrain spent nothing of (centralized: no communication) has no cost points.
    """
    totals = {"comm": reference_comm, "flops": reference_flops}
    return {cost_key(f, k): f * totals[k] for k in COST_KINDS if totals[k] > 0 for f in COST_POINTS}


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

    def cost(self, kind: CostKind) -> int:
        """The cumulative cost of this kind."""
        return self.comm_bytes if kind == "comm" else self.flops

    def gap(self, reference: Mapping[str, float]) -> float:
        """Average gap to ``reference`` (Retrain's metrics): mean of the four |Δ|."""
        return sum(abs(self.metrics[m] - reference[m]) for m in GAP_METRICS) / len(GAP_METRICS)


@dataclass(frozen=True)
class Trajectory:
    """A run's evaluated points, and the cumulative cost after every round (evaluated or not).

    ``costs[r]`` is the point-less cost after round ``r`` (``costs[0]``: the step alone).
    """

    points: tuple[Point, ...]
    costs: tuple[Point, ...]

    @property
    def last(self) -> Point | None:
        """The last evaluated point (the final model, when the run evaluated it)."""
        return self.points[-1] if self.points else None


def trajectory(log: CellLog, *, step_comm_bytes: int, step_flops: int) -> Trajectory:
    """The trajectory of one cell's log.

    Rounds without all four metrics (not evaluated) add their cost but no point.
    """
    points, costs = [], [Point(0, step_comm_bytes, step_flops, {})]
    if all(m in log.start for m in GAP_METRICS):
        points.append(Point(0, step_comm_bytes, step_flops, dict(log.start)))
    comm, flops = step_comm_bytes, step_flops
    for record in log.rounds:
        comm += record.comm_bytes
        flops += record.flops
        costs.append(Point(record.round, comm, flops, {}))
        if all(m in record.metrics for m in GAP_METRICS):
            points.append(Point(record.round, comm, flops, dict(record.metrics)))
    return Trajectory(tuple(points), tuple(costs))


@dataclass(frozen=True)
class Reading:
    """A trajectory read at a cost.

    Attributes:
        point: the model read.
        beyond_run: the run ended before spending that much (its final model is read).
        exact: the model read is the run's last round within the cost, so the method is not
            read earlier than its budget allows. False only for logs whose evaluation grid
            skipped that round (results written before exact readings existed).
    """

    point: Point
    beyond_run: bool
    exact: bool


def read_at_cost(run: Trajectory, budget: float, kind: CostKind = "comm") -> Reading | None:
    """The last evaluated point whose cumulative cost of ``kind`` is at most ``budget``.

    Returns:
        ``None`` when no evaluated model costs that little (the step alone costs more).
    """
    chosen = None
    for point in run.points:
        if point.cost(kind) <= budget:
            chosen = point
    if chosen is None:
        return None
    within = [c.round for c in run.costs if c.cost(kind) <= budget]
    total = run.costs[-1].cost(kind)
    return Reading(
        chosen, beyond_run=budget > total, exact=bool(within) and chosen.round == within[-1]
    )


def read_cost_points(
    run: Trajectory, reference_comm: int, reference_flops: int
) -> dict[str, Reading | None]:
    """The trajectory read at each cost point of a Retrain that cost this much (`budgets`).

    Keys are `cost_keys`; a kind Retrain spent nothing of reads ``None`` at each of its points.
    """
    limits = budgets(reference_comm, reference_flops)
    return {
        key: read_at_cost(run, limits[key], kind_of(key)) if key in limits else None
        for key in cost_keys()
    }


def reading_rounds(costs: Sequence[Point], limits: Mapping[str, float]) -> set[int]:
    """The rounds whose model a cost point reads: per budget, the last round within it.

    ``costs`` is the cumulative cost after each round so far (`Trajectory.costs`, round 0
    first). A budget not yet exceeded has no round yet (the run may still spend more).
    """
    rounds = set()
    for key, budget in limits.items():
        kind = kind_of(key)
        within = [c.round for c in costs if c.cost(kind) <= budget]
        if within and costs[-1].cost(kind) > budget:
            rounds.add(within[-1])
    return rounds
