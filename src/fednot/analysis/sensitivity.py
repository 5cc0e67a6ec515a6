"""``fednot analyze sensitivity``: the average gap to Retrain against the recovery learning rate.

Each method (``--param methods=ft,not``) runs at each recovery learning rate (``--param
lrs=...``; default: the configuration's rate times 2^k, k = -3..3) on every seed of the
configuration, on its request, with that rate as the method's own recovery learning rate and
its other values as configured. The reading is the bench's final average gap to the same seed's
Retrain, computed as the tuner's objective computes it (`fednot.tune.objective.ValidationBench`:
no trajectory, no noise floor), but on the configuration's own test set: unlike the tuner, this
study reads the reported request, as the bench does. Retrain′, Retrain from another training
seed, gives the floor: a retraining's own distance from Retrain. A (seed, rate) whose step or
recovery diverges is kept as diverged, never averaged.

A method's best rate is the one of lowest mean gap among the rates at which no seed diverged.
Each method is compared with NoT (or the first method) at each one's best rate: the paired
difference over seeds, its 95 % CI and t-test p, Holm-adjusted over the comparisons. The best
rates are chosen on the seeds that test them, which flatters every method's best point; the
report says so.

Work goes cell by cell, seed-major (every method and rate of a seed before the next seed), and
``sensitivity.json`` is rewritten after every cell: the same command resumes, and a run cut short
has whole curves on fewer seeds. ``--param jobs=J`` runs cells in J worker processes with the
threads split between them (they share pre-training and Retrain through the model cache).
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fednot.analysis.common import Study
from fednot.analysis.registry import register_analysis
from fednot.analysis.sensitivity_report import best_rates, plot, report
from fednot.benchmark.cells import FLOOR_TITLE, FLOOR_TRAINING_SEED, make_record
from fednot.benchmark.results import REFERENCE, RETRAIN_FLOOR, with_gaps
from fednot.config import TUNED_RECOVERY_LR, RunConfig
from fednot.configio import from_dict, to_dict
from fednot.environment import use_threads
from fednot.errors import ConfigError
from fednot.progress import Silent
from fednot.tune.objective import ValidationBench, gap_metrics
from fednot.tune.validation import ValidationRequest, validation_config
from fednot.unlearning.registry import create_unlearner, unlearner_class

FORMAT = 1


@dataclass(frozen=True)
class Job:
    """One cell: ``method`` at ``lr`` on ``seed``; ``method`` `RETRAIN_FLOOR`: Retrain′."""

    seed: int
    method: str
    lr: float = math.nan


@dataclass(frozen=True)
class Done:
    """A cell's reading: the average gap, the four metrics, or why it diverged."""

    job: Job
    gap: float | None
    metrics: dict[str, float]
    error: str = ""


def _methods(study: Study) -> list[str]:
    names = [n.strip() for n in study.option("methods", "ft,not").split(",") if n.strip()]
    for name in names:
        if name == REFERENCE or unlearner_class(name).schedule != "recovery":
            raise ConfigError(
                f"--param methods names {name!r}, whose step is not followed by the engine's "
                "recovery: it has no recovery learning rate to vary. Choose e.g. ft,not,not_wb."
            )
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"Expected distinct method names in --param methods, got {names}.")
    return names


def _rates(study: Study) -> list[float]:
    base = study.config.unlearn.recovery_lr or study.config.train.lr
    text = study.option("lrs", "")
    rates = [base * 2.0**k for k in range(-3, 4)] if not text else []
    try:
        rates += [float(r) for r in text.split(",") if r.strip()]
    except ValueError as e:
        raise ConfigError(f"Expected --param lrs=0.005,0.01,0.02 (numbers), got {text!r}.") from e
    if not rates or any(not (math.isfinite(r) and r > 0) for r in rates):
        raise ConfigError(f"Expected positive learning rates in --param lrs, got {rates}.")
    return sorted(set(rates))


def _jobs(study: Study) -> int:
    try:
        jobs = int(study.option("jobs", "1"))
    except ValueError as e:
        raise ConfigError("Expected --param jobs=J, a whole number >= 1.") from e
    if jobs < 1:
        raise ConfigError(f"Expected --param jobs >= 1, got {jobs}.")
    if jobs > 1 and not study.config.cache_dir:
        raise ConfigError(
            "--param jobs > 1 shares pre-training and Retrain through the model cache, and "
            "cache_dir is empty: set cache_dir, or run with jobs=1."
        )
    return jobs


def lr_key(lr: float) -> str:
    """A learning rate as a JSON key (repr: exact and readable)."""
    return repr(float(lr))


@register_analysis("analyze", "sensitivity")
def analyze_sensitivity(study: Study) -> Path:
    """Every method at every recovery learning rate on every seed; figure, JSON and report."""
    if study.federation is not None:
        raise ConfigError("`analyze sensitivity` reads its data from the configuration.")
    methods, rates, jobs = _methods(study), _rates(study), _jobs(study)
    # the tuner's cells (no trajectory, no noise floor) on the reported request and its test set
    request = ValidationRequest(study.config.unlearn.forget_clients, study.seeds)
    config = replace(validation_config(study.config, methods, request), data=study.config.data)
    for name in methods:
        create_unlearner(name, config.options.get(name))  # bad options fail before training
    header = {
        "format": FORMAT,
        "config": {k: v for k, v in to_dict(study.config).items() if k != "seeds"},
        "methods": methods,
        "lrs": rates,
        "seeds": list(study.seeds),
    }
    data = _open(study.path("sensitivity.json"), header)
    todo = [j for j in _all_jobs(study.seeds, methods, rates) if not _has(data, j)]
    study.progress.phase(
        f"sensitivity: {len(todo)} of {len(_all_jobs(study.seeds, methods, rates))} cells to run "
        f"({len(methods)} methods x {len(rates)} rates x {len(study.seeds)} seeds, and Retrain′)"
    )
    for done in _run(config, methods, todo, jobs, study):
        _store(data, done)
        study.save_json("sensitivity", data)
        lr = "" if done.job.method == RETRAIN_FLOOR else f" lr {done.job.lr:.4g}"
        value = "diverged" if done.gap is None else f"avg gap {done.gap:.3f}"
        study.progress.info(f"seed {done.job.seed}: {done.job.method}{lr}: {value}")
    study.save_json("sensitivity", data)
    best = best_rates(data)
    plot(study, data, best)
    body = report(study, data, best)
    return study.write_markdown("sensitivity", "Recovery learning-rate sensitivity", body)


def _all_jobs(seeds: Sequence[int], methods: Sequence[str], rates: Sequence[float]) -> list[Job]:
    out: list[Job] = []
    for seed in seeds:
        out.append(Job(seed, RETRAIN_FLOOR))
        out += [Job(seed, m, lr) for m in methods for lr in rates]
    return out


def _open(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    """The stored readings if ``path`` holds this study's; a fresh record otherwise."""
    fresh = {**header, "reference": {}, "floor": {}, "runs": {}}
    if not path.exists():
        return fresh
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not a readable sensitivity.json ({e}); move it away.") from e
    if stored.get("format") != FORMAT or _settled(stored.get("config")) != header["config"]:
        raise ConfigError(
            f"{path} holds a sensitivity study of another configuration: use another --out."
        )
    # other methods, rates or seeds: keep what matches and run the rest
    return {**stored, "methods": header["methods"], "lrs": header["lrs"], "seeds": header["seeds"]}


def _settled(config: Any) -> Any:
    """A stored configuration as this version writes it (fields added since take defaults)."""
    try:
        data = {**config, "seeds": [0]}  # seeds are compared apart
        return {k: v for k, v in to_dict(from_dict(RunConfig, data)).items() if k != "seeds"}
    except (TypeError, ValueError, ConfigError):
        return config


def _has(data: dict[str, Any], job: Job) -> bool:
    seed = str(job.seed)
    if job.method == RETRAIN_FLOOR:
        return seed in data["floor"]
    return seed in data["runs"].get(job.method, {}).get(lr_key(job.lr), {})


def _store(data: dict[str, Any], done: Done) -> None:
    job, seed = done.job, str(done.job.seed)
    entry = {"gap": done.gap, "metrics": done.metrics, "error": done.error}
    if job.method == RETRAIN_FLOOR:
        data["floor"][seed] = entry
        return
    data["runs"].setdefault(job.method, {}).setdefault(lr_key(job.lr), {})[seed] = entry


def _run(
    config: RunConfig, methods: Sequence[str], jobs: list[Job], workers: int, study: Study
) -> Iterator[Done]:
    if not jobs:
        return
    if workers == 1:
        bench = _bench(config, methods)
        for job in jobs:
            study.progress.phase(f"seed {job.seed}: {job.method}")
            yield _cell(bench, job)
        return
    threads = max(1, use_threads(None) // workers)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start, initargs=(config, methods, threads)) as pool:
        # pre-train and run Retrain on each seed once, in parallel, before its cells
        seeds = sorted({j.seed for j in jobs})
        study.progress.phase(f"pre-training and Retrain on seeds {seeds} (cached)")
        for seed in pool.imap_unordered(_prepare, seeds):
            study.progress.info(f"seed {seed}: pre-trained, Retrain done")
        yield from pool.imap(_work, jobs)


def _bench(config: RunConfig, methods: Sequence[str]) -> ValidationBench:
    built = [create_unlearner(m, config.options.get(m)) for m in methods]
    return ValidationBench(config, built, Silent())


def _cell(bench: ValidationBench, job: Job) -> Done:
    exp, trained, retrain = bench.prepared(job.seed)
    if job.method == RETRAIN_FLOOR:
        twin = exp.reseeded(FLOOR_TRAINING_SEED, trajectory=False)
        outcome = twin.unlearn(twin.initial_state, exp.scenario.request, REFERENCE)
        record = make_record(
            RETRAIN_FLOOR, FLOOR_TITLE, exp, exp.evaluate(outcome.state), outcome, None, "none"
        )
        scored = with_gaps([retrain, record])[1]
        return Done(job, scored.avg_gap, gap_metrics(scored))
    result = bench.run(job.method, {TUNED_RECOVERY_LR: job.lr}, seeds=(job.seed,))
    if result.error:
        return Done(job, None, {}, result.error)
    return Done(job, result.gaps[job.seed], result.metrics[job.seed])


_WORKER: ValidationBench | None = None


def _start(config: RunConfig, methods: Sequence[str], threads: int) -> None:
    global _WORKER  # noqa: PLW0603 - one bench per worker process, built once
    use_threads(threads)
    _WORKER = _bench(replace(config, threads=threads), methods)


def _prepare(seed: int) -> int:
    assert _WORKER is not None
    _WORKER.prepared(seed)
    return seed


def _work(job: Job) -> Done:
    assert _WORKER is not None
    return _cell(_WORKER, job)
