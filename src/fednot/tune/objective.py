"""The tuner's objective: the mean average gap to Retrain over the validation seeds.

`ValidationBench` holds one `fednot.benchmark.experiment.Experiment` per validation seed.
Pre-training and Retrain run once per seed (through the model cache, so a resumed or repeated tuning
reuses them); each trial then unlearns with the method at the trial's values, evaluates, and takes
the average gap to that seed's Retrain exactly as ``fednot bench`` does
(`fednot.benchmark.results.with_gaps` over `fednot.benchmark.cells.make_record`). A trial whose step
or recovery diverges on a validation seed stops there, scores +inf and names that seed
(`TrialResult.diverged_seed`): the tuner rejects it (docs/tuning.md, "Rejection").
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from fednot.benchmark.cells import make_record
from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import REFERENCE, Record, with_gaps
from fednot.benchmark.runner import history_union
from fednot.config import RunConfig
from fednot.errors import DivergenceError
from fednot.federation.outcome import Trained
from fednot.metrics.gaps import GAP_METRICS
from fednot.progress import Progress, Silent
from fednot.tune.validation import trial_config
from fednot.unlearning.base import Unlearner
from fednot.unlearning.registry import create_unlearner


@dataclass(frozen=True)
class TrialResult:
    """One trial's outcome.

    Attributes:
        objective: the mean over validation seeds of the average gap to Retrain; +inf if the
            method diverged on a seed.
        gaps: validation seed → average gap (the seeds done before a divergence).
        metrics: validation seed → the four gap metrics (retain, forget, test accuracy, MIA).
        seconds: wall time of the trial.
        error: why the trial failed ("": it did not).
        diverged_seed: the validation seed on which the method diverged (the trial stopped
            there), or None.
    """

    objective: float
    gaps: dict[int, float] = field(default_factory=dict)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    diverged_seed: int | None = None


@dataclass(frozen=True)
class _Cell:
    """One validation seed: its experiment, the pre-trained model and Retrain's record."""

    experiment: Experiment
    trained: Trained
    retrain: Record


class ValidationBench:
    """Runs trials on the validation request of ``config`` (`fednot.tune.validation`).

    Args:
        config: the validation configuration (`validation_config`): its seeds and request are
            the validation's, its ``unlearn.methods`` Retrain and the methods to tune.
        methods: the methods to tune, whose histories pre-training records (once for all).
        progress: where the engine's progress lines go.
    """

    def __init__(
        self, config: RunConfig, methods: Sequence[Unlearner], progress: Progress | None = None
    ) -> None:
        self.config = config
        self.methods = list(methods)
        self.progress = progress or Silent()
        self._first: Experiment | None = None
        self._cells: dict[int, _Cell] = {}

    def model(self) -> nn.Module:
        """The model (to resolve model-dependent spaces); checks methods and request first."""
        return self._first_experiment().model

    def _first_experiment(self) -> Experiment:
        if self._first is None:
            exp = Experiment(self.config, self.config.seeds[0], progress=self.progress)
            for method in self.methods:
                method.validate(exp.model)  # fail before any training
            exp.check_request()
            self._first = exp
        return self._first

    def prepare(self) -> None:
        """Pre-train and run Retrain on every validation seed (cached), before the trials."""
        for seed in self.config.seeds:
            self._cell(seed)

    def reference(self) -> dict[int, dict[str, float]]:
        """Validation seed → Retrain's four gap metrics (the seeds prepared so far)."""
        return {seed: gap_metrics(cell.retrain) for seed, cell in self._cells.items()}

    def prepared(self, seed: int) -> tuple[Experiment, Trained, Record]:
        """Seed ``seed``'s experiment, pre-trained model and Retrain's record (cached)."""
        cell = self._cell(seed)
        return cell.experiment, cell.trained, cell.retrain

    def _cell(self, seed: int) -> _Cell:
        cell = self._cells.get(seed)
        if cell is not None:
            return cell
        first = self._first_experiment()
        exp = first if seed == first.seed else Experiment(self.config, seed, progress=self.progress)
        exp.check_request()
        trained = exp.pretrain(history=history_union(self.methods))
        outcome = exp.unlearn(trained, exp.scenario.request, REFERENCE)
        metrics = exp.evaluate(outcome.state)
        record = make_record(REFERENCE, "Retrain", exp, metrics, outcome, metrics.val_acc, "none")
        self._cells[seed] = cell = _Cell(exp, trained, record)
        return cell

    def run(
        self, method: str, params: Mapping[str, Any], seeds: Sequence[int] | None = None
    ) -> TrialResult:
        """Unlearn with ``method`` at ``params`` on every validation seed; the mean gap.

        ``params`` holds constructor options and, for a method with recovery,
        ``recovery_lr`` (`fednot.tune.validation.trial_config`). ``seeds`` runs only these of
        the configuration's seeds (`fednot analyze sensitivity` runs one seed per call).
        """
        config = trial_config(self.config, method, params)
        unlearner = create_unlearner(method, config.options.get(method))
        title = type(unlearner).title or unlearner.name
        gaps: dict[int, float] = {}
        metrics: dict[int, dict[str, float]] = {}
        start = time.perf_counter()
        current: int | None = None
        try:
            for seed in self.config.seeds if seeds is None else seeds:
                current = seed
                cell = self._cell(seed)
                exp = _with_config(cell.experiment, config)
                outcome = exp.unlearn(
                    cell.trained,
                    exp.scenario.request,
                    unlearner,
                    reference_val_acc=cell.retrain.get("val_acc"),
                )
                measured = exp.evaluate(outcome.state)
                record = make_record(unlearner.name, title, exp, measured, outcome, None, "")
                scored = with_gaps([cell.retrain, record])[1]
                assert scored.avg_gap is not None
                gaps[seed] = scored.avg_gap
                metrics[seed] = gap_metrics(scored)
        except DivergenceError as error:
            seconds = time.perf_counter() - start
            return TrialResult(math.inf, gaps, metrics, seconds, str(error), current)
        objective = sum(gaps.values()) / len(gaps)
        return TrialResult(objective, gaps, metrics, time.perf_counter() - start)


def _with_config(experiment: Experiment, config: RunConfig) -> Experiment:
    """``experiment`` (sharing its data, model and cache) under a trial's ``config``.

    A trial changes ``[unlearn]`` and ``[options]`` only, on which neither the federation, the
    model, the seed streams nor the cache keys of pre-training and Retrain depend.
    """
    base = experiment.config
    fixed = ("data", "model", "train", "eval", "scenario", "seeds", "device", "cache_dir")
    changed = [name for name in fixed if getattr(base, name) != getattr(config, name)]
    assert not changed, f"a trial may not change {changed}"
    twin = copy.copy(experiment)
    twin.config = config
    return twin


def gap_metrics(record: Record) -> dict[str, float]:
    """A record's four gap metrics (retain, forget, test accuracy, MIA) by name."""
    return {m: record.value(m) for m in GAP_METRICS}
