"""Command-line arguments shared by every command that loads a configuration."""

from __future__ import annotations

import argparse
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
        "-c", "--config",
        help="TOML file of unlearning/evaluation settings, applied over the checkpoint's "
        "configuration" if checkpoint else "TOML configuration file, applied over the preset",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a configuration value, e.g. --set train.rounds=30 (repeatable)",
    )  # fmt: skip


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
