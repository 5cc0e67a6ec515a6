"""Helpers for testing fednot on Flower, and for checking a Flower run against the engine.

`app_defaults` and `node_configs` set up the fednot apps on `fednot.data.synthetic.tiny_federation`;
`engine_reference` runs the same configuration through the in-process engine, whose numbers a
Flower run must reproduce; `quiet_environment` (from `appdir`) is what every Flower process
needs offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import RunConfig
from fednot.configio import to_toml
from fednot.data.synthetic import tiny_federation
from fednot.federation.outcome import Trained, UnlearnOutcome
from fednot.integrations.flower.local.appdir import QUIET_ENVIRONMENT, quiet_environment
from fednot.integrations.flower.settings import ConfigValue
from fednot.progress import Silent
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.registry import create_unlearner

if TYPE_CHECKING:
    from flwr.serverapp import ServerApp

__all__ = [
    "QUIET_ENVIRONMENT",
    "app_defaults",
    "engine_reference",
    "node_configs",
    "quiet_environment",
    "same_state",
    "simulate",
]


def app_defaults(config: RunConfig, **extra: ConfigValue) -> dict[str, ConfigValue]:
    """Run-config defaults of the fednot apps: ``config`` on the tiny synthetic federation."""
    return {"fednot-config": to_toml(config), "data-source": "tiny", **extra}


def node_configs(
    count: int, extra: Mapping[int, Mapping[str, ConfigValue]] | None = None
) -> list[dict[str, ConfigValue]]:
    """The node configs of ``count`` SuperNodes; ``extra[k]`` adds entries to node ``k``."""
    extra = extra or {}
    return [{"partition-id": k, "num-partitions": count, **extra.get(k, {})} for k in range(count)]


def engine_reference(
    config: RunConfig, request: ForgetRequest, method: str = "not", seed: int = 0
) -> tuple[Experiment, Trained, UnlearnOutcome]:
    """The in-process engine on the tiny federation: (experiment, pre-trained, unlearned)."""
    federation = tiny_federation(config.data.num_clients, server_size=config.data.server_samples)
    exp = Experiment(config, seed, federation=federation, progress=Silent())
    unlearner = create_unlearner(method, config.options.get(method))
    trained = exp.pretrain(history=unlearner.history_spec())
    return exp, trained, exp.unlearn(trained, request, unlearner)


def same_state(a: StateDict, b: StateDict) -> bool:
    """True if two state dicts are bit-identical."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def simulate(
    defaults: Mapping[str, ConfigValue], num_supernodes: int, server_app: ServerApp | None = None
) -> None:
    """Run fednot's ClientApp and ``server_app`` (default: fednot's) under Flower's simulation.

    One CPU per virtual SuperNode, Ray on two CPUs and quiet logs (set `quiet_environment` first).
    """
    from flwr.simulation import run_simulation

    from fednot.integrations.flower import create_client_app, create_server_app

    run_simulation(
        server_app=server_app or create_server_app(dict(defaults)),
        client_app=create_client_app(dict(defaults)),
        num_supernodes=num_supernodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False},
        },
    )
