"""Shipped hyperparameter presets, one TOML file per (data set, model).

Each value is marked in its file as the NoT paper's ([paper]), fednot's reading of it ([spec],
described in docs/not.md), the original code's ([code]) or ours ([ours]).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from fednot.errors import ConfigError


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def preset_text(name: str) -> str:
    """The TOML text of preset ``name``."""
    if name not in preset_names():
        raise ConfigError(
            f"Unknown preset {name!r}. Presets: {', '.join(preset_names())}; or the path of a "
            ".toml file, such as a tuned preset written by `fednot tune`."
        )
    return resources.files(__name__).joinpath(f"{name}.toml").read_text()


def preset_description(name: str) -> str:
    """The first sentence of a preset's leading comment."""
    lines = []
    for line in preset_text(name).splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines)
    return text.split(". ")[0].rstrip(".") + "."


def is_preset_path(name: str) -> bool:
    """Whether ``name`` is the path of a TOML file (``tuned/x-tuned.toml``), not a shipped name."""
    return name.endswith(".toml")


def load_preset(name: str) -> dict[str, Any]:
    """The preset as a nested mapping: a shipped name, or the path of a .toml file.

    A path serves presets not (yet) shipped, such as the tuned presets of ``fednot tune``.
    """
    if is_preset_path(name):
        from fednot.configio import read_toml

        return read_toml(name)
    return tomllib.loads(preset_text(name))


def scenario_names() -> list[str]:
    """Names of the shipped scenario fragments (``fednot bench --scenario NAME``)."""
    files = resources.files(__name__).joinpath("scenarios").iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def load_scenario(name: str) -> dict[str, Any]:
    """A scenario fragment: configuration applied over a preset."""
    if name not in scenario_names():
        raise ConfigError(f"Unknown scenario {name!r}. Scenarios: {', '.join(scenario_names())}.")
    text = resources.files(__name__).joinpath("scenarios", f"{name}.toml").read_text()
    return tomllib.loads(text)
