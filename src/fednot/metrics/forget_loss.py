"""The forget set's mean cross-entropy loss (nats).

Lower means the model still fits the forgotten samples better; Retrain, which never trained on
them, sets the level to come back to. It is reported beside the gap metrics, not in the average
gap, and is not read along trajectories.
"""

from __future__ import annotations

from fednot.metrics.metric import Column, Direction, EvalInputs, Metric


def mean_forget_loss(inputs: EvalInputs) -> float:
    """The mean loss on D_u, in nats (NaN for an empty forget set)."""
    losses = inputs.forget.losses
    return float(losses.double().mean()) if len(losses) else float("nan")


FORGET_LOSS = Metric(
    name="forget_loss",
    title="Forget loss",
    unit="nats",
    description="The forget set's mean cross-entropy loss (lower: D_u still fitted better).",
    compute=mean_forget_loss,
    direction=Direction.RETRAIN,
    always=True,
    column=Column.DELTA,
)
