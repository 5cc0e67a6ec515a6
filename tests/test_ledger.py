"""The deletion ledger's file (`fednot.store.ledger`) and ``fednot ledger show``; no flwr needed.

A damaged ledger is refused with `LedgerError`, never read as empty: an empty ledger would let
forgotten clients train again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from fednot.cli.app import main
from fednot.errors import LedgerError
from fednot.store.ledger import DeletionLedger, Receipt, _checksum, state_digest


def _served(path: Path) -> DeletionLedger:
    """A ledger with one finished request (client "3") and one started (client "5")."""
    ledger = DeletionLedger(path)
    first = ledger.begin(["3"], [77], "not", settings={"layers": "first"}, digest_before="sha256:a")
    ledger.finish(
        first,
        step={"negated_parameters": ["conv1.weight"]},
        recovery_rounds=2,
        bytes_sent={"train": 1000},
        bytes_received={"train": 900},
        digest_after="sha256:b",
    )
    ledger.begin(["5"], [78], "ft", digest_before="sha256:b")  # a crash before finish
    return ledger


def test_receipts_round_trip_and_a_started_request_still_forgets(tmp_path: Path) -> None:
    written = _served(tmp_path / "ledger.json")
    read = DeletionLedger(tmp_path / "ledger.json", create=False)
    assert read.receipts == written.receipts
    assert read.forgotten == {"3", "5"}
    done, started = read.receipts
    assert (done.status, started.status) == ("done", "started")
    assert done.step == {"negated_parameters": ["conv1.weight"]} and done.recovery_rounds == 2
    assert done.settings == {"layers": "first"} and done.node_ids == (77,)
    assert (done.kind, done.request) == ("client", {})  # the defaults: a client-wise request
    assert Receipt.from_dict(json.loads(json.dumps(done.to_dict()))) == done


def test_a_class_wise_receipt_does_not_forget_its_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ledger.json"
    ledger = DeletionLedger(path)
    request = {"kind": "class", "clients": [2], "classes": [0, 3], "indices": None}
    receipt = ledger.begin(["2"], [80], "not", kind="class", request=request)
    ledger.finish(receipt, digest_after="sha256:c")

    read = DeletionLedger(path, create=False)
    assert read.forgotten == frozenset()  # client 2's classes are gone; client 2 stays
    assert (read.receipts[0].kind, read.receipts[0].request) == ("class", request)
    assert main(["ledger", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 request(s); forgotten: none" in out
    assert "kind:        class (clients 2; classes 0, 3)" in out and "data of:     2" in out
    ledger.begin(["2"], [80], "not", kind="client", request={"kind": "client", "clients": [2]})
    assert DeletionLedger(path).forgotten == {"2"}  # a client-wise request does forget it
    with pytest.raises(ValueError, match="request kind"):
        ledger.begin(["4"], [81], "not", kind="node")


def test_a_missing_file_is_a_new_ledger_unless_create_is_false(tmp_path: Path) -> None:
    assert DeletionLedger(tmp_path / "new.json").receipts == ()
    assert not (tmp_path / "new.json").exists()  # written at the first request only
    with pytest.raises(LedgerError, match="does not exist"):
        DeletionLedger(tmp_path / "new.json", create=False)


def _damage(path: Path, how: str) -> None:
    text = path.read_text()
    document = json.loads(text)
    if how == "truncated":
        path.write_text(text[: len(text) // 2])
    elif how == "empty":
        path.write_text("")
    elif how == "garbled":
        path.write_bytes(b"\x00\xff{not json")
    elif how == "edited":  # a receipt removed by hand: the checksum no longer matches
        document["receipts"] = document["receipts"][1:]
        path.write_text(json.dumps(document))
    elif how == "version":
        document["version"] = 99
        path.write_text(json.dumps(document))
    elif how == "not-a-ledger":
        path.write_text(json.dumps({"receipts": []}))
    elif how == "bad-kind":  # a kind fednot never writes, under a checksum that matches
        document["receipts"][0]["kind"] = "node"
        document["checksum"] = _checksum(document["receipts"])
        path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "not valid JSON"),
        ("empty", "is empty"),
        ("garbled", "cannot be read|not valid JSON"),
        ("edited", "does not match its checksum"),
        ("version", "format version 99"),
        ("not-a-ledger", "not a fednot deletion ledger"),
        ("bad-kind", "malformed receipt"),
    ],
)
def test_a_damaged_ledger_is_refused_never_read_as_empty(
    tmp_path: Path, how: str, message: str
) -> None:
    path = tmp_path / "ledger.json"
    _served(path)
    _damage(path, how)
    with pytest.raises(LedgerError, match=message):
        DeletionLedger(path)  # create=True too: only a missing file is a new ledger


def test_a_failed_write_leaves_the_old_ledger_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.json"
    ledger = _served(path)
    before = path.read_bytes()

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        ledger.begin(["7"], [79], "not")
    assert path.read_bytes() == before  # the old ledger, whole
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]  # no temporary file left
    assert ledger.forgotten == {"3", "5"}  # memory follows the disk, not the failed write


def test_state_digest_is_stable_and_sees_every_bit() -> None:
    state = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.tensor(1, dtype=torch.int64)}
    same = {"a": torch.tensor(1, dtype=torch.int64), "b": torch.arange(6.0).reshape(2, 3)}
    assert state_digest(state) == state_digest(same)  # key order does not matter
    flipped = {**state, "b": state["b"].clone()}
    flipped["b"][1, 2] = -flipped["b"][1, 2]
    assert state_digest(flipped) != state_digest(state)
    assert state_digest({**state, "b": state["b"].reshape(3, 2)}) != state_digest(state)


def test_ledger_show_prints_each_receipt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _served(tmp_path / "ledger.json")
    assert main(["ledger", "show", str(tmp_path / "ledger.json")]) == 0
    out = capsys.readouterr().out
    assert "2 request(s); forgotten: 3, 5" in out
    assert "kind:        client\n  forgotten:   3  (node ids then: 77)" in out
    assert "negated_parameters: conv1.weight" in out and "method:      not (layers=first)" in out
    assert "recovery:    2 rounds; bytes sent train=1000, received train=900" in out
    assert "before sha256:a" in out and "after  sha256:b" in out
    assert "STARTED, NOT FINISHED" in out  # the request a crash interrupted


@pytest.mark.parametrize("how", ["edited", "missing"])
def test_ledger_show_refuses_a_bad_file_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    path = tmp_path / "ledger.json"
    if how == "edited":
        _served(path)
        _damage(path, how)
    assert main(["ledger", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fednot: error: Deletion ledger") and "Traceback" not in err
