"""Analyses by (group, name): ``fednot ablate layers`` is ``("ablate", "layers")``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from fednot.analysis.common import Study
from fednot.errors import ConfigError

Analysis = Callable[[Study], Path]

_ANALYSES: dict[tuple[str, str], Analysis] = {}
_MODULES = {
    ("ablate", "layers"): "fednot.analysis.layers",
    ("ablate", "perturbation"): "fednot.analysis.perturbation",
    ("ablate", "forget-ratio"): "fednot.analysis.forget_ratio",
    ("analyze", "recovery"): "fednot.analysis.recovery",
    ("analyze", "cka"): "fednot.analysis.cka",
    ("analyze", "lwo"): "fednot.analysis.lwo",
}


def register_analysis(group: str, name: str) -> Callable[[Analysis], Analysis]:
    """Register the decorated function as ``fednot <group> <name>``."""

    def decorate(function: Analysis) -> Analysis:
        _ANALYSES[(group, name)] = function
        return function

    return decorate


def analysis(group: str, name: str) -> Analysis:
    """The analysis ``fednot <group> <name>`` (its module is imported on first use)."""
    if (group, name) not in _MODULES:
        known = sorted(n for g, n in _MODULES if g == group)
        raise ConfigError(f"Unknown analysis `{group} {name}`. Known: {', '.join(known)}.")
    importlib.import_module(_MODULES[(group, name)])
    return _ANALYSES[(group, name)]
