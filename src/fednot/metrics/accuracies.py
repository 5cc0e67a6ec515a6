"""The accuracies: on D_r, D_u, the test set, the retained validation splits, and class-wise.

All in percent, from the model's predictions on one evaluation split (docs/metrics.md).
"""

from __future__ import annotations

import torch

from fednot.metrics.metric import Column, Direction, EvalInputs, Metric, Summary, percent


def _val_acc(inputs: EvalInputs) -> float | None:
    return None if inputs.val is None else percent(inputs.val.correct)


def _forgotten(inputs: EvalInputs) -> torch.Tensor | None:
    if inputs.classes is None:
        return None
    return torch.isin(inputs.test.labels, torch.tensor(inputs.classes))


def _forget_class_acc(inputs: EvalInputs) -> float | None:
    forgotten = _forgotten(inputs)
    return None if forgotten is None else percent(inputs.test.correct[forgotten])


def _remaining_class_acc(inputs: EvalInputs) -> float | None:
    forgotten = _forgotten(inputs)
    return None if forgotten is None else percent(inputs.test.correct[~forgotten])


RETAIN_ACC = Metric(
    name="retain_acc",
    title="Retain",
    label="Retain acc.",
    unit="%",
    description="Accuracy on D_r, every retained training sample.",
    compute=lambda inputs: percent(inputs.retain.correct),
    direction=Direction.RETRAIN,
    in_gap=True,
    on_trajectory=True,
    always=True,
    column=Column.DELTA,
)
FORGET_ACC = Metric(
    name="forget_acc",
    title="Forget",
    label="Forget acc.",
    unit="%",
    description="Accuracy on D_u, the forgotten training samples.",
    compute=lambda inputs: percent(inputs.forget.correct),
    direction=Direction.RETRAIN,
    in_gap=True,
    on_trajectory=True,
    always=True,
    column=Column.DELTA,
)
TEST_ACC = Metric(
    name="test_acc",
    title="Test",
    label="Test acc.",
    unit="%",
    description="Accuracy on the server's test set.",
    compute=lambda inputs: percent(inputs.test.correct),
    direction=Direction.RETRAIN,
    in_gap=True,
    on_trajectory=True,
    always=True,
    column=Column.DELTA,
)
VAL_ACC = Metric(
    name="val_acc",
    title="Val.",
    label="Retained val. acc.",
    unit="%",
    description="Accuracy on the retained clients' pooled validation splits.",
    compute=_val_acc,
    direction=Direction.HIGHER,
    always=True,
)
FORGET_CLASS_ACC = Metric(
    name="forget_class_acc",
    title="Forget-class test acc.",
    unit="%",
    description="Test accuracy on the forgotten classes (class-wise only).",
    compute=_forget_class_acc,
    direction=Direction.RETRAIN,
    scenarios=frozenset({"class", "centralized"}),
    summary=Summary.INTERVAL,
    column=Column.VALUE,
)
REMAINING_CLASS_TEST_ACC = Metric(
    name="remaining_class_test_acc",
    title="Remaining-class test acc.",
    unit="%",
    description="Test accuracy on the classes not forgotten (class-wise only).",
    compute=_remaining_class_acc,
    direction=Direction.HIGHER,
    scenarios=frozenset({"class", "centralized"}),
    summary=Summary.INTERVAL,
    column=Column.VALUE,
)
