"""Flower's PyTorch quickstart with the deletion ledger (examples/flower_quickstart).

Two requests at different times, with a server restart between them: run 1 trains and forgets
partition 0, run 2 (a new ServerApp, new node ids, the same ledger file) trains and forgets
partition 1. From the clients' side (a mod that logs every training message a node handles, or
the grid's deliveries), no forgotten client trains after its request, in its run or the next.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "flwr.simulation", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

from flwr.app import Context, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.common.config import get_fused_config_from_dir  # noqa: E402

from fednot.integrations.flower.testing.checks import quiet_environment  # noqa: E402
from fednot.integrations.flower.testing.inprocess import InProcessGrid  # noqa: E402
from fednot.integrations.flower.testing.training_log import (  # noqa: E402
    LOG_VARIABLE,
    read_training_log,
    training_log_mod,
)
from fednot.store.ledger import DeletionLedger  # noqa: E402

pytestmark = pytest.mark.flower

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flower_quickstart"
NODES = 4  # FedAvg waits for 2: forgetting 2 of 4 leaves 2


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The example's ClientApp and ServerApp modules, imported from its folder."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in [m for m in sys.modules if m.split(".")[0] == "pytorchexample"]:
        monkeypatch.delitem(sys.modules, name)
    from pytorchexample import client_app, server_app

    return client_app, server_app


def _run_config(tmp_path: Path, forget: str) -> dict[str, Any]:
    overrides = {
        "num-server-rounds": 2,
        "ledger": str(tmp_path / "ledger.json"),
        "model-file": str(tmp_path / "model.pt"),
        "forget": forget,
    }
    return dict(get_fused_config_from_dir(EXAMPLE, overrides))


def _check_no_forgotten_client_trained_after_its_request(tmp_path: Path) -> None:
    receipts = DeletionLedger(tmp_path / "ledger.json", create=False).receipts
    assert [r.identities for r in receipts] == [("0",), ("1",)]
    assert [r.status for r in receipts] == ["done", "done"]
    assert all(r.step["negated_parameters"] == ["conv1.weight"] for r in receipts)
    assert all(r.digest_before != r.digest_after for r in receipts)  # NoT changed the model
    log = read_training_log(tmp_path / "training.jsonl")
    for receipt in receipts:
        (identity,) = receipt.identities
        asked = datetime.fromisoformat(receipt.time)
        trained = [datetime.fromisoformat(str(e["time"])) for e in log if e["identity"] == identity]
        assert trained and min(trained) < asked  # it trained before its request (the check bites)
        assert max(trained) < asked, f"partition {identity} trained after its request"
    last = datetime.fromisoformat(receipts[1].time)
    after = {e["identity"] for e in log if datetime.fromisoformat(str(e["time"])) > last}
    assert after == {"2", "3"}  # the recovery rounds of request 2 ran on the two left


@pytest.fixture
def logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where `training_log_mod` logs, here and in Ray's workers."""
    monkeypatch.setenv(LOG_VARIABLE, str(tmp_path / "training.jsonl"))
    return tmp_path / "training.jsonl"


def test_two_requests_across_a_restart_in_process(
    example: tuple[Any, Any], logged: Path, tmp_path: Path
) -> None:
    client_app, server_app = example
    nodes = [{"partition-id": k, "num-partitions": NODES} for k in range(NODES)]
    runs = []
    for run, forget in enumerate(["0", "1"]):  # each run: a new ServerApp, new node ids
        config = _run_config(tmp_path, forget)
        grid = InProcessGrid(_logged(client_app), nodes, config, run_id=run + 1, seed=run)
        server_app.main(grid, Context(run + 1, 0, {}, RecordDict(), config))
        runs.append(grid)

    _check_no_forgotten_client_trained_after_its_request(tmp_path)
    zero = [n for n, c in runs[1].contexts.items() if c.node_config["partition-id"] == 0]
    to_zero = [m.metadata.message_type for m in runs[1].delivered if m.metadata.dst_node_id in zero]
    assert to_zero == ["query.identify"]  # after the restart: the identity query, nothing else


def _logged(client_app: Any) -> ClientApp:
    """The example's ClientApp, its handlers unchanged, with the training log as a mod."""
    app = ClientApp(mods=[training_log_mod])
    app.train()(client_app.train)
    app.evaluate()(client_app.evaluate)
    app.query("identify")(client_app.identify)
    return app


def test_two_requests_across_a_restart_under_flowers_simulation(
    example: tuple[Any, Any], logged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run a `run_simulation` of its own: a new ServerApp, new random node ids."""
    from flwr.common import EventType
    from flwr.simulation.run_simulation import _run_simulation
    from flwr.supercore.constant import NOOP_FEDERATION_ID
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    client_app, server_app = example
    for key, value in quiet_environment(tmp_path / "flwr-home").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", f"{EXAMPLE}:{':'.join(sys.path)}")  # for the Ray workers
    for run_id, forget in ((11, "0"), (12, "1")):
        config = _run_config(tmp_path, forget)
        run = Run.create_empty(run_id)  # run_simulation's, with the app's run config: the
        run.primary_task_id = run_id  # public API gives both apps an empty one
        run.override_config, run.federation_id = config, NOOP_FEDERATION_ID
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, 1
        _run_simulation(
            num_supernodes=NODES,
            exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
            client_app=_logged(client_app),
            server_app=server_app.app,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False},
            },
            server_app_context=Context(run_id, 0, {}, RecordDict(), config),
            app_dir=str(EXAMPLE),
            is_app=True,  # the ClientApps read the run config from the app folder, as flwr run does
            run=run,
        )

    _check_no_forgotten_client_trained_after_its_request(tmp_path)
