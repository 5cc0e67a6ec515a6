"""The Flower app directory of fednot, and the environment of an offline Flower process.

``flwr run`` builds a Flower App Bundle from a folder holding a ``pyproject.toml``
(``[tool.flwr.app]`` components as ``module:attr``, run-config defaults) and the modules it
names. `write_app` writes one whose module re-exports `fednot.integrations.flower.apps`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from fednot.integrations.flower.settings import RUN_CONFIG_DEFAULTS, ConfigValue

APP_MODULE = "fednot_flower_app"
QUIET_ENVIRONMENT = {
    "FLWR_TELEMETRY_ENABLED": "0",  # no events posted to telemetry.flower.ai
    "FLWR_DISABLE_UPDATE_CHECK": "1",  # no update checks by the CLI and the daemons
    "RAY_USAGE_STATS_ENABLED": "0",  # no Ray usage statistics
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",  # Ray's future default; silences its warning
    "OMP_NUM_THREADS": "1",  # N processes share this machine's cores
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1",  # start App processes sooner (default 1 s)
}
"""What every Flower process needs to stay offline (besides a private ``FLWR_HOME``)."""


def quiet_environment(flwr_home: Path) -> dict[str, str]:
    """Environment variables for an offline Flower process with a private ``FLWR_HOME``."""
    return {**QUIET_ENVIRONMENT, "FLWR_HOME": str(flwr_home)}


def write_app(folder: Path, config: Mapping[str, ConfigValue] | None = None) -> Path:
    """Write a Flower app for fednot into ``folder``; ``config`` sets run-config defaults.

    Every key of `RUN_CONFIG_DEFAULTS` is declared, since ``flwr run --run-config`` may only
    override declared keys. The app lists no dependency beyond flwr: fednot must be installed on
    every host, and runtime installation stays off.
    """
    values = {**RUN_CONFIG_DEFAULTS, **(config or {})}
    lines = [
        "[project]",
        'name = "fednot-flower-app"',
        'version = "0.1.0"',
        'dependencies = ["flwr>=1.42,<1.43"]  # and fednot, installed on every host',
        "",
        "[tool.flwr.app]",
        'publisher = "fednot"',
        "",
        "[tool.flwr.app.components]",
        f'serverapp = "{APP_MODULE}:server_app"',
        f'clientapp = "{APP_MODULE}:client_app"',
        "",
        "[tool.flwr.app.config]",
        *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items()),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    (folder / f"{APP_MODULE}.py").write_text(
        '"""fednot\'s Flower apps."""\n\n'
        "from fednot.integrations.flower.apps import client_app, server_app\n\n"
        '__all__ = ["client_app", "server_app"]\n'
    )
    return folder
