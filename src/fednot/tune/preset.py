"""The tuned preset: the reported configuration with each method's best trial, marked.

`tuned_config` sets every tuned method's chosen values (``options.<method>.<key>``, and
``unlearn.method_recovery_lr.<method>`` for the recovery learning rate) and lists the keys in
``[tuned]``, which results mark. `write_tuned_preset` writes it as ``<preset>-tuned.toml``: a
leading comment saying how it was tuned, ``extends = "<preset>"``, then every key whose value
differs from the preset's (the tuned values, and whatever ``-c``/``--set`` changed), each tuned
value followed by its search range and the published value::

    lr = 0.003  # [tuned] log-range [0.0001, 0.1]; published 0.01

``fednot bench --preset <folder>/<preset>-tuned.toml`` runs it; copied into
``src/fednot/presets/`` it ships as ``--preset <preset>-tuned``.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fednot.config import TUNED_RECOVERY_LR, RunConfig
from fednot.configio import _key, load_config, to_dict, to_toml, write_table
from fednot.presets import EXTENDS, is_preset_path
from fednot.store.cache import atomic_write_text
from fednot.unlearning.registry import unlearner_class
from fednot.version import __version__

if TYPE_CHECKING:
    from fednot.tune.log import TuneLog
    from fednot.tune.plan import Plan, TuneSettings


def tuned_config(config: RunConfig, best: Mapping[str, Mapping[str, Any]]) -> RunConfig:
    """``config`` with each method's ``best`` values set and marked in ``tuned``."""
    options = {m: dict(o) for m, o in config.options.items()}
    own_lr = dict(config.unlearn.method_recovery_lr)
    tuned = dict(config.tuned)
    for method, values in best.items():
        for key, value in values.items():
            if key == TUNED_RECOVERY_LR:
                own_lr[method] = float(value)
            else:
                options.setdefault(method, {})[key] = value
        tuned[method] = tuple(values)
    return replace(
        config,
        options=options,
        unlearn=replace(config.unlearn, method_recovery_lr=own_lr),
        tuned=tuned,
    )


def preset_name(preset: str) -> str:
    """A shipped preset's name, or a preset path's file name without ``.toml``."""
    return Path(preset).stem if is_preset_path(preset) else preset


def tuned_name(preset: str) -> str:
    """``mnist5k-cnn`` -> ``mnist5k-cnn-tuned`` (a path's file name without ``.toml``)."""
    base = preset_name(preset)
    return base if base.endswith("-tuned") else f"{base}-tuned"


def write_tuned_preset(
    config: RunConfig,
    best: Mapping[str, Mapping[str, Any]],
    plans: Sequence[Plan],
    log: TuneLog,
    out: Path,
    preset: str,
    settings: TuneSettings,
) -> Path:
    """Write ``out/<preset>-tuned.toml`` (module docstring); check that it loads; its path."""
    tuned = tuned_config(config, best)
    name = tuned_name(preset)
    validation = log.header["validation"]
    methods = ", ".join(best) or "no method"
    lead = [
        f"{name}: {preset} with the hyperparameters of {methods} tuned by `fednot tune`.",
        f"fednot {__version__}, {date.today().isoformat()}: {settings.trials_per_knob} Optuna "
        f"TPE trials per knob of each method's space (sampler seed {settings.seed}), then up to "
        f"{settings.refine_cap} refinement trials of the recovery learning rate, each scored by "
        "the mean average gap to Retrain on a validation request, clients "
        f"{validation['forget_clients']} and seeds {validation['seeds']} on a test set held out "
        f"of the training split, never the reported clients "
        f"{validation['reported_forget_clients']} and seeds {validation['reported_seeds']}; a "
        "setting that diverged on a validation seed was rejected.",
        "Marks: [tuned] a value the tuner chose, with its search range and the published value "
        "(the preset's, where it sets one); [tuned] lists the tuned keys per method, which "
        "results.json and results.md mark. Search log: tune.json. Protocol: docs/tuning.md.",
    ]
    if log.skipped:
        lead.append("Not tuned: " + "; ".join(f"{m}: {why}" for m, why in log.skipped.items()))
    text = _comment(" ".join(lead)) + "\n" + annotate(diff_toml(tuned, preset, out), tuned, plans)
    path = out / f"{name}.toml"
    atomic_write_text(text, path)
    load_config(preset=str(path))  # what `fednot bench --preset PATH` will do
    return path


def diff_toml(config: RunConfig, preset: str, folder: Path) -> str:
    """``config`` as a TOML diff over ``preset`` (``extends``), for a file in ``folder``.

    A full snapshot where a diff cannot say it (a value of the preset that ``config`` unsets).
    """
    changed = _diff(to_dict(load_config(preset=preset)), to_dict(config))
    if changed is None:
        return to_toml(config)
    base = preset
    if is_preset_path(preset):
        base = os.path.relpath(Path(preset).resolve(), folder.resolve())
    lines = [f"{EXTENDS} = {json.dumps(base)}"]
    write_table(lines, [], changed, unset=False)
    return "\n".join(lines).strip() + "\n"


def _diff(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The keys of ``new`` whose values differ from ``base``'s; ``None`` if one became None."""
    result: dict[str, Any] = {}
    for key, value in new.items():
        old = base.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            inner = _diff(old, value)
            if inner is None:
                return None
            if inner:
                result[key] = inner
        elif value != old:
            if value is None:
                return None
            result[key] = value
    return result


def annotate(text: str, tuned: RunConfig, plans: Sequence[Plan]) -> str:
    """``to_toml(tuned)`` with each tuned value's range and published value as a comment."""
    marks: dict[tuple[str, str], str] = {}
    for plan in plans:
        for key in tuned.tuned.get(plan.name, ()):
            where = (
                ("unlearn.method_recovery_lr", _key(plan.name))
                if key == TUNED_RECOVERY_LR
                else (f"options.{_key(plan.name)}", _key(key))
            )
            value = plan.published[key]
            label = "published" if _is_default(plan.name, key, value) else "preset"
            marks[where] = f"# [tuned] {plan.space[key].describe()}; {label} {json.dumps(value)}"
    lines, table = [], ""
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            table = line[1:-1]
        elif (table, line.split(" = ", 1)[0]) in marks:
            line = f"{line}  {marks[(table, line.split(' = ', 1)[0])]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _is_default(method: str, key: str, value: object) -> bool:
    """Whether ``value`` is ``method``'s constructor default for ``key`` (recovery lr: yes)."""
    if key == TUNED_RECOVERY_LR:
        return True
    parameter = inspect.signature(unlearner_class(method).__init__).parameters.get(key)
    return parameter is not None and parameter.default in (value, None)


def _comment(text: str, width: int = 98) -> str:
    """``text`` as ``# `` lines of at most ``width`` characters."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(f"# {word}")
    return "\n".join(lines) + "\n"
