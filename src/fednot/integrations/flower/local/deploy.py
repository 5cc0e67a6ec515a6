"""`deploy`: pre-train on a local Flower deployment, then serve the clients' forget requests.

It writes the app (`fednot.integrations.flower.local.appdir.write_app`), starts a
`fednot.integrations.flower.local.processes.LocalDeployment`, and stops everything at the end. In
between, each method serves the requests in a Flower run of its own, all on the same
SuperLink and SuperNodes: by default one pre-training run writes a checkpoint and each method's
run unlearns from it (the same original model for every method); with ``single_run`` each
method's run pre-trains itself, which the methods that read the training history need.

Each SuperNode reads its forget request from a file (``forget-file`` in its node config) at
every request round, so a data owner can file a request after training without a restart.

With a deletion ledger (``ledger``) every run reads it, so the clients it forgot take no part
(the pre-training run too), and the unlearning run records a receipt per request. One method
only: a second method's run would read the first one's receipts, and find its clients gone.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fednot.errors import ConfigError, FedNotError
from fednot.integrations.flower.local.appdir import write_app
from fednot.integrations.flower.local.processes import LocalDeployment, RunOutput
from fednot.integrations.flower.settings import ConfigValue
from fednot.unlearning.registry import unlearner_class

__all__ = [
    "DeployResult",
    "LocalDeployment",
    "RunOutput",
    "check_methods",
    "deploy",
    "read_result",
    "temp_workdir",
]


@dataclass
class DeployResult:
    """What `deploy` did: each run's output, each method's ``result.json``, where files are.

    Attributes:
        workdir: FLWR_HOME, logs, the app, and ``out/<method>/`` (result.json, final.pt;
            ``out/pretrain/`` for the pre-training run).
        runs: every ``flwr run``, in order (the pre-training run first, if there was one).
        results: each method's ``result.json``, in the order the methods ran.
        up_seconds: how long the SuperLink and SuperNodes took to start.
    """

    workdir: Path
    runs: list[RunOutput]
    results: dict[str, dict[str, Any]]
    up_seconds: float


MAX_LOCAL_NODES = 64
"""The most SuperNodes `deploy` starts on one machine (each a process of ~0.3 GB and more)."""


def deploy(
    config_toml: str,
    num_clients: int,
    *,
    seed: int = -1,
    methods: Sequence[str] = ("not",),
    forget: Mapping[int, str] | None = None,
    workdir: Path | None = None,
    single_run: bool = False,
    timeout: float = 1800.0,
    extra: Mapping[str, ConfigValue] | None = None,
    echo: bool = False,
    ledger: Path | None = None,
) -> DeployResult:
    """Start a local deployment, pre-train, file the ``forget`` requests, unlearn, stop.

    Args:
        config_toml: the fednot `RunConfig` as TOML (`fednot.configio.to_toml`).
        num_clients: how many SuperNodes to start (``data.num_clients``).
        seed: the run seed (-1: the configuration's first).
        methods: the unlearning methods, each serving the requests in its own Flower run.
        forget: each requesting client's request text (``client``, ``classes=0,3``, ...),
            written to its SuperNode's request file after pre-training.
        workdir: where FLWR_HOME, logs, the app and results go (default: a new temp folder).
        single_run: each method's run pre-trains and unlearns, instead of one pre-training run
            and a checkpoint that every method's run starts from.
        timeout: seconds allowed per ``flwr run``.
        extra: further run-config defaults (e.g. ``data-source``).
        echo: print each run's streamed log as it comes.
        ledger: a deletion ledger (run-config ``ledger``), read by every run and written by
            the run that serves the requests; needs exactly one method.

    Raises:
        ConfigError: for no method, a repeated or unknown one, one that serves no client's
            request, (without ``single_run``) one that reads the training history, which only
            a run that pre-trains records, several methods with a ``ledger``, or more clients
            than `MAX_LOCAL_NODES`; all before any process starts.
    """
    check_methods(methods, single_run, ledger)
    if not 1 <= num_clients <= MAX_LOCAL_NODES:
        raise ConfigError(
            f"A local deployment starts one SuperNode process per client on this machine, each "
            f"importing torch and Flower and starting a ClientApp process per message; "
            f"{num_clients} clients is outside 1..{MAX_LOCAL_NODES}. Use fewer clients "
            "(data.num_clients), or start SuperNodes on other machines (docs/flower.md, "
            "'Across machines')."
        )
    workdir = workdir or temp_workdir()
    out = workdir / "out"
    app = write_app(
        workdir / "app",
        {
            "fednot-config": config_toml,
            "seed": seed,
            "method": methods[0],
            "cache-dir": str(workdir / "cache"),
            "checkpoint": str(workdir / "pretrained.pt"),
            "ledger": str(ledger.expanduser().resolve()) if ledger else "",
            **(extra or {}),
        },
    )
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

    def run(stage: str, method: str, folder: Path) -> None:
        if echo:
            print(f"==> flwr run: stage {stage}, method {method}", flush=True)
        overrides = {"stage": stage, "method": method, "out": str(folder)}
        runs.append(federation.run(app, overrides, timeout, echo=echo))
        if runs[-1].returncode != 0:
            raise FedNotError(
                f"flwr run (stage {stage}, method {method}) failed with code "
                f"{runs[-1].returncode}:\n{runs[-1].output[-4000:]}\nLogs: {workdir / 'logs'}"
            )

    with LocalDeployment(nodes, workdir) as federation:  # type: ignore[arg-type]
        up = time.perf_counter() - start
        if not single_run:
            run("pretrain", methods[0], out / "pretrain")
        for client, text in (forget or {}).items():
            (requests / f"{client}.txt").write_text(text + "\n")
        for method in methods:
            run("all" if single_run else "unlearn", method, out / method)
    return DeployResult(workdir, runs, {m: read_result(out / m) for m in methods}, up)


def check_methods(methods: Sequence[str], single_run: bool, ledger: Path | None = None) -> None:
    """Fail before any process starts (see `deploy`'s Raises)."""
    if not methods or len(set(methods)) != len(methods):
        raise ConfigError(f"Expected one or more distinct methods, got {list(methods)}.")
    if ledger is not None and len(methods) > 1:
        raise ConfigError(
            f"A deletion ledger ({ledger}) records the requests of one method: with methods "
            f"{list(methods)}, each method's run would read the previous one's receipts and find "
            "the requesting clients already forgotten. Run one --method per ledger (or compare "
            "methods without --ledger)."
        )
    for name in methods:
        cls = unlearner_class(name)
        if not cls.scenarios & {"client", "class", "instance"}:  # what a client can request
            raise ConfigError(f"{name!r} does not serve a client's request on a federation.")
        if cls.requirements.history and not single_run:
            raise ConfigError(
                f"{name!r} reads the training history, which only a run that pre-trains "
                "records: serve it with single_run (fednot flower up --single-run)."
            )


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
