"""Typed results end to end: cell logs by `CellKey`, `MethodSummary` rows, and the JSON layout of
``results.json`` they are written in (docs/cli.md), which stays what it was.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from fednot.benchmark.comparison import summarize
from fednot.benchmark.results import Record, json_safe, with_gaps
from fednot.benchmark.runlog import CellKey, CellLog, RoundLog, logs_from_json, logs_to_json
from fednot.benchmark.summary import summary_json
from fednot.federation.fedavg import RoundRecord, TrainLog
from fednot.metrics.metric import Summary
from fednot.metrics.registry import registered
from fednot.testing import sample_record

RETRAIN = {"retain_acc": 100.0, "forget_acc": 96.0, "test_acc": 97.0, "mia": 50.0}


def test_a_cell_key_is_written_as_method_slash_seed_and_read_back() -> None:
    for key in (CellKey("ft", 0), CellKey("pkg/seedy", 12), CellKey("retrain_prime", 3)):
        assert CellKey.from_json_key(key.json_key()) == key
    assert CellKey("not", 4).json_key() == "not/seed4"
    for bad in ("ft", "ft/seed", "/seed1", "ft/seedx"):
        with pytest.raises(ValueError, match="method>/seed<seed>"):
            CellKey.from_json_key(bad)


def test_a_cell_log_reads_the_engine_log_and_round_trips_through_results_json() -> None:
    rounds = [
        RoundRecord(1, (0, 2), math.nan, 90.5, 100, 7, 0.25, {}),
        RoundRecord(2, (1,), 0.5, 91.0, 100, 7, 0.5, {**RETRAIN, "forget_acc": 95.0}),
    ]
    log = CellLog.of(dict(RETRAIN), TrainLog(rounds, "budget of 2 rounds"))
    assert log.rounds[1].metrics["forget_acc"] == 95.0 and log.rounds[0].metrics == {}
    text = json.dumps(json_safe(logs_to_json({CellKey("ft", 1): log})))
    assert '"ft/seed1"' in text and '"train_loss": null' in text  # strict JSON
    back = logs_from_json(json.loads(text))
    (key,) = back
    assert key == CellKey("ft", 1) and math.isnan(back[key].rounds[0].train_loss)
    assert json.dumps(json_safe(logs_to_json(back))) == text  # a resumed run rewrites it as is
    assert list(log.to_dict()) == ["start", "stop_reason", "rounds"]
    assert list(log.rounds[0].to_dict()) == [
        "round",
        "clients",
        "train_loss",
        "val_acc",
        "comm_bytes",
        "flops",
        "seconds",
        "extra",
    ]


def _record(method: str, seed: int, forget: float, **extra: Any) -> Record:
    fields: dict[str, Any] = dict(**RETRAIN, mia_std=0.0, val_acc=97.0, comm_bytes=1000, flops=10)
    fields |= dict(rounds=9, mia_floor=1.5)
    return sample_record(method, seed, **{**fields, "forget_acc": forget, **extra})


def test_summary_rows_are_written_in_the_documented_layout() -> None:
    records, logs = [], {}
    for seed in range(3):
        records.append(_record("retrain", seed, 96.0))
        for method, offset in (("not", 0.2), ("ft", 1.0 + seed / 10)):
            curve = [96.0 + offset * (10 - r) for r in range(10)]
            records.append(_record(method, seed, curve[-1], comm_bytes=900))
            rounds = tuple(
                RoundLog(r, (0,), 0.1, 90.0, 100, 1, 0.0, {**RETRAIN, "forget_acc": curve[r]})
                for r in range(1, 10)
            )
            logs[CellKey(method, seed)] = CellLog({**RETRAIN, "forget_acc": curve[0]}, "", rounds)
    records.append(
        Record.of_divergence("pgd", "PGD", 0, scenario="client", requirements="none", reason="x")
    )
    summary = summarize(with_gaps(records), logs)
    rows = summary_json(summary)
    summarised = [m.name for m in registered() if m.summary is not Summary.NONE]
    head = ["method", "title", "seeds", "requirements", "diverged", *summarised]
    gaps = ["avg_gap", "avg_gap_of_means"]
    readings = ["gap_at", "beyond_run", "inexact", "paired"]
    costs = ["comm_bytes", "flops", "storage_bytes", "rounds", "seconds"]
    ratios = ["comm_bytes_ratio", "flops_ratio"]
    ft = rows[[r.method for r in summary].index("ft")]
    assert list(ft) == [
        *head,
        *gaps,
        *readings,
        *costs,
        *ratios,
        "rounds_to_target",
        "comm_to_target_ratio",
    ]
    pgd = rows[-1]  # diverged on every seed: every key, no numbers (its order, as before)
    assert list(pgd) == [
        *head,
        *gaps,
        *costs,
        *ratios,
        "comm_to_target_ratio",
        *readings,
        "rounds_to_target",
    ]
    assert pgd["diverged"] == [{"seed": 0, "reason": "x"}] and pgd["paired"] == {}
    assert list(ft["forget_acc"]) == ["mean", "low", "high", "n", "delta", "delta_of_means"]
    entry = ft["paired"]["not"]["end"]
    assert list(entry) == ["mean", "low", "high", "n", "p", "p_exact", "p_holm", "family"] + [
        "excluded"
    ]
    assert entry["family"] == "primary" and entry["p_holm"] is not None
    assert ft["beyond_run"]["comm100"] == [0, 1, 2]  # lists, as JSON has them
    typed = next(r for r in summary if r.method == "ft")
    assert typed.costs is not None and ft["comm_bytes_ratio"] == typed.costs.comm_bytes_ratio
    assert ft["avg_gap"] == (typed.avg_gap.to_dict() if typed.avg_gap else None)
    json.dumps(json_safe(rows), allow_nan=False)
