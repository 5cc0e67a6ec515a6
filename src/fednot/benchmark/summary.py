"""The typed summary of one method over seeds, as `fednot.benchmark.comparison.summarize` gives it.

Every reader of a run's summary (the tables, statements, warnings, figures, the terminal) reads
a `MethodSummary`. ``results.json`` keeps its documented layout: its ``summary`` list holds each
row's `MethodSummary.to_dict` form, one flat object per method (docs/cli.md), written at one place
(`fednot.benchmark.runner.Run`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fednot.benchmark.paired import Comparison
from fednot.benchmark.stats import Interval
from fednot.metrics.metric import Summary
from fednot.metrics.registry import registered


@dataclass(frozen=True)
class ComparedMetric:
    """A `Summary.COMPARED` metric over seeds: its interval and its difference to Retrain.

    Attributes:
        interval: the mean over seeds and its 95 % CI.
        delta: the paired difference to the same seeds' Retrain (``None``: no Retrain seed).
        delta_of_means: |mean − Retrain's mean over the same seeds| (``None``: no Retrain).
    """

    interval: Interval
    delta: Interval | None
    delta_of_means: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the interval's keys, ``delta``, and ``delta_of_means`` where there is one."""
        out = self.interval.to_dict()
        out["delta"] = None if self.delta is None else self.delta.to_dict()
        if self.delta_of_means is not None:
            out["delta_of_means"] = self.delta_of_means
        return out


@dataclass(frozen=True)
class DivergedSeed:
    """A seed on which a method diverged, and why."""

    seed: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"seed", "reason"}``."""
        return {"seed": self.seed, "reason": self.reason}


@dataclass(frozen=True)
class MeanCosts:
    """A method's costs, means over its seeds (the unlearning step plus recovery).

    Attributes:
        comm_bytes: communication (bytes).
        flops: training FLOPs.
        storage_bytes: history the server keeps for the method.
        rounds: recovery rounds run.
        seconds: wall-clock time.
        comm_bytes_ratio: communication relative to the same seed's Retrain (``None``: none).
        flops_ratio: FLOPs relative to the same seed's Retrain (``None``: none).
        rounds_to_target: per seed, the oracle's first round at Retrain's validation accuracy.
        comm_to_target_ratio: the communication to that round relative to Retrain's.
    """

    comm_bytes: float
    flops: float
    storage_bytes: float
    rounds: float
    seconds: float
    comm_bytes_ratio: float | None
    flops_ratio: float | None
    rounds_to_target: tuple[int | None, ...]
    comm_to_target_ratio: float | None

    def ratio(self, cost: str) -> float | None:
        """``comm_bytes_ratio`` or ``flops_ratio`` by the cost's name."""
        return {"comm_bytes": self.comm_bytes_ratio, "flops": self.flops_ratio}[cost]


PairedComparisons = Mapping[str, Mapping[str, Comparison | None]]
"""Reference → reading point → the comparison with it (``None``: no common seed)."""


@dataclass(frozen=True)
class MethodSummary:
    """One row of a run's summary: a method over its seeds.

    Attributes:
        method: the row's name (a method's ``name``, ``original``, ``retrain``, ...).
        title: its title in tables.
        seeds: the seeds with values (the others diverged).
        requirements: what the method needs beyond the global model, in words.
        diverged: the seeds it diverged on, with the reasons.
        compared: each `Summary.COMPARED` metric by registered name (``None``: no seed has it).
        intervals: each `Summary.INTERVAL` metric by registered name.
        means: each `Summary.MEAN` metric by registered name (a noise floor).
        avg_gap: the mean per-seed average gap to Retrain (``None``: no Retrain).
        avg_gap_of_means: the NoT paper's convention, the mean of the Δ of the means.
        gap_at: reading point → the average gap read there (``None``: no reading).
        beyond_run: cost point → seeds whose run ended before that cost.
        inexact: cost point → seeds not read at their last round within the cost.
        paired: the paired comparisons with NoT, FT and Retrain′.
        costs: the mean costs (``None``: diverged on every seed).
    """

    method: str
    title: str
    seeds: tuple[int, ...]
    requirements: str
    diverged: tuple[DivergedSeed, ...]
    compared: Mapping[str, ComparedMetric | None]
    intervals: Mapping[str, Interval | None]
    means: Mapping[str, float | None]
    avg_gap: Interval | None
    avg_gap_of_means: float | None
    gap_at: Mapping[str, Interval | None]
    beyond_run: Mapping[str, tuple[int, ...]]
    inexact: Mapping[str, tuple[int, ...]]
    paired: PairedComparisons
    costs: MeanCosts | None

    def interval(self, metric: str) -> Interval | None:
        """A compared or interval metric's mean and CI (``None``: no value, or another kind)."""
        compared = self.compared.get(metric)
        return compared.interval if compared is not None else self.intervals.get(metric)

    def mean(self, metric: str) -> float | None:
        """A `Summary.MEAN` metric's mean over seeds (``None``: no value, or another kind)."""
        return self.means.get(metric)

    def has(self, metric: str) -> bool:
        """Whether the row shows ``metric``: an interval, or a nonzero mean."""
        return self.interval(metric) is not None or bool(self.mean(metric))

    def to_dict(self) -> dict[str, Any]:
        """The row's form in ``results.json`` (the layout docs/cli.md documents)."""
        out: dict[str, Any] = {
            "method": self.method,
            "title": self.title,
            "seeds": list(self.seeds),
            "requirements": self.requirements,
            "diverged": [d.to_dict() for d in self.diverged],
        }
        out.update(self._metrics_dict())
        out["avg_gap"] = _interval_dict(self.avg_gap)
        out["avg_gap_of_means"] = self.avg_gap_of_means
        readings = {
            "gap_at": {k: _interval_dict(v) for k, v in self.gap_at.items()},
            "beyond_run": {k: list(v) for k, v in self.beyond_run.items()},
            "inexact": {k: list(v) for k, v in self.inexact.items()},
            "paired": {
                ref: {k: None if c is None else c.to_dict() for k, c in points.items()}
                for ref, points in self.paired.items()
            },
        }
        costs = self.costs
        if costs is None:  # diverged on every seed: the costs' keys come first, without values
            names = ("comm_bytes", "flops", "storage_bytes", "rounds", "seconds")
            ratios = ("comm_bytes_ratio", "flops_ratio", "comm_to_target_ratio")
            return {**out, **dict.fromkeys((*names, *ratios)), **readings, "rounds_to_target": []}
        return {
            **out,
            **readings,
            "comm_bytes": costs.comm_bytes,
            "flops": costs.flops,
            "storage_bytes": costs.storage_bytes,
            "rounds": costs.rounds,
            "seconds": costs.seconds,
            "comm_bytes_ratio": costs.comm_bytes_ratio,
            "flops_ratio": costs.flops_ratio,
            "rounds_to_target": list(costs.rounds_to_target),
            "comm_to_target_ratio": costs.comm_to_target_ratio,
        }

    def _metrics_dict(self) -> dict[str, Any]:
        """Every summarised registered metric's JSON form, in registry order."""
        out: dict[str, Any] = {}
        for metric in registered():
            if metric.summary is Summary.COMPARED:
                compared = self.compared.get(metric.name)
                out[metric.name] = None if compared is None else compared.to_dict()
            elif metric.summary is Summary.INTERVAL:
                out[metric.name] = _interval_dict(self.intervals.get(metric.name))
            elif metric.summary is Summary.MEAN:
                out[metric.name] = self.means.get(metric.name)
        return out


def _interval_dict(value: Interval | None) -> dict[str, Any] | None:
    return None if value is None else value.to_dict()


def summary_json(summary: list[MethodSummary]) -> list[dict[str, Any]]:
    """``results.json``'s ``summary``: each row's `MethodSummary.to_dict`."""
    return [row.to_dict() for row in summary]
