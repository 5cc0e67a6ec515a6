"""Analyses by (group, name): ``fednot ablate layers`` is ``("ablate", "layers")``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from fednot.analysis.common import Study
from fednot.errors import ConfigError

Analysis = Callable[[Study], Path]

_ANALYSES: dict[tuple[str, str], Analysis] = {}
_MODULES = (
    "fednot.analysis.layers",
    "fednot.analysis.perturbation",
    "fednot.analysis.forget_ratio",
    "fednot.analysis.recovery",
    "fednot.analysis.cka",
    "fednot.analysis.lwo",
)


def register_analysis(group: str, name: str) -> Callable[[Analysis], Analysis]:
    """Register the decorated function as ``fednot <group> <name>``."""

    def decorate(function: Analysis) -> Analysis:
        _ANALYSES[(group, name)] = function
        return function

    return decorate


def analysis(group: str, name: str) -> Analysis:
    """The analysis ``fednot <group> <name>``."""
    for module in _MODULES:
        importlib.import_module(module)
    if (group, name) not in _ANALYSES:
        known = sorted(n for g, n in _ANALYSES if g == group)
        raise ConfigError(f"Unknown analysis `{group} {name}`. Known: {', '.join(known)}.")
    return _ANALYSES[(group, name)]
