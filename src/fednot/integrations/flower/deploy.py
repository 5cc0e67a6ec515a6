"""`deploy`: pre-train on a local Flower deployment, then serve the clients' forget requests.

It writes the app (`fednot.integrations.flower.appdir.write_app`), starts a
`fednot.integrations.flower.processes.LocalDeployment`, runs pre-training and the unlearning
requests as two Flower runs joined by a checkpoint (or as one run), and stops everything.

Each SuperNode reads its forget request from a file (``forget-file`` in its node config) at
every request round, so a data owner can file a request after training without a restart.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fednot.errors import FedNotError
from fednot.integrations.flower.appdir import write_app
from fednot.integrations.flower.processes import LocalDeployment, RunOutput
from fednot.integrations.flower.settings import ConfigValue

__all__ = ["DeployResult", "LocalDeployment", "RunOutput", "deploy", "read_result", "temp_workdir"]


@dataclass
class DeployResult:
    """What `deploy` did: the runs' outputs, the final ``result.json`` and where files are."""

    workdir: Path
    runs: list[RunOutput]
    result: dict[str, Any]
    up_seconds: float


def deploy(
    config_toml: str,
    num_clients: int,
    *,
    seed: int = -1,
    method: str = "not",
    forget: Mapping[int, str] | None = None,
    workdir: Path | None = None,
    single_run: bool = False,
    timeout: float = 1800.0,
    extra: Mapping[str, ConfigValue] | None = None,
    echo: bool = False,
) -> DeployResult:
    """Start a local deployment, pre-train, file the ``forget`` requests, unlearn, stop.

    Args:
        config_toml: the fednot `RunConfig` as TOML (`fednot.configio.to_toml`).
        num_clients: how many SuperNodes to start (``data.num_clients``).
        seed: the run seed (-1: the configuration's first).
        method: the unlearning method.
        forget: each requesting client's request text (``client``, ``classes=0,3``, ...),
            written to its SuperNode's request file after pre-training.
        workdir: where FLWR_HOME, logs, the app and results go (default: a new temp folder).
        single_run: pre-train and unlearn in one Flower run instead of two runs joined by a
            checkpoint.
        timeout: seconds allowed per ``flwr run``.
        extra: further run-config defaults (e.g. ``data-source``).
        echo: print each run's streamed log as it comes.
    """
    workdir = workdir or temp_workdir()
    out = workdir / "out"
    app = write_app(workdir / "app", {
        "fednot-config": config_toml, "seed": seed, "method": method, "out": str(out),
        "cache-dir": str(workdir / "cache"), "checkpoint": str(workdir / "pretrained.pt"),
        **(extra or {}),
    })  # fmt: skip
    requests = workdir / "requests"
    requests.mkdir(parents=True, exist_ok=True)
    nodes = [
        {
            "partition-id": k,
            "num-partitions": num_clients,
            "forget-file": str(requests / f"{k}.txt"),
        }
        for k in range(num_clients)
    ]
    start = time.perf_counter()
    runs: list[RunOutput] = []
    with LocalDeployment(nodes, workdir) as federation:  # type: ignore[arg-type]
        up = time.perf_counter() - start
        stages = [("all", True)] if single_run else [("pretrain", False), ("unlearn", True)]
        for stage, file_requests in stages:
            if file_requests:
                for client, text in (forget or {}).items():
                    (requests / f"{client}.txt").write_text(text + "\n")
            runs.append(federation.run(app, {"stage": stage}, timeout, echo=echo))
            if runs[-1].returncode != 0:
                raise FedNotError(
                    f"flwr run (stage {stage}) failed with code {runs[-1].returncode}:\n"
                    f"{runs[-1].output[-4000:]}\nLogs: {workdir / 'logs'}"
                )
    return DeployResult(workdir, runs, read_result(out), up)


def temp_workdir() -> Path:
    """A fresh folder for a deployment's FLWR_HOME, logs, app and results."""
    return Path(tempfile.mkdtemp(prefix="fednot-flower-"))


def read_result(out: Path) -> dict[str, Any]:
    """The ``result.json`` a ServerApp wrote into ``out``."""
    path = out / "result.json"
    if not path.exists():
        raise FedNotError(f"The ServerApp wrote no {path}; see the run's log above.")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
