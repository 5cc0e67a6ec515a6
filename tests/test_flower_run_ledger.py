"""A deletion ledger for fednot's own apps (`run_fednot`, ``fednot flower up --ledger``).

Two runs on in-process grids share one ledger file, each run with new node ids: what the first
run served, the second must honour from its start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "flwr", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

from fednot.errors import LedgerError  # noqa: E402
from fednot.integrations.flower import create_client_app, parse_settings, run_fednot  # noqa: E402
from fednot.integrations.flower.result import FlowerResult  # noqa: E402
from fednot.integrations.flower.testing.checks import app_defaults, node_configs  # noqa: E402
from fednot.integrations.flower.testing.inprocess import InProcessGrid  # noqa: E402
from fednot.store.ledger import DeletionLedger, state_digest  # noqa: E402
from fednot.testing import tiny_config  # noqa: E402

pytestmark = pytest.mark.flower


def _run(ledger: Path, seed: int, **extra: Any) -> tuple[FlowerResult, InProcessGrid]:
    """One run with ``ledger``; ``seed`` draws the grid's node ids (a new deployment's)."""
    config = tiny_config()
    defaults = app_defaults(config, ledger=str(ledger), **extra)
    nodes = node_configs(config.data.num_clients)
    grid = InProcessGrid(create_client_app(defaults), nodes, defaults, seed=seed)
    return run_fednot(grid, parse_settings({}, defaults)), grid


def _types_to(grid: InProcessGrid, node: int) -> set[str]:
    return {m.metadata.message_type for m in grid.delivered if m.metadata.dst_node_id == node}


def test_a_client_forgotten_in_one_run_takes_no_part_in_the_next(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.json"
    first, _ = _run(ledger, seed=0, **{"forget-requests": "1:client"})
    # The next run relays client 1's request again: asked, its node would file it.
    second, grid = _run(ledger, seed=1, **{"forget-requests": "1:client"})

    node = second.clients[1]
    assert node != first.clients[1]  # a new deployment: new node ids
    assert _types_to(grid, node) == {"query.identify"}  # no training, no request query
    assert _types_to(grid, second.clients[0]) >= {"train", "query.request"}
    assert any(1 in r.clients for r in first.pretrain.rounds)
    assert second.pretrain.rounds and all(1 not in r.clients for r in second.pretrain.rounds)
    assert second.requests == [] and second.refused == []  # its request is not served again

    (receipt,) = DeletionLedger(ledger, create=False).receipts
    served = first.requests[0]
    assert (receipt.status, receipt.identities, receipt.kind) == ("done", ("1",), "client")
    assert receipt.node_ids == (first.clients[1],)  # the node id of the run that served it
    assert receipt.request == {"kind": "client", "clients": [1], "classes": None, "indices": None}
    assert receipt.method == "not" and receipt.step["negated_layers"] == ["fc1"]
    assert receipt.recovery_rounds == len(served.outcome.log.rounds) > 0
    assert receipt.digest_after == state_digest(first.state)
    assert receipt.digest_before.startswith("sha256:")
    assert receipt.digest_before != receipt.digest_after
    assert 0 < receipt.bytes_sent["train"] < first.bytes_sent["train"]  # recovery, not pretrain
    assert receipt.bytes_received["train"] > 0


def test_the_receipt_holds_the_model_before_the_request(tmp_path: Path) -> None:
    """Pre-train, checkpoint, then unlearn from it: the digest before is the checkpoint's."""
    ledger, checkpoint = tmp_path / "ledger.json", str(tmp_path / "pretrained.pt")
    pretrained, _ = _run(ledger, seed=0, stage="pretrain", checkpoint=checkpoint)
    assert not ledger.exists()  # pre-training serves no request: nothing to record
    unlearned, _ = _run(
        ledger, seed=1, stage="unlearn", checkpoint=checkpoint, **{"forget-requests": "1:client"}
    )

    (receipt,) = DeletionLedger(ledger).receipts
    assert receipt.digest_before == state_digest(pretrained.state)
    assert receipt.digest_after == state_digest(unlearned.state)
    again, _ = _run(ledger, seed=2, stage="pretrain", checkpoint=checkpoint)
    assert again.pretrain.rounds and all(1 not in r.clients for r in again.pretrain.rounds)


def test_a_class_wise_request_leaves_a_receipt_and_the_client_trains_again(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.json"
    _run(ledger, seed=0, **{"forget-requests": "2:classes=0"})
    second, grid = _run(ledger, seed=1)

    (receipt,) = DeletionLedger(ledger).receipts
    assert (receipt.kind, receipt.identities, receipt.status) == ("class", ("2",), "done")
    assert receipt.request["classes"] == [0]
    assert DeletionLedger(ledger).forgotten == frozenset()
    assert all(2 in r.clients for r in second.pretrain.rounds)  # client 2 stays
    assert {"train", "query.request"} <= _types_to(grid, second.clients[2])


def test_a_damaged_ledger_stops_the_run_before_any_message(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.json"
    _run(ledger, seed=0, **{"forget-requests": "1:client"})
    ledger.write_text(ledger.read_text()[:-40])  # truncated
    config = tiny_config()
    defaults = app_defaults(config, ledger=str(ledger))
    grid = InProcessGrid(create_client_app(defaults), node_configs(3), defaults, seed=1)

    with pytest.raises(LedgerError, match="not valid JSON"):
        run_fednot(grid, parse_settings({}, defaults))
    assert grid.delivered == []  # not even an identity query, let alone training
