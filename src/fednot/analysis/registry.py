"""Analyses by (group, name): ``fednot ablate layers`` is ``("ablate", "layers")``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path

from fednot.analysis.common import Study
from fednot.errors import ConfigError

Analysis = Callable[[Study], Path]

_ANALYSES: dict[tuple[str, str], Analysis] = {}


def _number(text: str) -> float:
    return float(text)


def _whole(text: str) -> int:
    return int(text)


def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(text)
    return text.lower() in ("true", "1", "yes")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(text)
    return names


def _wholes(text: str) -> list[int]:
    return [int(n) for n in _names(text)]


def _numbers(text: str) -> list[float]:
    return [float(n) for n in _names(text)]


# The --param keys each analysis reads: (what a value must be, how to read it).
_PARAMS: dict[tuple[str, str], dict[str, tuple[str, Callable[[str], object]]]] = {
    ("ablate", "layers"): {},
    ("ablate", "perturbation"): {
        "kinds": ("comma-separated perturbation names", _names),
        "layers": ("comma-separated layer names", _names),
        "early_stop": ("true or false", _flag),
    },
    ("ablate", "forget-ratio"): {
        "counts": ("comma-separated client counts, e.g. 1,5,9", _wholes),
        "methods": ("comma-separated method names", _names),
    },
    ("analyze", "recovery"): {"within": ("a number of points, e.g. 1.0", _number)},
    ("analyze", "cka"): {"samples": ("a whole number of samples, e.g. 1000", _whole)},
    ("analyze", "sensitivity"): {
        "methods": ("comma-separated methods followed by recovery, e.g. ft,not", _names),
        "lrs": ("comma-separated learning rates, e.g. 0.005,0.01,0.02", _numbers),
        "jobs": ("a whole number of worker processes, e.g. 2", _whole),
    },
    ("analyze", "lwo"): {
        "rounds": ("a whole number of rounds", _whole),
        "tol_ab": ("a number of points", _number),
        "tol_ac": ("a number of points", _number),
    },
}


def check_params(group: str, name: str, options: Mapping[str, str]) -> None:
    """Refuse a ``--param`` the analysis does not read, or a value it cannot read."""
    known = _PARAMS.get((group, name), {})
    for key, value in options.items():
        if key not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"`fednot {group} {name}` has no parameter {key!r} (--param {key}={value}); "
                f"it accepts: {accepted}."
            )
        expected, parse = known[key]
        try:
            parse(value)
        except ValueError as e:
            raise ConfigError(f"--param {key}={value!r}: expected {expected}.") from e


_MODULES = {
    ("ablate", "layers"): "fednot.analysis.layers",
    ("ablate", "perturbation"): "fednot.analysis.perturbation",
    ("ablate", "forget-ratio"): "fednot.analysis.forget_ratio",
    ("analyze", "recovery"): "fednot.analysis.recovery",
    ("analyze", "cka"): "fednot.analysis.cka",
    ("analyze", "lwo"): "fednot.analysis.lwo",
    ("analyze", "sensitivity"): "fednot.analysis.sensitivity",
}


def register_analysis(group: str, name: str) -> Callable[[Analysis], Analysis]:
    """Register the decorated function as ``fednot <group> <name>``."""

    def decorate(function: Analysis) -> Analysis:
        _ANALYSES[(group, name)] = function
        return function

    return decorate


def analysis(group: str, name: str, options: Mapping[str, str] | None = None) -> Analysis:
    """The analysis ``fednot <group> <name>`` (its module is imported on first use).

    ``options`` (its ``--param`` values) are checked against what the analysis reads.
    """
    if (group, name) not in _MODULES:
        known = sorted(n for g, n in _MODULES if g == group)
        raise ConfigError(f"Unknown analysis `{group} {name}`. Known: {', '.join(known)}.")
    check_params(group, name, options or {})
    importlib.import_module(_MODULES[(group, name)])
    return _ANALYSES[(group, name)]
