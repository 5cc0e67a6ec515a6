"""Shipped hyperparameter presets, one TOML file per (data set, model).

Each value is marked in its file as the NoT paper's ([paper]), fednot's reading of it ([spec],
described in docs/not.md), the original code's ([code]) or ours ([ours]). A preset may start from
another: ``extends = "fmnist-cnn"`` (a shipped name, or a .toml path relative to the extending
file) loads that preset and applies the file's own tables over it, key by key; the tuned presets
are such diffs. Scenario fragments (``scenarios/``) apply over a preset; one that lists
``unlearn.add_methods`` adds those entries to the preset's method selector instead of replacing
it (`fednot.configio.with_scenario`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from fednot.errors import ConfigError
from fednot.paths import check_input_file

EXTENDS = "extends"
"""The top-level key of a preset that names the preset it applies over."""


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


def load_preset(name: str, *, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The preset as a nested mapping: a shipped name, or the path of a .toml file.

    A path serves presets not (yet) shipped, such as the tuned presets of ``fednot tune``. A
    preset that ``extends`` another is returned merged over it (module docstring).
    """
    data = read_toml(name) if is_preset_path(name) else tomllib.loads(preset_text(name))
    base = data.pop(EXTENDS, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(
            f"Preset {name}: `{EXTENDS}` names the preset it applies over, a shipped name or a "
            f".toml path; got {base!r}."
        )
    if is_preset_path(name):
        name = str(Path(name).resolve())
        if is_preset_path(base):
            base = str((Path(name).parent / base).resolve())  # relative to the extending file
    if base in (*_seen, name):
        raise ConfigError(
            f"Presets extend each other in a circle: {' -> '.join([*_seen, name, base])}."
        )
    return merge(load_preset(base, _seen=(*_seen, name)), data)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of the TOML file ``path``; `ConfigError` if it is missing or malformed."""
    file = Path(path)
    check_input_file(file, "configuration file")
    try:
        return tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"Configuration file {file} is not valid TOML: {e}.") from e


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``update``, merging nested tables key by key."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


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
