"""Result records: one `Record` per (method, seed), and their CSV form.

Each record's ``avg_gap`` is taken against the Retrain of the same seed. Summaries over seeds
(confidence intervals, paired comparisons) are in `fednot.comparison`; tables in `fednot.tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fednot.metrics.gaps import avg_gap

REFERENCE = "retrain"
ORIGINAL = "original"


@dataclass(frozen=True)
class Record:
    """Metrics and costs of one method on one seed. Accuracies and MIA are in percent.

    ``comm_bytes`` and ``flops`` cover the unlearning step plus recovery (the paper's Comm. and
    Comp.); ``rounds_to_target`` is the first recovery round whose retained-validation accuracy
    reaches Retrain's final one (``None``: not within the budget), an oracle measurement that
    no method stops on by default (docs/protocol.md).
    """

    method: str
    title: str
    seed: int
    retain_acc: float
    forget_acc: float
    test_acc: float
    mia: float
    mia_std: float
    val_acc: float
    scenario: str
    asr: float | None
    forget_class_acc: float | None
    remaining_class_test_acc: float | None
    avg_gap: float | None
    comm_bytes: int
    flops: int
    step_comm_bytes: int
    step_flops: int
    rounds: int
    stop_reason: str
    rounds_to_target: int | None
    comm_to_target: int | None
    seconds: float
    requirements: str
    storage_bytes: int = 0
    mia_floor: float | None = None  # the MIA's permutation noise floor (half-width, points)
    cached: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def rounds_to_target(val_accs: Sequence[float], target: float) -> int | None:
    """The first round (1-based) whose validation accuracy reaches ``target``, else ``None``."""
    for index, value in enumerate(val_accs):
        if value >= target:
            return index + 1
    return None


def with_gaps(records: Sequence[Record]) -> list[Record]:
    """Fill each record's ``avg_gap`` against the Retrain record of the same seed."""
    reference = {r.seed: r.to_dict() for r in records if r.method == REFERENCE}
    out = []
    for r in records:
        ref = reference.get(r.seed)
        gap = avg_gap(r.to_dict(), ref) if ref is not None else None
        out.append(Record(**{**r.to_dict(), "avg_gap": gap}))
    return out


def csv_text(records: Sequence[Record]) -> str:
    """One CSV row per (method, seed) record, with the scalar fields of `Record`."""
    import csv
    import io

    fields = [f for f in Record.__dataclass_fields__ if f != "notes"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        data = record.to_dict()
        writer.writerow({f: data[f] for f in fields})
    return out.getvalue()
