"""``tune.json``: the search log, rewritten after every trial, read back to resume.

Layout::

    fednot_version, format (`LOG_FORMAT`), config (the reported configuration), preset,
    validation (request, seeds, seeds_warning, the test set), sampler (TPE, its seed and how each
    trial's is derived), budget (the rule, per-knob K, each method's search trials, the
    refinement rule and cap: the last invocation's), wall_seconds (all invocations together),
    reference (validation seed -> Retrain's four metrics), skipped (method -> why not tuned),
    methods: method -> {space (option -> range in words), published (option -> value),
        knobs, search_trials, n_trials, seconds,
        trials: [{number, phase, params, objective, gaps, spread, metrics, seconds, state,
                  diverged_seed, error}],
        best: {number, params, objective, spread} or null,
        refinement: {status, trials, cap, best_lr, tried_lrs, below, above} or null}

A trial's ``phase`` is ``published``, ``random``, ``tpe`` or ``refine``; its ``state`` is
``complete`` or ``rejected``: the method diverged on a validation seed (``diverged_seed``, the
reason in ``error``; the trial stopped there, objective null), and a rejected setting is never
chosen, whatever its other seeds scored. ``spread`` is the per-seed gaps' sample standard
deviation and 95 % confidence half-width (null below 2 seeds). Running the same command on the
same folder resumes: the format and header must match, and the logged trials are replayed
into the study instead of being run again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fednot.benchmark.results import json_safe
from fednot.benchmark.stats import mean_ci
from fednot.errors import ConfigError
from fednot.store.cache import atomic_write_text, read_json_state
from fednot.tune.objective import TrialResult
from fednot.version import __version__

LOG_NAME = "tune.json"
LOG_FORMAT = 2
"""2: per-knob budget, refinement, >= 3 validation seeds, a held-out test set (1: ``--trials``)."""
_HEADER = ("config", "validation", "sampler")

PUBLISHED, RANDOM, TPE, REFINE = "published", "random", "tpe", "refine"
COMPLETE, REJECTED = "complete", "rejected"


@dataclass(frozen=True)
class Trial:
    """One logged trial."""

    number: int
    phase: str
    params: dict[str, Any]
    result: TrialResult

    @property
    def ok(self) -> bool:
        """Whether it finished on every validation seed with a finite objective (not rejected)."""
        return self.result.diverged_seed is None and math.isfinite(self.result.objective)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a rejected trial's objective is null)."""
        r = self.result
        return {
            "number": self.number,
            "phase": self.phase,
            "params": self.params,
            "objective": r.objective if self.ok else None,
            "gaps": {str(s): g for s, g in r.gaps.items()},
            "spread": spread(list(r.gaps.values())),
            "metrics": {str(s): m for s, m in r.metrics.items()},
            "seconds": r.seconds,
            "state": COMPLETE if self.ok else REJECTED,
            "diverged_seed": r.diverged_seed,
            "error": r.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        """Inverse of `to_dict`."""
        objective, diverged = data["objective"], data.get("diverged_seed")
        result = TrialResult(
            math.inf if objective is None else float(objective),
            {int(s): float(g) for s, g in data.get("gaps", {}).items()},
            {int(s): dict(m) for s, m in data.get("metrics", {}).items()},
            float(data.get("seconds", 0.0)),
            str(data.get("error", "")),
            None if diverged is None else int(diverged),
        )
        return cls(int(data["number"]), str(data["phase"]), dict(data["params"]), result)


def spread(gaps: list[float]) -> dict[str, float | int | None]:
    """The per-seed ``gaps``' count, sample standard deviation and 95 % CI half-width."""
    if len(gaps) < 2:
        return {"n": len(gaps), "std": None, "ci95_half_width": None}
    interval = mean_ci(gaps)
    std = math.sqrt(math.fsum((g - interval.mean) ** 2 for g in gaps) / (len(gaps) - 1))
    return {"n": len(gaps), "std": std, "ci95_half_width": (interval.high - interval.low) / 2}


def _spread_words(gaps: dict[int, float]) -> str:
    """`` (sd 0.031, 95 % CI ± 0.077 over 3 seeds)``, or that one seed has no spread."""
    values = spread(list(gaps.values()))
    if values["std"] is None:
        return " (1 seed: no spread)"
    return (
        f" (sd {values['std']:.3f}, 95 % CI ± {values['ci95_half_width']:.3f} over "
        f"{values['n']} seeds)"
    )


@dataclass
class MethodLog:
    """One method's search: its space, published values and trials."""

    space: dict[str, str]
    published: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    # set by the search for the log: knobs, search_trials, refinement (`fednot.tune.study`)
    budget: dict[str, Any] = field(default_factory=dict)

    def best(self) -> Trial | None:
        """The finished trial of lowest objective (ties: the earliest), or None."""
        return self.best_of(self.trials)

    @staticmethod
    def best_of(trials: Sequence[Trial]) -> Trial | None:
        """Of ``trials``, the finished one of lowest objective (ties: the earliest), or None.

        A rejected trial (diverged on a validation seed) is never chosen.
        """
        finished = [t for t in trials if t.ok]
        return min(finished, key=lambda t: (t.result.objective, t.number), default=None)

    def progress_line(self, n: int) -> str:
        """The last trial, of ``n`` search trials, for the progress display, e.g.

        ``trial 3/6 (tpe)  layers=fc2  recovery_lr=0.02  -> avg gap 0.412 (sd 0.031, 95 % CI
        ± 0.077 over 3 seeds)  best 0.400 (trial 2)  (12.1 s)``.
        """
        trial, best = self.trials[-1], self.best()
        values = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        if trial.phase == REFINE:
            which = f"refinement {sum(t.phase == REFINE for t in self.trials)}"
        else:
            which = f"trial {trial.number + 1}/{n} ({trial.phase})"
        if trial.ok:
            score = f"avg gap {trial.result.objective:.3f}{_spread_words(trial.result.gaps)}"
        else:
            score = f"rejected: diverged on validation seed {trial.result.diverged_seed}"
        lead = (
            "" if best is None else f"  best {best.result.objective:.3f} (trial {best.number + 1})"
        )
        return f"{which}  {values}  -> {score}{lead}  ({trial.result.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the budget, the best trial and the total seconds."""
        best = self.best()
        return {
            "space": self.space,
            "published": self.published,
            **{k: v for k, v in self.budget.items() if k != "refinement"},
            "n_trials": len(self.trials),
            "seconds": sum(t.result.seconds for t in self.trials),
            "trials": [t.to_dict() for t in self.trials],
            "best": None
            if best is None
            else {
                "number": best.number,
                "params": best.params,
                "objective": best.result.objective,
                "spread": spread(list(best.result.gaps.values())),
            },
            "refinement": self.budget.get("refinement"),
        }


@dataclass
class TuneLog:
    """The whole search log of one ``--out`` folder (module docstring)."""

    path: Path
    header: dict[str, Any]
    methods: dict[str, MethodLog] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @classmethod
    def open(cls, folder: Path, header: dict[str, Any]) -> TuneLog:
        """The log in ``folder`` if its header matches ``header``, else a new one."""
        path = folder / LOG_NAME
        data = read_json_state(path)
        if data is None:
            return cls(path, header)
        if data.get("format") != LOG_FORMAT:
            raise ConfigError(
                f"{path} was written under another tuning protocol (format "
                f"{data.get('format', 1)}: --trials, one budget for every method, the reported "
                f"test split) than this fednot's (format {LOG_FORMAT}: --trials-per-knob, "
                "refinement, >= 3 validation seeds, a held-out test set; docs/tuning.md), and "
                "cannot be resumed: choose another --out (or delete the folder) to start anew."
            )
        differ = [k for k in _HEADER if data.get(k) != _normal(header[k])]
        if differ:
            raise ConfigError(
                f"{folder} holds a tuning with another {' and '.join(differ)}; choose another "
                "--out (or delete the folder) to start a new one."
            )
        methods = {
            name: MethodLog(
                dict(entry["space"]),
                dict(entry["published"]),
                [Trial.from_dict(t) for t in entry.get("trials", [])],
            )
            for name, entry in data.get("methods", {}).items()
        }
        return cls(
            path,
            header,
            methods,
            dict(data.get("skipped", {})),
            dict(data.get("reference", {})),
            float(data.get("wall_seconds", 0.0)),
        )

    def method(self, name: str, space: dict[str, str], published: dict[str, Any]) -> MethodLog:
        """The log of ``name``; `ConfigError` if its logged space differs from ``space``."""
        entry = self.methods.setdefault(name, MethodLog(space, published))
        if entry.space != space:
            raise ConfigError(
                f"{self.path} searched {name} over {entry.space}, not {space}; choose another "
                "--out (or delete the folder) to start a new tuning."
            )
        return entry

    def write(self) -> None:
        """Rewrite ``tune.json`` (atomically)."""
        data = {
            "fednot_version": __version__,
            "format": LOG_FORMAT,
            **self.header,
            "wall_seconds": self.wall_seconds,
            "reference": self.reference,
            "skipped": self.skipped,
            "methods": {name: entry.to_dict() for name, entry in self.methods.items()},
        }
        text = json.dumps(json_safe(data), indent=1, allow_nan=False)
        atomic_write_text(text, self.path)


def _normal(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, non-finite floats as null)."""
    return json.loads(json.dumps(json_safe(value)))
