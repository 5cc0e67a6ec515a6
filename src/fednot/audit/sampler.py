"""Producing one audited model: retrain or unlearn with a training seed, then measure it.

`ModelSampler` does the work for one (method, training seed) pair; `SamplerPool` hands the pairs
to it, in this process or in worker processes (``--jobs``). Workers start with ``spawn`` (a
forked child of a process that already ran OpenMP can hang), build the experiment once, and each
runs with ``threads // jobs`` torch threads: on 2 cores two one-thread workers train faster than
one two-thread process, because a small model's step does not keep two threads busy.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from fednot.audit.outputs import ModelOutputs, OracleStore, measure
from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import REFERENCE
from fednot.benchmark.runner import create_methods
from fednot.config import RunConfig
from fednot.environment import use_threads
from fednot.errors import DivergenceError
from fednot.federation.outcome import Trained
from fednot.progress import Silent

Task = tuple[str, int]
"""A method's name and a training seed."""


class ModelSampler:
    """Produces the audited outputs of one method's model for one training seed.

    Args:
        exp: the audit's experiment (data, request and evaluation streams of its seed).
        original: the original model, or ``None`` when only Retrain is sampled.
    """

    def __init__(self, exp: Experiment, original: Trained | None) -> None:
        self.exp = exp
        self.original = original
        self.methods = create_methods(exp.config)
        self.split = exp.split(exp.scenario.request)
        self.oracles = OracleStore(exp.cache)

    def sample(self, task: Task) -> ModelOutputs:
        """The outputs of ``task``'s model (Retrain's from the oracle cache when stored).

        Raises:
            DivergenceError: a retrained model diverged (a method's divergence is returned as
                a diverged `ModelOutputs`).
        """
        name, k = task
        twin = self.exp.reseeded(k, progress=Silent())
        if name != REFERENCE:
            return self._produce(twin, name)
        key = OracleStore.key(twin, self.split)
        stored = self.oracles.load(key)
        if stored is not None:
            return stored
        outputs = self._produce(twin, name)
        self.oracles.save(key, outputs)
        return outputs

    def _produce(self, twin: Experiment, name: str) -> ModelOutputs:
        start = time.perf_counter()
        try:
            base = twin.initial_state if name == REFERENCE else self.original
            assert base is not None, "the original model is needed to unlearn"
            outcome = twin.unlearn(base, self.split.request, self.methods[name])
            return measure(twin, outcome.state, self.split, time.perf_counter() - start)
        except DivergenceError as error:
            if name == REFERENCE:
                raise
            return ModelOutputs.of_divergence(str(error), time.perf_counter() - start)


_WORKER: ModelSampler | None = None


def _start_worker(config: RunConfig, seed: int, threads: int, original: Trained | None) -> None:
    global _WORKER  # noqa: PLW0603 - one sampler per worker process, built once
    use_threads(threads)
    quiet = Experiment(replace(config, threads=threads), seed, progress=Silent())
    _WORKER = ModelSampler(quiet, original)


def _sample_in_worker(task: Task) -> tuple[Task, ModelOutputs]:
    assert _WORKER is not None
    return task, _WORKER.sample(task)


class SamplerPool:
    """Runs tasks in this process (``jobs = 1``) or in ``jobs`` worker processes.

    Args:
        sampler: the in-process sampler (its experiment and original model seed the workers).
        jobs: how many tasks run at once.
        worker_threads: torch threads of each worker (``jobs > 1``).
    """

    def __init__(self, sampler: ModelSampler, jobs: int, worker_threads: int) -> None:
        self.sampler = sampler
        self.jobs = jobs
        self.worker_threads = worker_threads

    def results(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, ModelOutputs]]:
        """Each task with its outputs, as they finish (in order when ``jobs = 1``).

        An interruption or an error terminates the workers at once: the models they were
        producing are lost, the ones already yielded are not.
        """
        if self.jobs == 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, self.sampler.sample(task)
            return
        exp = self.sampler.exp
        context = multiprocessing.get_context("spawn")
        init = (exp.config, exp.seed, self.worker_threads, self.sampler.original)
        pool = context.Pool(self.jobs, initializer=_start_worker, initargs=init)
        try:
            yield from pool.imap_unordered(_sample_in_worker, tasks, chunksize=1)
            pool.close()
        finally:
            pool.terminate()
            pool.join()
