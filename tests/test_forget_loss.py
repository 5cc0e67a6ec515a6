"""The forget set's mean loss: computed from the forget split, carried to records and the table."""

from __future__ import annotations

import math

import pytest
import torch

from fednot.benchmark.comparison import summarize
from fednot.benchmark.evaluation import computed
from fednot.benchmark.results import Record, columns
from fednot.benchmark.tables import main_table
from fednot.metrics.forget_loss import FORGET_LOSS, mean_forget_loss
from fednot.metrics.metric import EvalInputs, SplitOutputs
from fednot.metrics.registry import get_metric, names


def _split(losses: list[float]) -> SplitOutputs:
    labels = torch.zeros(len(losses), dtype=torch.int64)
    return SplitOutputs(torch.tensor(losses, dtype=torch.float64), labels, labels)


def _inputs(forget: list[float]) -> EvalInputs:
    other = _split([9.0, 9.0])
    return EvalInputs("client", retain=other, forget=_split(forget), test=other, val=other)


def test_it_is_the_mean_loss_on_the_forget_split_only() -> None:
    assert mean_forget_loss(_inputs([0.5, 1.0, 3.0])) == pytest.approx(1.5)
    assert math.isnan(mean_forget_loss(_inputs([])))
    assert computed(_inputs([0.5, 1.5]))["forget_loss"] == pytest.approx(1.0)
    assert "forget_loss" not in computed(_inputs([0.5]), trajectory=True)


def test_it_is_registered_outside_the_gap_and_after_the_built_in_metrics() -> None:
    assert get_metric("forget_loss") is FORGET_LOSS and names()[-1] == "forget_loss"
    assert not FORGET_LOSS.in_gap and not FORGET_LOSS.on_trajectory
    assert "forget_loss" in columns()


def _record(method: str, seed: int, loss: float) -> Record:
    base = {"retain_acc": 90.0, "forget_acc": 80.0, "test_acc": 85.0, "mia": 50.0}
    return Record.from_dict(
        {
            "method": method,
            "title": method.upper(),
            "seed": seed,
            "scenario": "client",
            **base,
            "mia_std": 0.0,
            "val_acc": 88.0,
            "forget_loss": loss,
            "avg_gap": None,
            "comm_bytes": 10,
            "flops": 1,
            "step_comm_bytes": 0,
            "step_flops": 0,
            "rounds": 1,
            "stop_reason": "",
            "rounds_to_target": None,
            "comm_to_target": None,
            "seconds": 0.0,
            "requirements": "",
        }
    )


def test_records_summary_and_table_carry_it_with_its_delta_to_retrain() -> None:
    records = [_record("retrain", s, 2.0) for s in (0, 1)] + [
        _record("ft", s, 0.5 + s) for s in (0, 1)
    ]
    assert records[2].to_dict()["forget_loss"] == 0.5
    ft = next(r for r in summarize(records, {}) if r.method == "ft")
    loss = ft.compared["forget_loss"]
    assert loss is not None and loss.interval.mean == pytest.approx(1.0)
    assert loss.delta is not None and loss.delta.mean == pytest.approx(-1.0)
    assert ft.avg_gap_of_means == 0.0  # not in the average gap
    table = main_table(summarize(records, {}))
    assert "Forget loss (Δ)" in table.splitlines()[0] and "1.00 ± " in table
    old = {k: v for k, v in records[0].to_dict().items() if k != "forget_loss"}
    assert Record.from_dict(old).get("forget_loss") is None  # results from before it existed
