"""The search behind ``fednot tune``: Optuna TPE, trials per knob, then a learning-rate refinement.

For each method the space is its ``search_space`` resolved on the model, plus the recovery
learning rate (`recovery_lr_space`, a log-range of a decade either side of the preset's) when
the engine's recovery follows its step (``schedule == "recovery"``; FT's only knob). A method
of d knobs gets K·d search trials (`TuneSettings`): trial 0 is the published setting (the
values the preset runs); the next trials are drawn at random and the rest by TPE
(`TuneSettings.startup`). Then its recovery learning rate is refined around the best value
(`fednot.tune.refine`). Every search trial's sampler is a TPE seeded by ``(seed, data set,
preset, method, trial number)`` and fed the logged trials, and the refinement is a function of
the logged trials, so a resumed search runs what an uninterrupted one runs. A trial that
diverges on a validation seed is rejected: it stops there, is fed to TPE with objective +inf,
and is never chosen.

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
from fednot.tune.log import PUBLISHED, RANDOM, REFINE, TPE, MethodLog, Trial, TuneLog
from fednot.tune.objective import ValidationBench
from fednot.tune.plan import Plan, TuneSettings
from fednot.tune.pool import Pending, run_trials
from fednot.tune.preset import preset_name, write_tuned_preset
from fednot.tune.refine import refine_params, refinement
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
    "search_phase",
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


def search_phase(number: int, n: int) -> str:
    """The phase of search trial ``number`` of ``n``: published, random (startup) or TPE."""
    if number == 0:
        return PUBLISHED
    return RANDOM if number < TuneSettings.startup(n) else TPE


def ask(
    plan: Plan,
    done: Sequence[Trial],
    settings: TuneSettings,
    number: int,
    scope: tuple[str, str],
) -> dict[str, Any]:
    """Trial ``number``'s values: TPE seeded by (seed, scope, method, number), fed ``done``.

    ``scope`` is (data set, preset name): the same ``--sampler-seed`` draws other candidates on
    another data set or preset.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {k: s.distribution() for k, s in plan.space.items()}
    sampler = optuna.samplers.TPESampler(
        seed=derive_seed(settings.seed, "tune", *scope, plan.name, number) % 2**32,
        n_startup_trials=settings.startup(settings.search_trials(plan)),
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
        settings: the budget rule (trials per knob, refinement cap) and the sampler's seed.
        preset: the preset's name or path, for the tuned preset's name
            (``<preset>-tuned.toml``) and the sampler's seeds.
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
    scope = (config.data.dataset, preset_name(preset))
    header = {
        "config": to_dict(config),
        "preset": preset,
        "validation": {
            **request.to_dict(),
            "reported_forget_clients": list(config.unlearn.forget_clients),
            "reported_seeds": list(config.seeds),
            "test_set": "a seeded hold-out of the training split (data.holdout_test): the data "
            "set's own test split, which the bench reports on, is never read",
        },
        "sampler": settings.sampler(*scope),
        "budget": settings.budget(searches),
    }
    out.mkdir(parents=True, exist_ok=True)
    log = TuneLog.open(out, header)
    log.skipped = skipped
    start, before = time.perf_counter(), log.wall_seconds
    for name, reason in skipped.items():
        progress.info(f"not tuning {name}: {reason}")
    plan_of = {plan.name: plan for plan in searches}
    entries = {
        plan.name: log.method(plan.name, describe_space(plan.space), plan.published)
        for plan in searches
    }
    for plan in searches:
        _record_budget(plan, entries[plan.name], settings)
        n, entry = settings.search_trials(plan), entries[plan.name]
        pending = max(n - sum(t.phase != REFINE for t in entry.trials), 0)
        lr = TUNED_RECOVERY_LR in plan.space
        progress.phase(
            f"tune {plan.name}: {pending} of {n} search trials ({plan.knobs} knob"
            f"{'s' if plan.knobs != 1 else ''} × "
            f"{settings.trials_per_knob}) to run"
            + (f", then up to {settings.refine_cap} refining recovery_lr" if lr else "")
            + " over "
            + "; ".join(f"{k} {v}" for k, v in entry.space.items())
        )

    def next_trial(name: str) -> Pending | None:
        plan, trials = plan_of[name], entries[name].trials
        n, number = settings.search_trials(plan), len(trials)
        if sum(t.phase != REFINE for t in trials) < n:
            asked = ask(plan, trials, settings, number, scope)
            return Pending(number, search_phase(number, n), asked)
        refined = refine_params(plan, trials, settings.refine_cap)
        return None if refined is None else Pending(number, REFINE, refined)

    if any(next_trial(name) is not None for name in plan_of):
        bench.prepare()  # pre-training and Retrain, once, outside the trials' seconds
        log.reference = {str(s): m for s, m in bench.reference().items()}
    for name, pending_trial, result in run_trials(bench, list(plan_of), next_trial, jobs=jobs):
        entry = entries[name]
        entry.trials.append(
            Trial(pending_trial.number, pending_trial.phase, pending_trial.params, result)
        )
        _record_budget(plan_of[name], entry, settings)
        log.wall_seconds = before + time.perf_counter() - start
        log.write()
        progress.info(f"{name}: {entry.progress_line(settings.search_trials(plan_of[name]))}")
    log.wall_seconds = before + time.perf_counter() - start
    log.write()
    best = {p.name: dict(b.params) for p in searches if (b := log.methods[p.name].best())}
    path = write_tuned_preset(config, best, searches, log, out, preset, settings)
    return TuneOutcome(log.path, path, best, skipped)


def _record_budget(plan: Plan, entry: MethodLog, settings: TuneSettings) -> None:
    """Set ``entry``'s budget for the log: knobs, search trials, refinement state."""
    state = refinement(plan, entry.trials, settings.refine_cap)
    entry.budget = {
        "knobs": plan.knobs,
        "search_trials": settings.search_trials(plan),
        "refinement": None if state is None else state.to_dict(),
    }
