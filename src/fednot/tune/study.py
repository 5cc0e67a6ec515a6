"""The search behind ``fednot tune``: Optuna TPE, the same number of trials for every method.

For each method the space is its ``search_space`` resolved on the model, plus the recovery
learning rate (`RECOVERY_LR`, a log-range of a decade either side of the preset's) when the
engine's recovery follows its step (``schedule == "recovery"``; FT's only knob). Trial 0 is the
published setting (the values the preset runs); the next trials are drawn at random and the
rest by TPE (`TuneSettings.startup`). Every trial's sampler is a TPE seeded by
``(seed, method, trial number)`` and fed the logged trials, so a resumed search draws what an
uninterrupted one draws. A diverged trial counts, with objective +inf.

`tune` writes ``tune.json`` after every trial (`fednot.tune.log`) and, at the end, the tuned
preset (`fednot.tune.preset`). Protocol: docs/tuning.md.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fednot.benchmark.scenarios import shared_kind
from fednot.benchmark.scenarios.sequence import refuse_sequence
from fednot.config import TUNED_RECOVERY_LR, RunConfig
from fednot.configio import to_dict
from fednot.errors import ConfigError
from fednot.progress import Progress, Silent
from fednot.seeding import derive_seed
from fednot.tune.log import MethodLog, Trial, TuneLog
from fednot.tune.objective import ValidationBench
from fednot.tune.plan import Plan, TuneSettings
from fednot.tune.pool import run_trials
from fednot.tune.preset import write_tuned_preset
from fednot.tune.validation import ValidationRequest, validation_config
from fednot.unlearning.base import Unlearner
from fednot.unlearning.registry import create_unlearner
from fednot.unlearning.space import Range, Space, describe_space

__all__ = [
    "Plan",
    "TuneOutcome",
    "TuneSettings",
    "ask",
    "plans",
    "published_values",
    "recovery_lr_space",
    "tune",
]


def recovery_lr_space(published: float) -> Range:
    """The recovery learning rate's space: a log-range of a decade either side of ``published``."""
    return Range(published / 10, published * 10, log=True)


@dataclass(frozen=True)
class TuneOutcome:
    """What `tune` wrote and chose."""

    log: Path
    preset: Path
    best: dict[str, dict[str, Any]]
    skipped: dict[str, str]


def published_values(method: Unlearner, keys: Sequence[str]) -> dict[str, Any]:
    """The values ``method`` runs with for ``keys``: its attributes, else constructor defaults."""
    options = method.options()
    defaults = inspect.signature(type(method).__init__).parameters
    return {k: options[k] if k in options else defaults[k].default for k in keys}


def plans(
    config: RunConfig, methods: Mapping[str, Unlearner], bench: ValidationBench
) -> tuple[list[Plan], dict[str, str]]:
    """The search of every method with something to tune, and why the others are skipped."""
    out: list[Plan] = []
    skipped: dict[str, str] = {}
    if not methods:
        return out, skipped
    model = bench.model()
    for name, method in methods.items():
        space: dict[str, Space] = {k: s.resolve(model) for k, s in method.search_space.items()}
        published = published_values(method, list(space))
        if method.schedule == "recovery":
            lr = config.unlearn.recovery_lr_of(name) or config.train.lr
            space[TUNED_RECOVERY_LR] = recovery_lr_space(lr)
            published[TUNED_RECOVERY_LR] = lr
        if not space:
            skipped[name] = "nothing to tune (no search space, no recovery)"
            continue
        out.append(Plan(name, space, published))
    return out, skipped


def ask(plan: Plan, done: Sequence[Trial], settings: TuneSettings, number: int) -> dict[str, Any]:
    """Trial ``number``'s values: TPE seeded by (seed, method, number), fed the ``done`` trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {k: s.distribution() for k, s in plan.space.items()}
    sampler = optuna.samplers.TPESampler(
        seed=derive_seed(settings.seed, "tune", plan.name, number) % 2**32,
        n_startup_trials=settings.startup,
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
    for trial in done:
        study.add_trial(
            optuna.trial.create_trial(
                params=trial.params, distributions=distributions, value=trial.result.objective
            )
        )
    if not done:
        study.enqueue_trial(plan.enqueued())
    return dict(study.ask(distributions).params)


def tune(
    config: RunConfig,
    methods: Sequence[str],
    request: ValidationRequest,
    out: Path,
    *,
    settings: TuneSettings,
    preset: str,
    progress: Progress | None = None,
    jobs: int = 1,
) -> TuneOutcome:
    """Tune ``methods`` of the reported ``config`` on ``request``; write into ``out``.

    Args:
        config: the reported configuration (a preset plus overrides); it is never run.
        methods: entries of ``config.unlearn.methods`` to tune.
        request: the validation request (`fednot.tune.validation.validation_request`).
        out: the folder of ``tune.json`` and the tuned preset; an existing log there resumes.
        settings: trials per method and the sampler's seed.
        preset: the preset's name, for the tuned preset's name (``<preset>-tuned.toml``).
        progress: where progress lines go.
        jobs: methods whose trials run at once, in worker processes (`fednot.tune.pool`).
    """
    progress = progress or Silent()
    refuse_sequence(config, "fednot tune (its validation request)")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}.")
    unknown = [m for m in methods if m not in config.unlearn.methods]
    if unknown:
        raise ConfigError(
            f"--methods names {unknown}, which the preset's unlearn.methods "
            f"{list(config.unlearn.methods)} does not run: the tuned preset runs what it tunes. "
            "Add them with --set unlearn.methods=[...]."
        )
    val = validation_config(config, methods, request)
    built = {m: create_unlearner(m, val.options.get(m)) for m in dict.fromkeys(methods)}
    skipped = {
        m: reason
        for m, u in built.items()
        if (reason := u.not_applicable(shared_kind(val.scenario.kind)))
    }
    runnable = {m: u for m, u in built.items() if m not in skipped}
    bench = ValidationBench(val, list(runnable.values()), progress)
    searches, nothing = plans(val, runnable, bench)
    skipped.update(nothing)
    header = {
        "config": to_dict(config),
        "preset": preset,
        "validation": {
            **request.to_dict(),
            "reported_forget_clients": list(config.unlearn.forget_clients),
            "reported_seeds": list(config.seeds),
        },
        "sampler": settings.to_dict(),
        "n_trials": settings.trials,
        "n_startup_trials": settings.startup,
    }
    out.mkdir(parents=True, exist_ok=True)
    log = TuneLog.open(out, header)
    log.skipped = skipped
    start, before = time.perf_counter(), log.wall_seconds
    for name, reason in skipped.items():
        progress.info(f"not tuning {name}: {reason}")
    entries = {
        plan.name: log.method(plan.name, describe_space(plan.space), plan.published)
        for plan in searches
    }
    for plan in searches:
        pending = settings.trials - len(entries[plan.name].trials)
        progress.phase(
            f"tune {plan.name}: {max(pending, 0)} of {settings.trials} trials to run over "
            + "; ".join(f"{k} {v}" for k, v in entries[plan.name].space.items())
        )
    if any(len(e.trials) < settings.trials for e in entries.values()):
        bench.prepare()  # pre-training and Retrain, once, outside the trials' seconds
        log.reference = {str(s): m for s, m in bench.reference().items()}
    plan_of = {plan.name: plan for plan in searches}

    def next_trial(name: str) -> tuple[int, dict[str, Any]] | None:
        number = len(entries[name].trials)
        if number >= settings.trials:
            return None
        return number, ask(plan_of[name], entries[name].trials, settings, number)

    for name, number, params, result in run_trials(bench, list(plan_of), next_trial, jobs=jobs):
        entry = entries[name]
        entry.trials.append(Trial(number, params, result))
        log.wall_seconds = before + time.perf_counter() - start
        log.write()
        progress.info(_trial_line(name, number, settings.trials, params, entry))
    log.wall_seconds = before + time.perf_counter() - start
    log.write()
    best = {p.name: dict(b.params) for p in searches if (b := log.methods[p.name].best())}
    path = write_tuned_preset(config, best, searches, log, out, preset, settings)
    return TuneOutcome(log.path, path, best, skipped)


def _trial_line(
    name: str, number: int, trials: int, params: Mapping[str, Any], entry: MethodLog
) -> str:
    """``not: trial 3/8  layers=block2.conv  recovery_lr=0.02  -> avg gap 0.412  best ...``."""
    trial, best = entry.trials[-1], entry.best()
    values = "  ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
    score = f"avg gap {trial.result.objective:.3f}" if trial.ok else "diverged"
    lead = "" if best is None else f"  best {best.result.objective:.3f} (trial {best.number + 1})"
    return (
        f"{name}: trial {number + 1}/{trials}  {values}  -> {score}{lead}  "
        f"({trial.result.seconds:.1f} s)"
    )
