"""The cells of a run: one (method, seed) each, in this process or in worker processes.

A cell is the original model's evaluation, Retrain, Retrain′ or one method, for one seed.
`CellRunner` does a cell's work in this process; `CellPool` hands cells to ``jobs`` worker
processes (``fednot bench --jobs``), as soon as the cells they need are done:

- the original model (pre-training) and Retrain need nothing;
- Retrain′ needs Retrain's record (its oracle column counts rounds to Retrain's accuracy);
- a method needs both: the original model to unlearn (from the model cache) and Retrain's
  costs and accuracy (equal-cost readings, the oracle stop rule).

Every cell's randomness comes from streams keyed by its seed and method (`fednot.seeding`), and
each worker runs with the same number of torch threads, so a cell gives the same result bit for
bit whichever process runs it and in whatever order: ``--jobs 2 --threads 2`` equals
``--jobs 1 --threads 1``. Workers start with ``spawn`` (a forked child of a process that already
ran OpenMP can hang) and share pre-training through the model cache, which ``jobs > 1`` needs.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.pool import AsyncResult
from typing import Any

from fednot.benchmark.evaluation import Metrics
from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import ORIGINAL, REFERENCE, RETRAIN_FLOOR, Record, rounds_to_target
from fednot.benchmark.runlog import CellLog
from fednot.config import RunConfig
from fednot.environment import use_threads
from fednot.errors import ConfigError, DivergenceError
from fednot.federation.costs import Costs
from fednot.federation.history import HistorySpec
from fednot.federation.outcome import Trained, UnlearnOutcome
from fednot.progress import Progress, Silent
from fednot.types import StateDict
from fednot.unlearning.base import Unlearner
from fednot.unlearning.provide import server_data_for

FLOOR_TRAINING_SEED = 1
"""Retrain′'s training seed (`Experiment.reseeded`): initial weights and client streams."""
FLOOR_TITLE = "Retrain′ (another training seed)"
ORIGINAL_TITLE = "original (before unlearning)"


@dataclass(frozen=True)
class Cell:
    """One table cell to produce: ``name`` is `ORIGINAL`, a method's name or `RETRAIN_FLOOR`."""

    seed: int
    name: str


@dataclass(frozen=True)
class CellResult:
    """What a cell produced: its record, its per-round log and final model (``None`` if none)."""

    cell: Cell
    record: Record
    log: CellLog | None
    state: StateDict | None


def cell_order(methods: Sequence[str], floor: bool) -> list[str]:
    """The cells of one seed in the order ``--jobs 1`` runs them (Retrain′ after Retrain)."""
    order = [ORIGINAL]
    for name in methods:
        order.append(name)
        if name == REFERENCE and floor:
            order.append(RETRAIN_FLOOR)
    return order


def needs(cell: Cell) -> list[Cell]:
    """The cells whose results ``cell`` needs (see the module docstring)."""
    if cell.name in (ORIGINAL, REFERENCE):
        return []
    if cell.name == RETRAIN_FLOOR:
        return [Cell(cell.seed, REFERENCE)]
    return [Cell(cell.seed, ORIGINAL), Cell(cell.seed, REFERENCE)]


def cell_title(cell: Cell, methods: Mapping[str, Unlearner]) -> str:
    """The title of ``cell``'s row: the original model, Retrain′ or the method's title."""
    if cell.name == ORIGINAL:
        return ORIGINAL_TITLE
    if cell.name == RETRAIN_FLOOR:
        return FLOOR_TITLE
    method = methods[cell.name]
    return type(method).title or method.name


def check_methods(exp: Experiment, methods: Iterable[Unlearner]) -> None:
    """Refuse, before any training, a method whose options or server slice ``exp`` cannot meet."""
    for method in methods:
        method.validate(exp.model)
        server_data_for(method, exp.federation)  # the server's slice, if it needs one


class CellRunner:
    """Runs cells of one configuration in this process, one experiment and original per seed.

    Args:
        config: the run's configuration.
        methods: the methods by name (`fednot.benchmark.runner.create_methods`).
        history: what pre-training records for them (`fednot.benchmark.runner.history_union`).
        progress: where the experiments' progress lines go.
    """

    def __init__(
        self,
        config: RunConfig,
        methods: Mapping[str, Unlearner],
        history: HistorySpec | None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.methods = dict(methods)
        self.history = history
        self.progress = progress or Silent()
        self._experiments: dict[int, Experiment] = {}
        self._trained: dict[int, Trained] = {}

    def experiment(self, seed: int) -> Experiment:
        """The seed's experiment, after checking the methods and the request against it."""
        if seed not in self._experiments:
            exp = Experiment(self.config, seed, progress=self.progress)
            check_methods(exp, self.methods.values())
            exp.check_request()
            self._experiments[seed] = exp
        return self._experiments[seed]

    def trained(self, seed: int) -> Trained:
        """The seed's original model (pre-trained once, or read from the model cache)."""
        if seed not in self._trained:
            self._trained[seed] = self.experiment(seed).pretrain(history=self.history)
        return self._trained[seed]

    def run(self, cell: Cell, reference: Record | None) -> CellResult:
        """Produce ``cell``; ``reference`` is the seed's Retrain record (cells after Retrain).

        Raises:
            DivergenceError: pre-training, Retrain or Retrain′ diverged (a method's divergence is
                recorded in its result).
        """
        self.progress.phase(f"seed {cell.seed}: {cell_title(cell, self.methods)}")
        exp = self.experiment(cell.seed)
        if cell.name == ORIGINAL:
            state = self.trained(cell.seed).state
            return self._measured(exp, cell, ORIGINAL_TITLE, state, None, None, "none")
        target = None if reference is None else reference.get("val_acc")
        if cell.name == RETRAIN_FLOOR:
            # no trajectory: only Retrain's is read; Retrain never reads the original model
            twin = exp.reseeded(FLOOR_TRAINING_SEED, trajectory=False)
            outcome = twin.unlearn(twin.initial_state, exp.scenario.request, REFERENCE)
            return self._measured(exp, cell, FLOOR_TITLE, outcome.state, outcome, target, "none")
        method = self.methods[cell.name]
        title, needs_text = cell_title(cell, self.methods), method.requirements.describe()
        if cell.name == REFERENCE:
            outcome = exp.unlearn(exp.initial_state, exp.scenario.request, method)
            return self._measured(exp, cell, title, outcome.state, outcome, None, needs_text)
        assert reference is not None, "a method's cell runs after the seed's Retrain"
        try:
            outcome = exp.unlearn(
                self.trained(cell.seed),
                exp.scenario.request,
                method,
                reference_val_acc=reference.get("val_acc"),
                reference_costs=Costs(reference.comm_bytes, reference.flops),
            )
        except DivergenceError as error:
            record = Record.of_divergence(
                method.name,
                title,
                cell.seed,
                scenario=exp.scenario.kind,
                requirements=needs_text,
                reason=str(error),
            )
            record = replace(record, tuned=exp.config.tuned_values(method.name))
            return CellResult(cell, record, None, None)
        return self._measured(exp, cell, title, outcome.state, outcome, target, needs_text)

    def _measured(
        self,
        exp: Experiment,
        cell: Cell,
        title: str,
        state: StateDict,
        outcome: UnlearnOutcome | None,
        target: float | None,
        requirements: str,
    ) -> CellResult:
        metrics = exp.evaluate(state)
        # Retrain's own target is its final validation accuracy: rounds from scratch to get there.
        if cell.name == REFERENCE:
            target = metrics.val_acc
        record = make_record(cell.name, title, exp, metrics, outcome, target, requirements)
        log = None if outcome is None else CellLog.of(outcome.start, outcome.log)
        return CellResult(cell, record, log, state)


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
    measured: dict[str, Any] = {"scenario": exp.scenario.kind, "metrics": dict(metrics.values)}
    seed = exp.seed
    if outcome is None:
        return Record.without_costs(name, title, seed, **measured, requirements=requirements)
    rounds = outcome.log.rounds
    reached = None
    if target_val_acc is not None:
        reached = rounds_to_target([r.val_acc for r in rounds], target_val_acc)
    comm_to_target = None
    if reached is not None:
        comm_to_target = outcome.step_costs.comm_bytes + sum(r.comm_bytes for r in rounds[:reached])
    costs = outcome.costs
    return Record(
        method=name,
        title=title,
        seed=seed,
        **measured,
        avg_gap=None,
        comm_bytes=costs.comm_bytes,
        flops=costs.flops,
        step_comm_bytes=outcome.step_costs.comm_bytes,
        step_flops=outcome.step_costs.flops,
        rounds=len(rounds),
        stop_reason=outcome.log.stop_reason,
        rounds_to_target=reached,
        comm_to_target=comm_to_target,
        seconds=costs.seconds,
        requirements=requirements,
        storage_bytes=outcome.storage_bytes,
        cached=outcome.cached,
        notes=outcome.notes,
        tuned=exp.config.tuned_values(name),
    )


class CellPool:
    """Runs cells in this process (``jobs = 1``) or in ``jobs`` worker processes.

    Args:
        runner: the in-process runner (its configuration and methods seed the workers).
        jobs: how many cells run at once.
        worker_threads: torch threads of each worker (``jobs > 1``).
    """

    def __init__(self, runner: CellRunner, jobs: int, worker_threads: int) -> None:
        if jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {jobs}.")
        if jobs > 1 and not runner.config.cache_dir:
            raise ConfigError(
                "--jobs > 1 shares each seed's original model between worker processes through "
                "the model cache, and cache_dir is empty: set cache_dir (the default is "
                ".fednot-cache), or run with --jobs 1."
            )
        self.runner = runner
        self.jobs = jobs
        self.worker_threads = worker_threads

    def results(
        self, cells: Sequence[Cell], done: Callable[[Cell], Record | None]
    ) -> Iterator[CellResult]:
        """Each cell's result as it finishes; ``done`` answers for cells finished before.

        The caller must record each result (so that ``done`` sees it) before asking for the
        next. A cell starts once every cell it `needs` is done, the earliest in ``cells`` first.
        An interruption or an error terminates the workers at once: the cells they were
        producing are lost, the ones already yielded are not.
        """
        if self.jobs == 1 or len(cells) <= 1:
            for cell in cells:
                yield self.runner.run(cell, done(Cell(cell.seed, REFERENCE)))
            return
        runner, progress = self.runner, self.runner.progress
        context = multiprocessing.get_context("spawn")
        init = (runner.config, runner.methods, runner.history, self.worker_threads)
        pool = context.Pool(self.jobs, initializer=_start_worker, initargs=init)
        waiting, running = list(cells), dict[Cell, AsyncResult[CellResult]]()
        try:
            while waiting or running:
                for cell in [c for c in waiting if all(done(n) for n in needs(c))]:
                    if len(running) == self.jobs:
                        break
                    waiting.remove(cell)
                    reference = done(Cell(cell.seed, REFERENCE))
                    running[cell] = pool.apply_async(_run_in_worker, (cell, reference))
                    progress.info(f"started seed {cell.seed}: {cell_title(cell, runner.methods)}")
                if not running:
                    raise RuntimeError(f"cells {waiting} wait for cells that never run")
                finished = [c for c, result in running.items() if result.ready()]
                if not finished:
                    names = ", ".join(f"seed {c.seed}: {c.name}" for c in running)
                    progress.note(f"{len(running)} running ({names})")
                    time.sleep(0.05)
                for cell in finished:
                    yield running.pop(cell).get()
            pool.close()
        finally:
            pool.terminate()
            pool.join()


_WORKER: CellRunner | None = None


def _start_worker(
    config: RunConfig,
    methods: Mapping[str, Unlearner],
    history: HistorySpec | None,
    threads: int,
) -> None:
    global _WORKER  # noqa: PLW0603 - one runner per worker process, built once
    use_threads(threads)
    _WORKER = CellRunner(config, methods, history)


def _run_in_worker(cell: Cell, reference: Record | None) -> CellResult:
    assert _WORKER is not None
    return _WORKER.run(cell, reference)
