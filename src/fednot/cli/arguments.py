"""Command-line arguments shared by every command that loads a configuration."""

from __future__ import annotations

import argparse
import json
import re

from fednot.errors import ConfigError


def add_config_arguments(parser: argparse.ArgumentParser, *, checkpoint: bool = False) -> None:
    """``--preset``, ``-c/--config`` and repeatable ``--set KEY=VALUE`` (into ``overrides``).

    With ``checkpoint=True`` (commands that read a checkpoint) the file and the overrides update
    the checkpoint's configuration, and ``--preset`` is hidden: a checkpoint fixes what a preset
    would set, so the command refuses it with a message.
    """
    preset = (
        "a shipped preset to start from (see `fednot presets`), or the path of a .toml preset "
        "(e.g. one written by `fednot tune`)"
    )
    parser.add_argument("--preset", help=argparse.SUPPRESS if checkpoint else preset)
    parser.add_argument(
        "-c",
        "--config",
        help="TOML file of unlearning/evaluation settings, applied over the checkpoint's "
        "configuration"
        if checkpoint
        else "TOML configuration file, applied over the preset",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration value, e.g. --set train.rounds=30 (repeatable)",
    )


def int_list(text: str | None, what: str, example: str) -> tuple[int, ...] | None:
    """``"1,2"`` as ``(1, 2)``, ``None`` as ``None``; a `ConfigError` naming ``what`` otherwise."""
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",")]
    # ASCII digits only: int() would also take "1_0", "+3" or other scripts' digits
    if not all(re.fullmatch(r"-?[0-9]+", part) for part in parts):
        raise ConfigError(
            f"Expected comma-separated {what} (whole numbers, none empty), e.g. {example}, "
            f"got {text!r}."
        )
    return tuple(int(part) for part in parts)


def add_selection_arguments(parser: argparse.ArgumentParser, *, methods: bool = True) -> None:
    """``--methods`` and ``--seeds``, shorthands of ``--set unlearn.methods=…`` and ``seeds=…``.

    `selection_overrides` turns them into overrides; ``fednot run``, ``fednot bench`` and the
    analyses share these definitions (``fednot tune`` and ``fednot audit`` mean other things).
    """
    if methods:
        parser.add_argument(
            "--methods",
            dest="chosen_methods",
            metavar="METHODS",
            help="comma-separated method names, or 'all' (see `fednot methods`); the same as "
            "--set unlearn.methods=a,b (default: the configuration's)",
        )
    parser.add_argument(
        "--seeds",
        dest="chosen_seeds",
        metavar="SEEDS",
        help="comma-separated seeds, e.g. 0,1,2; the same as --set seeds=0,1,2 (default: the "
        "configuration's)",
    )


def selection_overrides(args: argparse.Namespace) -> list[str]:
    """The overrides that ``--methods`` and ``--seeds`` stand for (none if not given).

    An empty list is left to the configuration's check, which says that one is needed.
    """
    overrides = []
    methods = getattr(args, "chosen_methods", None)
    if methods is not None:
        overrides.append(f"unlearn.methods={json.dumps(method_names(methods))}")
    seeds = getattr(args, "chosen_seeds", None)
    if seeds is not None:
        chosen = int_list(seeds, "seeds", "--seeds 0,1,2") if seeds.strip() else None
        overrides.append(f"seeds={json.dumps(list(chosen or ()))}")
    return overrides


def method_names(text: str) -> list[str]:
    """``"a, b"`` as ``["a", "b"]``, and ``"all"`` as every registered method."""
    if text.strip() == "all":
        from fednot.unlearning.registry import unlearner_names

        return unlearner_names()
    return [name.strip() for name in text.split(",") if name.strip()]


def scenario_help() -> str:
    """``--scenario``'s help: the shipped scenario fragments."""
    from fednot.presets import scenario_names

    return f"{', '.join(scenario_names())} (default: the preset's)"
