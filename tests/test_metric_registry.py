"""The metric registry: its order, its checks, and records carrying metrics by name."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fednot.benchmark.comparison import summarize
from fednot.benchmark.evaluation import Metrics, computed
from fednot.benchmark.results import Record, columns
from fednot.benchmark.tables import main_table
from fednot.metrics.gaps import GAP_METRICS
from fednot.metrics.metric import Column, Direction, EvalInputs, Metric, SplitOutputs, Summary
from fednot.metrics.registry import get_metric, names, register_metric, registered

BUILT_IN = (
    "retain_acc",
    "forget_acc",
    "test_acc",
    "mia",
    "mia_std",
    "val_acc",
    "asr",
    "forget_class_acc",
    "remaining_class_test_acc",
    "mia_floor",
    "conf_auc",
    "conf_tpr",
    "conf_auc_floor",
    "conf_tpr_floor",
)


def _outputs(predicted: list[int], labels: list[int], losses: list[float]) -> SplitOutputs:
    return SplitOutputs(
        torch.tensor(losses, dtype=torch.float64), torch.tensor(predicted), torch.tensor(labels)
    )


def _inputs(scenario: str = "client", **extra: Any) -> EvalInputs:
    split = _outputs([0, 1, 1, 0], [0, 1, 0, 0], [0.1, 0.2, 2.0, 0.3])
    return EvalInputs(scenario, split, split, split, val=split, **extra)


def test_the_built_in_metrics_come_first_in_their_fixed_order() -> None:
    assert names()[: len(BUILT_IN)] == BUILT_IN
    assert GAP_METRICS == ("retain_acc", "forget_acc", "test_acc", "mia")
    assert columns()[:4] == ("method", "title", "seed", "scenario")
    assert columns()[4 : 4 + len(names())] == names()


def test_a_name_is_registered_once_and_unknown_names_say_what_exists() -> None:
    clash = Metric("test_acc", "Other", "%", "another test accuracy", None, Direction.HIGHER)
    with pytest.raises(ValueError, match="already registered"):
        register_metric(clash)
    with pytest.raises(KeyError, match="registered: retain_acc"):
        get_metric("no_such_metric")
    with pytest.raises(ValueError, match="identifier"):
        Metric("bad name", "x", "%", "x", None, Direction.NONE)


def test_plain_metrics_are_computed_from_the_inputs_where_they_apply() -> None:
    values = computed(_inputs())
    assert values["retain_acc"] == values["test_acc"] == values["val_acc"] == 75.0
    assert "asr" not in values and "forget_class_acc" not in values
    backdoor = _inputs(
        "backdoor", triggered=_outputs([3, 3, 1, 3], [0, 1, 2, 0], [0, 0, 0, 0]), target_label=3
    )
    assert computed(backdoor)["asr"] == 75.0
    classwise = computed(_inputs("class", classes=(1,)))
    assert classwise["forget_class_acc"] == 100.0
    assert classwise["remaining_class_test_acc"] == pytest.approx(200 / 3)
    assert set(computed(_inputs(), trajectory=True)) == {"retain_acc", "forget_acc", "test_acc"}


def _record(method: str, seed: int, **metrics: float) -> Record:
    return Record(
        method=method,
        title=method.upper(),
        seed=seed,
        scenario="client",
        metrics=metrics,
        avg_gap=None,
        comm_bytes=10,
        flops=1,
        step_comm_bytes=0,
        step_flops=0,
        rounds=1,
        stop_reason="",
        rounds_to_target=None,
        comm_to_target=None,
        seconds=0.0,
        requirements="",
    )


def test_records_spread_every_registered_metric_and_read_back_by_name() -> None:
    record = _record("ft", 0, retain_acc=90.0, mia_std=float("nan"), asr=12.0)
    data = record.to_dict()
    assert [k for k in data if k in names()] == list(names())
    assert data["asr"] == 12.0 and data["conf_auc"] is None
    stored = {**data, "mia_std": None, "retain_acc": None, "asr": None}  # json_safe's nulls
    loaded = Record.from_dict(stored)
    assert loaded.get("asr") is None  # an optional metric's null: absent
    assert loaded.value("retain_acc") != loaded.value("retain_acc")  # always-present: NaN
    with pytest.raises(KeyError, match="no metric 'conf_auc'"):
        loaded.value("conf_auc")
    with pytest.raises(TypeError, match="neither Record fields nor registered metrics"):
        Record.from_dict({**data, "unknown_metric": 1.0})


def test_summary_and_table_follow_each_metrics_declaration() -> None:
    base = {"retain_acc": 90.0, "forget_acc": 80.0, "test_acc": 85.0, "mia": 50.0}
    records = [
        _record(m, s, **base, mia_std=0.0, val_acc=88.0, asr=float(s), mia_floor=1.0)
        for m in ("retrain", "ft")
        for s in (0, 1)
    ]
    rows = summarize(records, {})
    ft = next(r for r in rows if r.method == "ft")
    data = ft.to_dict()
    for metric in registered():
        if metric.summary is Summary.NONE:
            assert metric.name not in data
            assert ft.interval(metric.name) is None and ft.mean(metric.name) is None
    asr = ft.intervals["asr"]
    assert asr is not None and asr.mean == 0.5 and "asr" not in ft.compared  # an interval, no Δ
    assert "delta" not in data["asr"]
    val = ft.compared["val_acc"]
    assert val is not None and val.delta is not None and val.delta.mean == 0.0
    assert ft.mean("mia_floor") == 1.0 and data["mia_floor"] == 1.0
    assert "conf_auc" in ft.compared and ft.compared["conf_auc"] is None  # no record has it
    assert data["conf_auc"] is None
    table = main_table(rows)
    header = table.splitlines()[0]
    shown = [m.title for m in registered() if m.column is Column.DELTA and ft.has(m.name)]
    assert all(f"{title} (Δ)" in header for title in shown) and "Conf. AUC" not in header
    assert "ASR (backdoor)" in header


def test_metrics_are_read_by_name_and_the_core_ones_as_attributes() -> None:
    metrics = Metrics({"retain_acc": 1.0, "forget_acc": 2.0, "test_acc": 3.0, "val_acc": 4.0})
    assert metrics.test_acc == 3.0 and metrics["val_acc"] == 4.0 and metrics.get("asr") is None
    assert metrics.to_dict()["conf_tpr"] is None and list(metrics.to_dict()) == list(names())
    with pytest.raises(KeyError, match="not measured"):
        _ = metrics.mia
