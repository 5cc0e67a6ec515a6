"""Which recovery rounds are evaluated for a trajectory, so every cost reading is exact.

A run's trajectory (`fednot.benchmark.trajectory`) gets a point every ``eval.curve_every``
rounds, and
besides those:

- the last round within each cost point (25, 50, 100 % of Retrain's communication and of its
  FLOPs), so that no method is read earlier than its budget allows because the grid skipped
  that round. Whether round r is the last within a budget is known once round r + 1 has
  exceeded it; the recorder keeps a copy of the previous round's model until then and
  evaluates that copy (one state in memory, no extra training);
- the final model, whatever round the run stopped at (budget, patience or target), so the
  last point of a trajectory is always the model the table evaluates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from fednot.benchmark.trajectory import Point, kind_of, reading_rounds
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import Costs
from fednot.federation.fedavg import RoundRecord, TrainLog
from fednot.metrics.gaps import GAP_METRICS
from fednot.types import StateDict

Measure = Callable[[StateDict], dict[str, float]]


class CurveRecorder:
    """The per-round hook of one run: grid points, cost-point rounds, and the final model.

    Args:
        measure: a trajectory point's metrics of a state
            (`fednot.benchmark.evaluation.curve_point`).
        every: evaluate every this many rounds (at least 1).
        limits: cost point key → budget in bytes or FLOPs
            (`fednot.benchmark.trajectory.budgets`); empty for a run that is not read at cost
            points (Retrain).
        step: the method's step costs (round 0's cumulative cost); round 0 itself is measured
            by the caller.
    """

    def __init__(
        self, measure: Measure, every: int, limits: Mapping[str, float], step: Costs
    ) -> None:
        if every < 1:
            raise ValueError(f"A curve recorder needs every >= 1, got {every}.")
        self.measure, self.every, self.limits = measure, every, dict(limits)
        self.costs = [Point(0, step.comm_bytes, step.flops, {})]
        self.evaluated = {0}
        self.late: dict[int, dict[str, float]] = {}
        self._previous: StateDict | None = None

    def __call__(self, round_: int, state: StateDict, record: RoundRecord) -> dict[str, float]:
        """After ``round_``: evaluate what is due, and keep the model if a budget may need it."""
        last = self.costs[-1]
        self.costs.append(
            Point(round_, last.comm_bytes + record.comm_bytes, last.flops + record.flops, {})
        )
        for due in sorted(reading_rounds(self.costs, self.limits) - self.evaluated):
            if self._previous is None or due != round_ - 1:  # cannot happen: kept until crossed
                raise RuntimeError(f"round {due} is a cost point's reading but was not kept")
            self.late[due] = self.measure(self._previous)
            self.evaluated.add(due)
        self._previous = None
        out: dict[str, float] = {}
        if round_ % self.every == 0:
            out = self.measure(state)
            self.evaluated.add(round_)
        elif self._pending():
            self._previous = clone_state(state)
        return out

    def _pending(self) -> bool:
        """Whether some budget has not been exceeded yet (its reading round is still open)."""
        now = self.costs[-1]
        return any(now.cost(kind_of(key)) <= budget for key, budget in self.limits.items())

    def complete(self, log: TrainLog, final: StateDict) -> TrainLog:
        """``log`` with the late cost-point readings, and the final model measured if it was not."""
        return complete_log(log, final, self.measure, self.late)


def complete_log(
    log: TrainLog, final: StateDict, measure: Measure, late: Mapping[int, dict[str, float]] = {}
) -> TrainLog:
    """``log`` with ``late`` points merged into their rounds and the last round measured."""
    rounds: list[RoundRecord] = []
    for record in log.rounds:
        extra = {**record.extra, **late.get(record.round, {})}
        rounds.append(replace(record, extra=extra) if extra != record.extra else record)
    if rounds and not all(m in rounds[-1].extra for m in GAP_METRICS):
        rounds[-1] = replace(rounds[-1], extra={**rounds[-1].extra, **measure(final)})
    return TrainLog(rounds, log.stop_reason)
