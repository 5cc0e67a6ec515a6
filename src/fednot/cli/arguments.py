"""Command-line arguments shared by every command that loads a configuration."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--preset``, ``-c/--config`` and repeatable ``--set KEY=VALUE`` (into ``overrides``)."""
    parser.add_argument("--preset", help="a shipped preset to start from (see `fednot presets`)")
    parser.add_argument("-c", "--config", help="TOML configuration file, applied over the preset")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a configuration value, e.g. --set train.rounds=30 (repeatable)",
    )  # fmt: skip
