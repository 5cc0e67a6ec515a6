"""``fednot run`` / ``fednot bench`` for the sequence scenario: chains into a run directory.

Run directory::

    config.toml            the resolved configuration
    partition-seed<S>.json which training samples each client holds
    results.json           every chain (per request: the record and the earlier requests'
                           recall), the per-request summaries with CIs and paired comparisons
    results.md             per request: the table, paired differences and supported statements;
                           the recall of earlier requests; costs per request and cumulative
    sequence.png           average gap per request (95 % bands); cumulative communication

``results.json`` is rewritten after every finished chain (one method, one seed, all requests);
running the same command on the same directory again skips the chains already done.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

import torch

from fednot.benchmark.cells import FLOOR_TITLE
from fednot.benchmark.comparison import summarize
from fednot.benchmark.results import REFERENCE, RETRAIN_FLOOR, Record, json_safe, with_gaps
from fednot.benchmark.runner import applicable_methods, history_union
from fednot.benchmark.sequence import HISTORY_AFTER_FIRST, Chain, SequenceRunner, check_sequence
from fednot.benchmark.sequence_report import sequence_chart, sequence_markdown
from fednot.benchmark.summary import MethodSummary, summary_json
from fednot.config import RunConfig
from fednot.configio import to_dict, to_toml
from fednot.environment import use_threads
from fednot.errors import ConfigError
from fednot.federation.history import HistorySpec
from fednot.progress import Progress
from fednot.store.cache import atomic_write_text, read_json_state
from fednot.unlearning.base import Unlearner
from fednot.version import __version__


class SequenceRun:
    """Executes a sequence configuration into a run directory; see the module docstring.

    Args:
        config: the run's configuration (``scenario.kind = "sequence"``).
        run_dir: the run directory (an existing one is resumed).
        progress: where progress lines go.
        jobs: chains run at once, each in a worker process.
    """

    def __init__(
        self, config: RunConfig, run_dir: Path, *, progress: Progress | None = None, jobs: int = 1
    ) -> None:
        use_threads(config.threads)
        check_sequence(config)
        self.config = config
        self.run_dir = run_dir
        self.progress = progress or Progress()
        self.jobs = jobs
        self.chains: list[Chain] = []
        self.not_applicable: dict[str, str] = {}
        self.first_only: dict[str, str] = {}
        previous = read_json_state(run_dir / "results.json")
        if previous is not None:
            if previous.get("config") != to_dict(config):
                raise ConfigError(
                    f"{run_dir} holds a run with another configuration; choose another --out "
                    "(or delete the folder) to start a new run."
                )
            self.chains = [Chain.from_dict(c) for c in previous.get("chains", [])]
            if self.chains:
                self.progress.phase(f"resuming {run_dir}: {len(self.chains)} chains already done")

    def _done(self, job: Job) -> Chain | None:
        return next((c for c in self.chains if (c.seed, c.method) == job), None)

    def execute(self) -> list[list[MethodSummary]]:
        """Run every chain not yet done; return the summary of each request."""
        methods, self.not_applicable = applicable_methods(self.config, self.progress)
        if len(self.config.unlearn.forget_clients) > 1:
            self.first_only = {
                name: HISTORY_AFTER_FIRST
                for name, method in methods.items()
                if method.requirements.history
            }
        names = [REFERENCE, *([RETRAIN_FLOOR] if self.config.eval.retrain_floor else [])]
        names += [n for n in methods if n != REFERENCE]
        order = [(seed, name) for name in names for seed in self.config.seeds]
        self._order = {job: i for i, job in enumerate(order)}
        pending = [job for job in order if self._done(job) is None]
        self.progress.plan(len(order), done=len(order) - len(pending), jobs=self.jobs)
        runner = SequenceRunner(
            self.config, methods, history_union(methods.values()), self.progress
        )
        seeds = list(dict.fromkeys(seed for seed, _ in pending))
        if seeds:
            runner.experiment(seeds[0])  # fail before the run folder is written
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(to_toml(self.config), self.run_dir / "config.toml")
        for seed in seeds:
            exp = runner.experiment(seed)
            if exp.partition is not None:
                exp.partition.save(self.run_dir / f"partition-seed{seed}.json")
        threads = self.config.threads or torch.get_num_threads()
        for chain in run_chains(runner, pending, self._done, self.jobs, threads):
            self.chains.append(chain)
            self.chains.sort(key=lambda c: self._order.get((c.seed, c.method), len(order)))
            self._report(chain)
            self._write()
        summaries = self._write()
        sequence_chart(self.config, self.chains, summaries, self.run_dir / "sequence.png")
        return summaries

    def requests(self) -> list[list[Record]]:
        """Per request, every chain's record there (gaps against that request's Retrain)."""
        count = len(self.config.unlearn.forget_clients)
        out: list[list[Record]] = []
        for k in range(count):
            records = [c.points[k].record for c in self.chains if len(c.points) > k]
            out.append(with_gaps(records))
        return out

    def _report(self, chain: Chain) -> None:
        last = chain.points[-1].record
        text = (
            f"diverged at request {len(chain.points)} (recorded). {last.diverged}"
            if last.diverged
            else f"{len(chain.points)} requests; last: retain {last.value('retain_acc'):.2f}  "
            f"forget {last.value('forget_acc'):.2f}  MIA {last.value('mia'):.2f}"
        )
        title = FLOOR_TITLE if chain.method == RETRAIN_FLOOR else last.title
        self.progress.cell_done(f"seed {chain.seed}: {title}: {text}")

    def _write(self) -> list[list[MethodSummary]]:
        """Write results.json and results.md from the chains so far; return the summaries."""
        summaries = [summarize(records, {}) for records in self.requests()]
        data: dict[str, Any] = {
            "fednot_version": __version__,
            "config": to_dict(self.config),
            "scenario": "sequence",
            "targets": list(self.config.unlearn.forget_clients),
            "not_applicable": self.not_applicable,
            "first_request_only": self.first_only,
            "chains": [c.to_dict() for c in self.chains],
            "summary": [summary_json(s) for s in summaries],
        }
        text = json.dumps(json_safe(data), indent=1, allow_nan=False)
        atomic_write_text(text, self.run_dir / "results.json")
        report = sequence_markdown(
            self.config, self.chains, summaries, self.not_applicable, self.first_only
        )
        atomic_write_text(report, self.run_dir / "results.md")
        return summaries


Job = tuple[int, str]
"""``(seed, name)``: one chain."""


def run_chains(
    runner: SequenceRunner,
    jobs: Sequence[Job],
    done: Callable[[Job], Chain | None],
    workers: int,
    threads: int,
) -> Iterator[Chain]:
    """Each pending chain as it finishes, ``workers`` at a time in worker processes.

    A method's chain starts once its seed's Retrain chain is done (``done`` answers for chains
    finished before; the caller records each yielded chain before asking for the next). An
    interruption or an error terminates the workers: their chains are lost, the yielded ones not.
    """

    def reference(seed: int) -> Chain | None:
        return done((seed, REFERENCE))

    def ready(job: Job) -> bool:
        return job[1] in (REFERENCE, RETRAIN_FLOOR) or reference(job[0]) is not None

    if workers == 1 or len(jobs) <= 1:
        for seed, name in jobs:
            yield runner.chain(seed, name, reference(seed))
        return
    if not runner.config.cache_dir:
        raise ConfigError(
            "--jobs > 1 shares each seed's pre-trained model between worker processes through "
            "the model cache, and cache_dir is empty: set cache_dir, or run with --jobs 1."
        )
    context = multiprocessing.get_context("spawn")
    init = (runner.config, runner.methods, runner.history, threads)
    pool = context.Pool(workers, initializer=_start_worker, initargs=init)
    waiting, running = list(jobs), dict[Job, AsyncResult[Chain]]()
    try:
        while waiting or running:
            for job in [j for j in waiting if ready(j)]:
                if len(running) == workers:
                    break
                waiting.remove(job)
                running[job] = pool.apply_async(_run_in_worker, (job, reference(job[0])))
                runner.progress.info(f"started seed {job[0]}: {job[1]}")
            if not running:
                raise RuntimeError(f"chains {waiting} wait for chains that never run")
            finished = [j for j, result in running.items() if result.ready()]
            if not finished:
                time.sleep(0.05)
            for job in finished:
                yield running.pop(job).get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()


_WORKER: SequenceRunner | None = None


def _start_worker(
    config: RunConfig, methods: Mapping[str, Unlearner], history: HistorySpec | None, threads: int
) -> None:
    global _WORKER  # noqa: PLW0603 - one runner per worker process, built once
    use_threads(threads)
    _WORKER = SequenceRunner(config, methods, history)


def _run_in_worker(job: Job, reference: Chain | None) -> Chain:
    assert _WORKER is not None
    return _WORKER.chain(job[0], job[1], reference)
