"""`UnlearningStrategy` with a deletion ledger, on an in-process grid (seconds, no Ray).

The ClientApp is examples/flower_quickstart's (it answers the identity query); the restarts and
the simulation are in tests/test_flower_quickstart.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "flwr.simulation", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

from flwr.app import ArrayRecord, ConfigRecord  # noqa: E402
from flwr.proto.node_pb2 import NodeInfo  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from fednot.errors import ConfigError, LedgerError  # noqa: E402
from fednot.integrations.flower import UnlearningStrategy  # noqa: E402
from fednot.integrations.flower.ledger import public_key_identity  # noqa: E402
from fednot.integrations.flower.testing.inprocess import InProcessGrid  # noqa: E402
from fednot.store.ledger import DeletionLedger, read_receipts  # noqa: E402
from fednot.unlearning import NoT  # noqa: E402

pytestmark = pytest.mark.flower

ROOT = Path(__file__).resolve().parents[1] / "examples"
CONFIG = {"batch-size": 16, "local-epochs": 1}
LR = ConfigRecord({"lr": 0.05})


@pytest.fixture
def quickstart(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The quickstart example's package (client_app, task)."""
    monkeypatch.syspath_prepend(str(ROOT / "flower_quickstart"))
    for name in [m for m in sys.modules if m.split(".")[0] == "pytorchexample"]:
        monkeypatch.delitem(sys.modules, name)
    import pytorchexample.client_app
    import pytorchexample.task

    return pytorchexample


def _grid(app: Any, nodes: int = 4, seed: int = 0) -> InProcessGrid:
    configs = [{"partition-id": k, "num-partitions": nodes} for k in range(nodes)]
    return InProcessGrid(app, configs, CONFIG, seed=seed)


def _node(grid: InProcessGrid, partition: int) -> int:
    return next(n for n, c in grid.contexts.items() if c.node_config["partition-id"] == partition)


def test_the_ledger_is_on_disk_before_the_step_and_complete_after(
    quickstart: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid, path = _grid(quickstart.client_app.app), tmp_path / "ledger.json"
    net = quickstart.task.Net
    strategy = UnlearningStrategy(FedAvg(), method=NoT(), model=net(), ledger=DeletionLedger(path))
    trained = strategy.start(grid, ArrayRecord(net().state_dict()), train_config=LR, num_rounds=1)
    on_disk_at_step = []
    step = strategy.method.unlearn
    monkeypatch.setattr(
        strategy.method,
        "unlearn",
        lambda *a: on_disk_at_step.extend(read_receipts(path)) or step(*a),
    )
    out = strategy.unlearn(grid, trained.arrays, [_node(grid, 2)], rounds=1, train_config=LR)

    assert [(r.identities, r.status) for r in on_disk_at_step] == [(("2",), "started")]
    (receipt,) = DeletionLedger(path, create=False).receipts
    assert receipt == out.receipt and receipt.status == "done"
    assert receipt.node_ids == (_node(grid, 2),) and receipt.recovery_rounds == 1
    assert receipt.step["negated_parameters"] == ["conv1.weight"]
    assert receipt.bytes_sent["train"] > 0 and receipt.settings["layers"] == "first"
    assert receipt.digest_before != receipt.digest_after


def test_a_forgotten_identity_gets_no_training_on_a_new_grid(
    quickstart: Any, tmp_path: Path
) -> None:
    ledger = DeletionLedger(tmp_path / "ledger.json")
    ledger.begin(["1"], [123], "not")  # an earlier run's request (started: still forgotten)
    grid = _grid(quickstart.client_app.app, seed=5)
    net = quickstart.task.Net
    strategy = UnlearningStrategy(FedAvg(), method=NoT(), model=net(), ledger=ledger)
    strategy.start(grid, ArrayRecord(net().state_dict()), train_config=LR, num_rounds=2)

    to_one = [
        m.metadata.message_type
        for m in grid.delivered
        if m.metadata.dst_node_id in {_node(grid, 1)}
    ]
    assert to_one == ["query.identify"]
    trained = {m.metadata.dst_node_id for m in grid.delivered if m.metadata.message_type == "train"}
    assert trained == {_node(grid, k) for k in (0, 2, 3)}
    assert strategy.nodes_of(grid, ["1", "3"]) == [_node(grid, 3)]  # "1" has no node to address


def test_an_app_that_does_not_answer_the_identity_query_is_told_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "flower_app"))
    monkeypatch.delitem(sys.modules, "not_app", raising=False)
    import not_app

    grid = InProcessGrid(not_app.client_app, [{"partition-id": k} for k in range(3)])
    ledger = DeletionLedger(tmp_path / "ledger.json")
    strategy = UnlearningStrategy(FedAvg(), method=NoT(), model=not_app.Net(), ledger=ledger)
    with pytest.raises(ConfigError, match="Answer the identity query in the ClientApp"):
        strategy.start(grid, ArrayRecord(not_app.Net().state_dict()), num_rounds=1)
    assert not [m for m in grid.delivered if m.metadata.message_type == "train"]


def test_public_key_identity_needs_the_keys_and_hashes_them(quickstart: Any) -> None:
    grid = _grid(quickstart.client_app.app)
    nodes = sorted(grid.contexts)
    with pytest.raises(ConfigError, match="no public key"):
        public_key_identity(grid, nodes)  # a grid that reports no keys (node auth off)
    keys = {n: bytes([i]) * 32 for i, n in enumerate(nodes)}
    grid.get_nodes = lambda: [NodeInfo(node_id=n, public_key=k) for n, k in keys.items()]  # type: ignore[method-assign]
    identities = public_key_identity(grid, nodes)
    assert len(set(identities.values())) == 4 and all(
        i.startswith("key:") for i in identities.values()
    )
    assert public_key_identity(grid, nodes[:1]) == {nodes[0]: identities[nodes[0]]}


def test_a_damaged_ledger_stops_the_server_before_any_message(tmp_path: Path) -> None:
    (tmp_path / "ledger.json").write_text('{"format": "fednot-deletion-ledger", "version": 1')
    with pytest.raises(LedgerError, match="not valid JSON"):
        DeletionLedger(tmp_path / "ledger.json")
