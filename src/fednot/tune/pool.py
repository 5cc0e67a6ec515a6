"""Trials of several methods at once (``fednot tune --jobs``).

A method's trials are sequential: TPE asks for trial k knowing trials 0..k-1 of that method only
(`fednot.tune.study.ask`). Different methods are independent, so up to ``jobs`` methods each run
one trial at a time in worker processes, the earliest method with a pending trial first. The
parameters are always asked for in this process, from the log, so a trial gets the values it
gets with ``jobs = 1``; each worker has ``threads // jobs`` torch threads and reads pre-training
and Retrain from the model cache, which this process fills before the first trial with the same
thread count. Hence ``--jobs 2 --threads 2`` equals ``--jobs 1 --threads 1``, trial for trial.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.pool import AsyncResult
from typing import Any

from fednot.config import RunConfig
from fednot.environment import use_threads
from fednot.errors import ConfigError
from fednot.progress import Silent
from fednot.tune.objective import TrialResult, ValidationBench
from fednot.unlearning.base import Unlearner


@dataclass(frozen=True)
class Pending:
    """A trial asked for, not yet run: its number, phase and parameters."""

    number: int
    phase: str
    params: dict[str, Any]


NextTrial = Callable[[str], "Pending | None"]
"""A method's next trial, or ``None`` when its trials are done."""


def run_trials(
    bench: ValidationBench,
    names: Sequence[str],
    next_trial: NextTrial,
    *,
    jobs: int,
) -> Iterator[tuple[str, Pending, TrialResult]]:
    """Each finished trial: method, the trial asked for, result (see the module docstring).

    The caller must record each trial (so that ``next_trial`` sees it) before asking for the
    next. ``jobs = 1`` runs every trial in this process, method after method; ``jobs >= 1`` is
    the caller's to check, before any work (`fednot.tune.study.tune` does).
    """
    if jobs == 1:
        for name in names:
            while (trial := next_trial(name)) is not None:
                yield name, trial, bench.run(name, trial.params)
        return
    if not bench.config.cache_dir:
        raise ConfigError(
            "--jobs > 1 shares pre-training and Retrain between worker processes through the "
            "model cache, and cache_dir is empty: set cache_dir, or run with --jobs 1."
        )
    context = multiprocessing.get_context("spawn")
    init = (bench.config, bench.methods, use_threads(None))
    pool = context.Pool(jobs, initializer=_start_worker, initargs=init)
    running: dict[str, tuple[Pending, AsyncResult[TrialResult]]] = {}
    finished: set[str] = set()
    try:
        while True:
            for name in names:
                if len(running) == jobs:
                    break
                if name in running or name in finished:
                    continue
                trial = next_trial(name)
                if trial is None:
                    finished.add(name)
                    continue
                running[name] = (trial, pool.apply_async(_run_in_worker, (name, trial.params)))
            if not running:
                break
            done = [name for name, (_, result) in running.items() if result.ready()]
            if not done:
                time.sleep(0.05)
            for name in done:
                trial, result = running.pop(name)
                yield name, trial, result.get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()


_WORKER: ValidationBench | None = None


def _start_worker(config: RunConfig, methods: Sequence[Unlearner], threads: int) -> None:
    global _WORKER  # noqa: PLW0603 - one bench per worker process, built once
    use_threads(threads)
    _WORKER = ValidationBench(replace(config, threads=threads), methods, Silent())


def _run_in_worker(name: str, params: dict[str, Any]) -> TrialResult:
    assert _WORKER is not None
    return _WORKER.run(name, params)
