"""What a metric is: its name, how it is shown and summarised, and how it is computed.

A `Metric` is declared once (one module per metric or family, registered in
`fednot.metrics.registry`); records, summaries, tables, CSV, JSON and figures iterate over the
registered metrics instead of naming them. A metric computed from a model's outputs on the
evaluation's splits has a ``compute`` function of `EvalInputs`; the two attacks (the loss MIA
with its repeats and noise floor, the confidence attack) are computed together by
`fednot.benchmark.evaluation` and declare ``compute = None``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch


class Summary(enum.Enum):
    """How a method's summary carries a metric over seeds (`fednot.benchmark.comparison`)."""

    COMPARED = "compared"
    """Mean with its 95 % CI, the paired Δ to Retrain (``delta``) and ``delta_of_means``."""
    INTERVAL = "interval"
    """Mean with its 95 % CI over the seeds that have it (no Δ)."""
    MEAN = "mean"
    """The plain mean over the seeds that have it (a noise floor)."""
    NONE = "none"
    """Not summarised (kept in the records only)."""


class Column(enum.Enum):
    """Where the main table of results.md shows a metric (only if some method has it)."""

    DELTA = "delta"
    """Before the average gap: "mean ± CI (Δ to Retrain)"."""
    VALUE = "value"
    """After the gaps at cost points: "mean ± CI"."""
    NONE = "none"
    """Not in the table."""


class Direction(enum.Enum):
    """Which values are better."""

    HIGHER = "higher"
    LOWER = "lower"
    RETRAIN = "retrain"
    """Closest to Retrain's (the unlearning metrics: neither more nor less forgetting)."""
    NONE = "none"
    """Not a score (a spread, a noise floor)."""


@dataclass(frozen=True)
class SplitOutputs:
    """A model's outputs on one evaluation split, in the split's order.

    Attributes:
        losses: per-sample cross-entropy losses (float64, natural log).
        predicted: the predicted labels.
        labels: the true labels.
        margins: the true-class margins (`fednot.metrics.confidence`), where computed.
    """

    losses: torch.Tensor
    predicted: torch.Tensor
    labels: torch.Tensor
    margins: torch.Tensor | None = None

    @property
    def correct(self) -> torch.Tensor:
        """Whether each sample is classified correctly (boolean)."""
        return self.predicted == self.labels

    def __len__(self) -> int:
        """The number of samples."""
        return len(self.labels)


@dataclass(frozen=True)
class EvalInputs:
    """What a metric is computed from: one model's outputs on the evaluation's splits.

    Attributes:
        scenario: the kind whose metrics apply (``client``, ``class``, ``backdoor``, ...; a
            registered variant gives the kind it serves).
        retain: on D_r, the retained training samples.
        forget: on D_u, the forgotten training samples.
        test: on the server's test set.
        val: on the retained clients' pooled validation splits (``None`` at trajectory points).
        triggered: on the backdoor's triggered test set (backdoor only).
        target_label: the backdoor's target label (backdoor only).
        classes: the forgotten classes (class-wise only).
    """

    scenario: str
    retain: SplitOutputs
    forget: SplitOutputs
    test: SplitOutputs
    val: SplitOutputs | None = None
    triggered: SplitOutputs | None = None
    target_label: int | None = None
    classes: tuple[int, ...] | None = None


Compute = Callable[[EvalInputs], float | None]
"""A metric's value on the inputs (``None``: it does not apply to them)."""


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    Attributes:
        name: its key in records, summaries, results.json and results.csv.
        title: its column header in results.md (a `Column.DELTA` column adds " (Δ)").
        unit: its unit (``%``, ``points``, ``nats``).
        description: one sentence for the docs and listings.
        compute: how it is computed from `EvalInputs`; ``None`` for the attacks' statistics,
            which `fednot.benchmark.evaluation` computes itself.
        direction: which values are better.
        in_gap: it enters the average gap to Retrain (the NoT paper's four metrics).
        on_trajectory: it is also read at every trajectory point
            (`fednot.benchmark.evaluation.curve_point` computes it from the points' outputs,
            which have no ``val``).
        scenarios: the scenario kinds it applies to (``None``: every one).
        always: every record that did not diverge has it (a NaN read back from JSON's null is
            kept as NaN; an optional metric's null means "absent").
        summary: how the per-method summary carries it.
        column: where the main table shows it.
        floor: the name of the metric holding its noise floor (a Δ below it is marked ‡).
        label: its name in figures and prose (default: ``title``).
    """

    name: str
    title: str
    unit: str
    description: str
    compute: Compute | None
    direction: Direction
    in_gap: bool = False
    on_trajectory: bool = False
    scenarios: frozenset[str] | None = None
    always: bool = False
    summary: Summary = Summary.COMPARED
    column: Column = Column.NONE
    floor: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        """Check the declaration."""
        if not self.name.isidentifier():
            raise ValueError(f"A metric's name must be an identifier, got {self.name!r}.")

    @property
    def display(self) -> str:
        """Its name in figures and prose."""
        return self.label or self.title

    def applies_to(self, scenario: str) -> bool:
        """Whether it is measured in a scenario of this kind."""
        return self.scenarios is None or scenario in self.scenarios


def percent(correct: torch.Tensor) -> float:
    """The share of true values in percent (NaN for an empty tensor)."""
    return float(correct.double().mean() * 100) if len(correct) else float("nan")
