"""The commands that describe rather than run: ``fednot config``, ``methods`` and ``presets``."""

from __future__ import annotations

import argparse
import inspect
import json
import textwrap
from typing import Any

from fednot.benchmark.scenarios import scenario_definitions
from fednot.cli.commands import config_of, setup_run
from fednot.config import RunConfig
from fednot.configio import _key, to_toml
from fednot.errors import FedNotError
from fednot.plugins import installed
from fednot.presets import preset_description, preset_names, scenario_names
from fednot.typecheck import keyword_parameters
from fednot.unlearning.base import Unlearner
from fednot.unlearning.registry import create_unlearner, unlearner_class, unlearner_names

WIDTH = 100
"""The columns the listings fit in."""


def show_config(args: argparse.Namespace) -> int:
    """``fednot config``: every key of the resolved configuration, and each method's options."""
    config, _ = setup_run(args, config_of(args))
    print("# Keys shown as `# key = None` are unset; give them a value to set them.")
    print(to_toml(config, unset=True), end="")
    print("\n" + method_options(config), end="")
    return 0


def method_options(config: RunConfig) -> str:
    """Each method's options (its constructor's keyword arguments) at their defaults, as comments.

    Options set in ``config`` appear above as real ``[options.<method>]`` tables; here they are
    marked. Methods outside the registry are not imported to read their options.
    """
    lines = [
        "# Options of each method run: its constructor's keyword arguments, at their defaults.",
        "# Set one with --set options.<method>.<option>=VALUE or in an [options.<method>] table.",
    ]
    for name in config.unlearn.methods:
        header = f"# [options.{_key(name)}]"
        if name not in unlearner_names():
            lines.append(f"{header}  (not listed: {name!r} is not a built-in method)")
            continue
        defaults = option_defaults(unlearner_class(name))
        lines.append(header if defaults else f"{header}  (no options)")
        given = config.options.get(name, {})
        for key, default in defaults.items():
            mark = "  (default; set above)" if key in given else ""
            lines.append(f"# {_key(key)} = {_toml_text(default)}{mark}")
    return "\n".join(lines) + "\n"


def option_defaults(cls: type[Unlearner]) -> dict[str, Any]:
    """The keyword arguments of ``cls``'s constructor and their defaults (as `check_options`)."""
    parameters = keyword_parameters(inspect.signature(cls.__init__))
    return {name: p.default for name, p in parameters.items()}


def _toml_text(value: Any) -> str:
    if value is None or value is inspect.Parameter.empty:
        return "None" if value is None else "(required)"
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


def methods(args: argparse.Namespace) -> int:
    """``fednot methods``: each method, what it does, where it applies and what it needs."""
    kinds = tuple(d.kind for d in scenario_definitions() if not d.serves)
    print(f"Scenarios: {', '.join(kinds)} (a method's own scenarios, or all).")
    print("Needs: what a method uses beyond the global model and the retained clients.\n")
    names = unlearner_names()
    for name in names:
        cls = unlearner_class(name)
        print(_wrap(summary(cls), f"{name:10s} {cls.title or name:12s} ", 24))
        needs = cls.requirements.describe()
        print(_wrap(f"scenarios: {applies_to(name, kinds)}; needs: {needs}", " " * 24, 24))
    external = {n: origin for n, origin in installed("method").items() if n not in names}
    if external:
        print("\nInstalled by other packages (entry points, group fednot.methods; not loaded):")
        for name, origin in sorted(external.items()):
            print(f"{name:10s} {origin}")
    return 0


def summary(cls: type[Unlearner]) -> str:
    """A method's ``summary`` if it has one, else the first line of its own docstring."""
    text = getattr(cls, "summary", None)
    if not isinstance(text, str) or not text.strip():
        text = (cls.__doc__ or "").strip()
    return text.splitlines()[0].strip() if text else "(no description)"


def applies_to(name: str, kinds: tuple[str, ...]) -> str:
    """The scenario kinds the method ``name`` serves (by its `Unlearner.not_applicable`)."""
    try:
        method = create_unlearner(name)
    except (FedNotError, TypeError):  # a registered class whose constructor needs arguments
        return "unknown (its constructor needs arguments)"
    served = [kind for kind in kinds if method.not_applicable(kind) is None]
    return "all" if len(served) == len(kinds) else ", ".join(served) or "none"


def _wrap(text: str, first: str, indent: int) -> str:
    """``first`` then ``text``, wrapped at `WIDTH` columns with ``indent`` spaces on each line."""
    return textwrap.fill(
        text, WIDTH, initial_indent=first, subsequent_indent=" " * indent, break_on_hyphens=False
    )


def presets(args: argparse.Namespace) -> int:
    """``fednot presets``."""
    for name in preset_names():
        print(f"{name:20s} {preset_description(name)}")
    print("\nScenarios (fednot bench --scenario NAME): " + ", ".join(scenario_names()))
    return 0


__all__ = ["applies_to", "method_options", "methods", "option_defaults", "presets", "show_config"]
