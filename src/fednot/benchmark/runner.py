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
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from fednot.benchmark.cells import Cell, CellPool, CellResult, CellRunner, cell_order
from fednot.benchmark.comparison import summarize
from fednot.benchmark.plots import delta_chart, tradeoff_chart
from fednot.benchmark.report import describe_setup, report_markdown
from fednot.benchmark.results import ORIGINAL, REFERENCE, Record, csv_text, json_safe, with_gaps
from fednot.benchmark.runlog import CellKey, CellLog, logs_from_json, logs_to_json
from fednot.benchmark.scenarios import shared_kind
from fednot.benchmark.scenarios.sequence import refuse_sequence
from fednot.benchmark.summary import MethodSummary, summary_json
from fednot.benchmark.tables import noise_floor
from fednot.benchmark.tradeoff import Curves, curves_json, tradeoff_curves
from fednot.config import RunConfig
from fednot.configio import to_dict, to_toml
from fednot.environment import use_threads
from fednot.errors import ConfigError
from fednot.federation.aggregate import clone_state
from fednot.federation.history import HistorySpec
from fednot.paths import name_part
from fednot.progress import Progress
from fednot.store.cache import atomic_save, atomic_write_text, read_json_state
from fednot.unlearning.base import Unlearner
from fednot.unlearning.registry import create_unlearner
from fednot.version import __version__


def default_run_dir(config: RunConfig) -> Path:
    """``<out_dir>/<dataset>-<model>-<timestamp>`` (import strings' ``:`` and ``.`` as ``-``)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config.data.dataset}-{config.model.name}"
    return Path(config.out_dir) / f"{name_part(name)}-{stamp}"


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


def applicable_methods(
    config: RunConfig, progress: Progress
) -> tuple[dict[str, Unlearner], dict[str, str]]:
    """The configured methods that serve the scenario, and the others with the reason.

    Each method left out is reported on ``progress`` ("skipping ...").
    """
    methods = create_methods(config)
    kind = shared_kind(config.scenario.kind)
    skipped = {
        name: reason
        for name, method in methods.items()
        if (reason := method.not_applicable(kind)) is not None
    }
    for name, reason in skipped.items():
        progress.info(f"skipping {name}: {reason}")
        del methods[name]
    return methods, skipped


class Run:
    """Executes a `RunConfig` into a run directory; see the module docstring.

    Args:
        config: the run's configuration.
        run_dir: the run directory (an existing one is resumed).
        progress: where progress lines go (default: standard error; `fednot.progress.Silent`
            for none).
        jobs: cells run at once, each in a worker process with the configuration's thread count
            (`fednot.benchmark.cells`; 1: in this process).
    """

    def __init__(
        self, config: RunConfig, run_dir: Path, *, progress: Progress | None = None, jobs: int = 1
    ) -> None:
        refuse_sequence(config, "Run (one request per seed)")
        use_threads(config.threads)
        self.config = config
        self.run_dir = run_dir
        self.progress = progress or Progress()
        self.jobs = jobs
        self.records: list[Record] = []
        self.logs: dict[CellKey, CellLog] = {}
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
        self.logs = logs_from_json(previous.get("logs", {}))
        self.requests = previous.get("requests", {})
        if self.records:
            self.progress.phase(f"resuming {self.run_dir}: {len(self.records)} cells already done")

    def _done(self, cell: Cell) -> Record | None:
        return next((r for r in self.records if (r.seed, r.method) == (cell.seed, cell.name)), None)

    def execute(self) -> list[MethodSummary]:
        """Run every (method, seed) cell not yet done; return the summary.

        Everything that can be checked is checked before the run folder is written: the
        methods, their options against the model, the first pending seed's data and request.
        """
        methods, self.not_applicable = applicable_methods(self.config, self.progress)
        order = cell_order(list(methods), self.config.eval.retrain_floor)
        cells = [
            Cell(seed, name)
            for seed in self.config.seeds
            for name in order
            if not self._done(Cell(seed, name))
        ]
        self._order = {
            Cell(seed, name): k
            for k, (seed, name) in enumerate(
                (seed, name) for seed in self.config.seeds for name in order
            )
        }
        self.progress.plan(len(self._order), done=len(self._order) - len(cells), jobs=self.jobs)
        runner = CellRunner(self.config, methods, history_union(methods.values()), self.progress)
        pool = CellPool(runner, self.jobs, self.config.threads or torch.get_num_threads())
        seeds = list(dict.fromkeys(c.seed for c in cells))
        if seeds:
            runner.experiment(seeds[0])  # fail before the run folder is written
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(to_toml(self.config), self.run_dir / "config.toml")
        for seed in seeds:
            exp = runner.experiment(seed)
            if exp.partition is not None:
                exp.partition.save(self.run_dir / f"partition-seed{seed}.json")
            self.requests[f"seed{seed}"] = exp.scenario.request.to_dict()
        if self.jobs > 1 and cells:
            self.progress.phase(f"{len(cells)} cells to run, {self.jobs} at a time")
        for result in pool.results(cells, self._done):
            self._add(result)
        summary, curves = self._summaries()
        self._write(summary, curves)
        self.write_charts(summary, curves)
        return summary

    def _add(self, result: CellResult) -> None:
        """Record a finished cell, in the order ``--jobs 1`` runs them, and rewrite the results."""
        record, name, seed = result.record, result.cell.name, result.cell.seed
        records = [*self.records, record]
        records.sort(key=lambda r: self._order.get(Cell(r.seed, r.method), len(self._order)))
        self.records = with_gaps(records)
        if result.log is not None:  # a method, Retrain or Retrain′ that did not diverge
            self.logs[CellKey(name, seed)] = result.log
            if result.state is not None and self.config.save_models:
                path = self.run_dir / "models" / f"{name}-seed{seed}.pt"
                atomic_save(clone_state(result.state), path)
        if record.diverged:
            self.progress.cell_done(
                f"seed {seed}: {record.title}: diverged (recorded; the run goes on). "
                f"{record.diverged}"
            )
        else:
            value = record.value
            self.progress.cell_done(
                f"seed {seed}: {record.title}: retain {value('retain_acc'):.2f}  "
                f"forget {value('forget_acc'):.2f}  test {value('test_acc'):.2f}  "
                f"MIA {value('mia'):.2f}"
            )
        self._write(*self._summaries())

    def _summaries(self) -> tuple[list[MethodSummary], Curves]:
        """The summary over seeds and the trade-off curves of the records so far."""
        return summarize(self.records, self.logs), tradeoff_curves(self.records, self.logs)

    def _write(self, summary: list[MethodSummary], curves: Curves) -> None:
        """Write results.json (its documented layout, from the typed summary), .csv and .md."""
        data = {
            "fednot_version": __version__,
            "config": to_dict(self.config),
            "scenario": self.config.scenario.kind,
            "requests": self.requests,
            "not_applicable": self.not_applicable,
            "records": [r.to_dict() for r in self.records],
            "summary": summary_json(summary),
            "tradeoff": curves_json(curves),
            "logs": logs_to_json(self.logs),
        }
        text = json.dumps(json_safe(data), indent=1, allow_nan=False)
        atomic_write_text(text, self.run_dir / "results.json")
        atomic_write_text(csv_text(self.records), self.run_dir / "results.csv")
        report = report_markdown(self.config, summary, self.not_applicable)
        atomic_write_text(report, self.run_dir / "results.md")

    def write_charts(self, summary: list[MethodSummary], curves: Curves) -> list[Path]:
        """Draw ``results.png`` (Δ to Retrain with CIs) and ``tradeoff.png`` (gap vs. cost)."""
        subtitle = describe_setup(self.config, short=True)
        deltas, tradeoff = self.run_dir / "results.png", self.run_dir / "tradeoff.png"
        delta_chart(summary, deltas, subtitle=subtitle, floor=noise_floor(summary))
        titles = {row.method: row.title for row in summary}
        tradeoff_chart(curves, titles, tradeoff, subtitle=subtitle)
        return [deltas, tradeoff]


def run(
    config: RunConfig,
    run_dir: Path | None = None,
    *,
    progress: Progress | None = None,
    jobs: int = 1,
) -> Path:
    """Run the whole pipeline (``jobs`` cells at once); return the run directory.

    Progress lines go to standard error unless ``progress`` is `fednot.progress.Silent`.
    """
    target = run_dir or default_run_dir(config)
    Run(replace(config), target, progress=progress, jobs=jobs).execute()
    return target


def check_recovery_lr(config: RunConfig, entry: str, method: Unlearner) -> None:
    """Refuse ``unlearn.method_recovery_lr.<entry>`` where the engine would not read it.

    It is read only for a method whose step is followed by recovery, by the method's name.
    """
    if entry not in config.unlearn.method_recovery_lr:
        return
    title = method.title or method.name
    if method.schedule != "recovery":
        raise ConfigError(
            f"unlearn.method_recovery_lr.{entry} is set, but {title} runs no recovery (its step "
            f"returns schedule {method.schedule!r}), so it would do nothing. Remove it."
        )
    if entry != method.name:
        raise ConfigError(
            f"unlearn.method_recovery_lr.{entry} is set, but the engine reads it by the method's "
            f"name, {method.name!r}, which unlearn.methods does not list. Register the method "
            "under its name (an entry point) to give it its own recovery learning rate."
        )
