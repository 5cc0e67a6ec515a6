"""``tune.json``: the search log, rewritten after every trial, read back to resume.

Layout::

    fednot_version, config (the reported configuration), preset, validation (request and seeds),
    sampler (TPE and its seed), n_trials and n_startup_trials (the last invocation's budget),
    wall_seconds (all invocations together),
    reference (validation seed -> Retrain's four metrics), skipped (method -> why not tuned),
    methods: method -> {space (option -> range in words), published (option -> value),
        n_trials, trials: [{number, params, objective, gaps, metrics, seconds, state, error}],
        best: {number, params, objective} or null}

A trial's ``state`` is ``"complete"`` or ``"diverged"`` (objective null, the reason in
``error``). Running the same command on the same folder resumes: the header must match, and the
logged trials are replayed into the study instead of being run again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fednot.benchmark.results import json_safe
from fednot.errors import ConfigError
from fednot.store.cache import atomic_write_text, read_json_state
from fednot.tune.objective import TrialResult
from fednot.version import __version__

LOG_NAME = "tune.json"
_HEADER = ("config", "validation", "sampler")


@dataclass(frozen=True)
class Trial:
    """One logged trial."""

    number: int
    params: dict[str, Any]
    result: TrialResult

    @property
    def ok(self) -> bool:
        """Whether it finished with a finite objective."""
        return math.isfinite(self.result.objective)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a diverged trial's objective is null)."""
        r = self.result
        return {
            "number": self.number,
            "params": self.params,
            "objective": r.objective,
            "gaps": {str(s): g for s, g in r.gaps.items()},
            "metrics": {str(s): m for s, m in r.metrics.items()},
            "seconds": r.seconds,
            "state": "complete" if self.ok else "diverged",
            "error": r.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        """Inverse of `to_dict`."""
        objective = data["objective"]
        result = TrialResult(
            math.inf if objective is None else float(objective),
            {int(s): float(g) for s, g in data.get("gaps", {}).items()},
            {int(s): dict(m) for s, m in data.get("metrics", {}).items()},
            float(data.get("seconds", 0.0)),
            str(data.get("error", "")),
        )
        return cls(int(data["number"]), dict(data["params"]), result)


@dataclass
class MethodLog:
    """One method's search: its space, published values and trials."""

    space: dict[str, str]
    published: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)

    def best(self) -> Trial | None:
        """The finished trial of lowest objective (ties: the earliest), or None."""
        finished = [t for t in self.trials if t.ok]
        return min(finished, key=lambda t: (t.result.objective, t.number), default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the best trial and the total seconds."""
        best = self.best()
        return {
            "space": self.space,
            "published": self.published,
            "n_trials": len(self.trials),
            "seconds": sum(t.result.seconds for t in self.trials),
            "trials": [t.to_dict() for t in self.trials],
            "best": None
            if best is None
            else {
                "number": best.number,
                "params": best.params,
                "objective": best.result.objective,
            },
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
