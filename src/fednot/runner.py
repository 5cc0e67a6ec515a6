"""The whole pipeline behind ``fednot run``.

For each seed: pre-train, unlearn with each method, evaluate, and write the run directory.

Run directory::

    config.toml            the resolved configuration
    partition-seed<S>.json which training samples each client holds (and the test hold-out)
    results.json           records (one per method and seed), summary with CIs and paired
                           comparisons, trade-off curves, per-round logs (trajectories)
    results.md             the table, paired differences, the statements they support
    results.png            each metric's Δ to Retrain with 95 % CIs
    tradeoff.png           average gap against communication relative to Retrain
    models/<method>-seed<S>.pt   final global models (``save_models = true``)

``results.json`` is rewritten after every (method, seed) cell, so an interrupted run loses at
most the cell in progress; running the same command on the same directory again skips the cells
already done (pre-training and Retrain also resume from the model cache). It is strict JSON: a
missing or undefined number (a one-seed interval's bounds) is ``null``.

A method whose step or recovery diverges (`fednot.errors.DivergenceError`) is recorded as
diverged with the reason and the run goes on; the cell counts as done (it is deterministic).
Pre-training or Retrain diverging ends the run with the error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from fednot.cache import atomic_save, atomic_write_text, read_json_state
from fednot.comparison import summarize, tradeoff_curves
from fednot.config import RunConfig
from fednot.config_rules import check_recovery_lr
from fednot.configio import to_dict, to_toml
from fednot.errors import ConfigError, DivergenceError
from fednot.evaluation import Metrics
from fednot.experiment import Experiment
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import Costs
from fednot.federation.history import HistorySpec
from fednot.outcome import Trained, UnlearnOutcome
from fednot.plots import delta_chart, tradeoff_chart
from fednot.progress import Progress, Silent
from fednot.report import describe_setup, report_markdown
from fednot.results import (
    ORIGINAL,
    REFERENCE,
    RETRAIN_FLOOR,
    Record,
    csv_text,
    json_safe,
    rounds_to_target,
    with_gaps,
)
from fednot.tables import noise_floor
from fednot.unlearning.base import Unlearner
from fednot.unlearning.registry import create_unlearner
from fednot.version import __version__

FLOOR_TRAINING_SEED = 1
"""Retrain′'s training seed (`Experiment.reseeded`): initial weights and client streams."""
FLOOR_TITLE = "Retrain′ (another training seed)"


def default_run_dir(config: RunConfig) -> Path:
    """``<out_dir>/<dataset>-<model>-<timestamp>`` (import strings' ``:`` and ``.`` as ``-``)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config.data.dataset}-{config.model.name}"
    return Path(config.out_dir) / f"{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}-{stamp}"


def history_union(methods: Iterable[Unlearner]) -> HistorySpec | None:
    """What pre-training must record for ``methods`` (``None``: nothing)."""
    spec = HistorySpec()
    for method in methods:
        wanted = method.history_spec()
        if wanted is not None and method.requirements.history:
            spec = spec.union(wanted)
    return None if spec.empty else spec


def methods_of(config: RunConfig) -> list[str]:
    """The configured methods, with Retrain first (it is every gap's reference)."""
    return [REFERENCE, *(m for m in config.unlearn.methods if m != REFERENCE)]


def create_methods(config: RunConfig) -> dict[str, Unlearner]:
    """The configured methods, built with ``options[<configured string>]``, keyed by `name`.

    Records, resumption and tables know a method by its class's ``name``, whether configured as
    that name, an entry point or ``"pkg.module:Class"``; two entries of one ``name`` are refused.
    """
    methods: dict[str, Unlearner] = {}
    taken = {ORIGINAL: "the original model's record"}
    for entry in dict.fromkeys(methods_of(config)):
        method = create_unlearner(entry, config.options.get(entry))
        if method.name in taken:
            raise ConfigError(
                f"unlearn.methods entry {entry!r} is a method named {method.name!r}, like "
                f"{taken[method.name]}; records are keyed by the name, so each needs its own. "
                "Keep one of them, or give the other class another `name`."
            )
        taken[method.name] = f"entry {entry!r}"
        methods[method.name] = method
        check_recovery_lr(config, entry, method)
    return methods


class Run:
    """Executes a `RunConfig` into a run directory; see the module docstring."""

    def __init__(self, config: RunConfig, run_dir: Path, *, progress: Progress | None = None):
        self.config = config
        self.run_dir = run_dir
        self.progress = progress or Silent()
        self.records: list[Record] = []
        self.logs: dict[str, Any] = {}
        self.requests: dict[str, Any] = {}
        self.not_applicable: dict[str, str] = {}
        self._resume()

    def _resume(self) -> None:
        previous = read_json_state(self.run_dir / "results.json")
        if previous is None:
            return
        if previous.get("config") != to_dict(self.config):
            raise ConfigError(
                f"{self.run_dir} holds a run with another configuration; choose another --out "
                "(or delete the folder) to start a new run."
            )
        self.records = [Record.from_dict(r) for r in previous.get("records", [])]
        self.logs = previous.get("logs", {})
        self.requests = previous.get("requests", {})
        if self.records:
            self.progress.phase(f"resuming {self.run_dir}: {len(self.records)} cells already done")

    def _done(self, method: str, seed: int) -> Record | None:
        return next((r for r in self.records if r.method == method and r.seed == seed), None)

    def execute(self) -> list[dict[str, Any]]:
        """Run every (method, seed) cell not yet done; return the summary.

        Everything that can be checked is checked before the run folder is written: the
        methods, their options against the model, the first pending seed's data and request.
        """
        methods = create_methods(self.config)
        kind = self.config.scenario.kind
        self.not_applicable = {
            name: reason
            for name, method in methods.items()
            if (reason := method.not_applicable(kind)) is not None
        }
        for name, reason in self.not_applicable.items():
            self.progress.info(f"skipping {name}: {reason}")
            del methods[name]
        pending = [s for s in self.config.seeds if not self._seed_done(s, methods)]
        checked = {seed: self._experiment(seed, methods.values()) for seed in pending[:1]}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(to_toml(self.config), self.run_dir / "config.toml")
        for seed in pending:
            exp = checked.pop(seed, None) or self._experiment(seed, methods.values())
            if exp.partition is not None:
                exp.partition.save(self.run_dir / f"partition-seed{seed}.json")
            self.requests[f"seed{seed}"] = exp.scenario.request.to_dict()
            trained = exp.pretrain(history=history_union(methods.values()))
            if not self._done(ORIGINAL, seed):
                self._add(
                    exp, ORIGINAL, "original (before unlearning)", trained.state, None, "none"
                )
            for name, method in methods.items():
                if not self._done(name, seed):
                    self._cell(exp, trained, method)
                if name == REFERENCE and self._wants_floor(seed):
                    self._floor_cell(exp, trained)
        summary, curves = self._summaries()
        self._write(summary, curves)
        self.write_charts(summary, curves)
        return summary

    def _seed_done(self, seed: int, methods: Iterable[str]) -> bool:
        done = all(self._done(m, seed) for m in [ORIGINAL, *methods])
        return done and not self._wants_floor(seed)

    def _wants_floor(self, seed: int) -> bool:
        return self.config.eval.retrain_floor and self._done(RETRAIN_FLOOR, seed) is None

    def _floor_cell(self, exp: Experiment, trained: Trained) -> None:
        """Retrain′: Retrain's recipe from another training seed, cached like Retrain.

        Another training seed draws other initial weights and client streams; the data,
        partition, request and evaluation are the seed's.
        """
        twin = exp.reseeded(FLOOR_TRAINING_SEED)
        outcome = twin.unlearn(trained, exp.scenario.request, REFERENCE)
        self._add(exp, RETRAIN_FLOOR, FLOOR_TITLE, outcome.state, outcome, "none")

    def _experiment(self, seed: int, methods: Iterable[Unlearner]) -> Experiment:
        """The seed's experiment, after checking the methods and the request against it."""
        exp = Experiment(self.config, seed, progress=self.progress)
        for method in methods:
            method.validate(exp.model)  # fail before any training
        exp.check_request()
        return exp

    def _cell(self, exp: Experiment, trained: Trained, method: Unlearner) -> None:
        """Unlearn with ``method``, evaluate, record; a divergence (not Retrain's) is recorded."""
        title, needs = type(method).title or method.name, method.requirements.describe()
        reference = self._done(REFERENCE, exp.seed)
        costs = None if reference is None else Costs(reference.comm_bytes, reference.flops)
        try:
            outcome = exp.unlearn(
                trained, exp.scenario.request, method,
                reference_val_acc=reference.val_acc if reference else None,
                reference_costs=costs,
            )  # fmt: skip
            self._add(exp, method.name, title, outcome.state, outcome, needs)
        except DivergenceError as error:
            if method.name == REFERENCE:
                raise
            record = Record.of_divergence(
                method.name, title, exp.seed, scenario=exp.scenario.kind, requirements=needs,
                reason=str(error),
            )  # fmt: skip
            record = replace(record, tuned=exp.config.tuned_values(method.name))
            self.records = with_gaps([*self.records, record])
            self.progress.info(f"{title}: diverged (recorded; the run goes on). {error}")
            self._write(*self._summaries())

    def _add(
        self, exp: Experiment, name: str, title: str, state: dict[str, Any],
        outcome: UnlearnOutcome | None, requirements: str,
    ) -> None:  # fmt: skip
        metrics = exp.evaluate(state)
        # Retrain's own target is its final validation accuracy: rounds from scratch to get there.
        reference = self._done(REFERENCE, exp.seed)
        target = metrics.val_acc if name == REFERENCE else getattr(reference, "val_acc", None)
        record = make_record(name, title, exp, metrics, outcome, target, requirements)
        self.records = with_gaps([*self.records, record])
        if outcome is not None:
            self.logs[f"{name}/seed{exp.seed}"] = {"start": outcome.start, **outcome.log.to_dict()}
            if self.config.save_models:
                path = self.run_dir / "models" / f"{name}-seed{exp.seed}.pt"
                atomic_save(clone_state(state), path)
        self.progress.info(
            f"{title}: retain {metrics.retain_acc:.2f}  forget {metrics.forget_acc:.2f}  "
            f"test {metrics.test_acc:.2f}  MIA {metrics.mia:.2f}"
        )
        self._write(*self._summaries())

    def _summaries(self) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, float]]]]:
        """The summary over seeds and the trade-off curves of the records so far."""
        return summarize(self.records, self.logs), tradeoff_curves(self.records, self.logs)

    def _write(
        self, summary: list[dict[str, Any]], curves: dict[str, list[dict[str, float]]]
    ) -> None:
        data = {
            "fednot_version": __version__,
            "config": to_dict(self.config),
            "scenario": self.config.scenario.kind,
            "requests": self.requests,
            "not_applicable": self.not_applicable,
            "records": [r.to_dict() for r in self.records],
            "summary": summary,
            "tradeoff": curves,
            "logs": self.logs,
        }
        text = json.dumps(json_safe(data), indent=1, allow_nan=False)
        atomic_write_text(text, self.run_dir / "results.json")
        atomic_write_text(csv_text(self.records), self.run_dir / "results.csv")
        report = report_markdown(self.config, summary, self.not_applicable)
        atomic_write_text(report, self.run_dir / "results.md")

    def write_charts(
        self, summary: list[dict[str, Any]], curves: dict[str, list[dict[str, float]]]
    ) -> list[Path]:
        """Draw ``results.png`` (Δ to Retrain with CIs) and ``tradeoff.png`` (gap vs. cost)."""
        subtitle = describe_setup(self.config, short=True)
        deltas, tradeoff = self.run_dir / "results.png", self.run_dir / "tradeoff.png"
        delta_chart(summary, deltas, subtitle=subtitle, floor=noise_floor(summary))
        titles = {row["method"]: row["title"] for row in summary}
        tradeoff_chart(curves, titles, tradeoff, subtitle=subtitle)
        return [deltas, tradeoff]


def make_record(
    name: str,
    title: str,
    exp: Experiment,
    metrics: Metrics,
    outcome: UnlearnOutcome | None,
    target_val_acc: float | None,
    requirements: str,
) -> Record:
    """One table cell's record; ``outcome`` is ``None`` for the original (not unlearned) model."""
    measured: dict[str, Any] = dict(metrics.to_dict())
    measured["scenario"] = exp.scenario.kind
    seed = exp.seed
    if outcome is None:
        return Record(
            method=name, title=title, seed=seed, **measured, avg_gap=None, comm_bytes=0,
            flops=0, step_comm_bytes=0, step_flops=0, rounds=0, stop_reason="",
            rounds_to_target=None, comm_to_target=None, seconds=0.0, requirements=requirements,
            storage_bytes=0,
        )  # fmt: skip
    rounds = outcome.log.rounds
    reached = None
    if target_val_acc is not None:
        reached = rounds_to_target([r.val_acc for r in rounds], target_val_acc)
    comm_to_target = None
    if reached is not None:
        comm_to_target = outcome.step_costs.comm_bytes + sum(r.comm_bytes for r in rounds[:reached])
    costs = outcome.costs
    return Record(
        method=name, title=title, seed=seed, **measured, avg_gap=None,
        comm_bytes=costs.comm_bytes, flops=costs.flops,
        step_comm_bytes=outcome.step_costs.comm_bytes, step_flops=outcome.step_costs.flops,
        rounds=len(rounds), stop_reason=outcome.log.stop_reason, rounds_to_target=reached,
        comm_to_target=comm_to_target, seconds=costs.seconds, requirements=requirements,
        storage_bytes=outcome.storage_bytes, cached=outcome.cached, notes=outcome.notes,
        tuned=exp.config.tuned_values(name),
    )  # fmt: skip


def run(
    config: RunConfig, run_dir: Path | None = None, *, progress: Progress | None = None
) -> Path:
    """Run the whole pipeline; return the run directory."""
    target = run_dir or default_run_dir(config)
    Run(replace(config), target, progress=progress).execute()
    return target
