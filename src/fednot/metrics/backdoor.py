"""The backdoor's attack success rate (backdoor scenario only; docs/metrics.md)."""

from __future__ import annotations

from fednot.metrics.metric import Column, Direction, EvalInputs, Metric, Summary, percent


def _asr(inputs: EvalInputs) -> float | None:
    if inputs.triggered is None or inputs.target_label is None:
        return None
    return percent(inputs.triggered.predicted == inputs.target_label)


ASR = Metric(
    name="asr",
    title="ASR (backdoor)",
    unit="%",
    description=(
        "The share of triggered test images (true label not the target label) classified as "
        "the target label."
    ),
    compute=_asr,
    direction=Direction.LOWER,
    scenarios=frozenset({"backdoor"}),
    summary=Summary.INTERVAL,
    column=Column.VALUE,
)
