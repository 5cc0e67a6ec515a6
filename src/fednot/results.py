"""Result records: one `Record` per (method, seed), their CSV form, and `load` for analysis.

Each record's ``avg_gap`` is taken against the Retrain of the same seed. Summaries over seeds
(confidence intervals, paired comparisons) are in `fednot.comparison`; tables in `fednot.tables`.

`load` reads a run folder's records into a pandas DataFrame (pandas is optional: ``pip install
pandas``)::

    from fednot.results import load

    df = load("runs/demo")
    df.groupby("method")["avg_gap"].mean()
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fednot.errors import ConfigError, FedNotError
from fednot.metrics.gaps import avg_gap

if TYPE_CHECKING:
    import pandas

REFERENCE = "retrain"
RETRAIN_FLOOR = "retrain_prime"
"""Retrain′: an independent retrain (another training seed), the floor of every gap."""
ORIGINAL = "original"


@dataclass(frozen=True)
class Record:
    """Metrics and costs of one method on one seed. Accuracies and MIA are in percent.

    ``comm_bytes`` and ``flops`` cover the unlearning step plus recovery (the paper's Comm. and
    Comp.); ``rounds_to_target`` is the first recovery round whose retained-validation accuracy
    reaches Retrain's final one (``None``: not within the budget), an oracle measurement that
    no method stops on by default (docs/protocol.md).

    A cell whose method diverged (its step or recovery produced non-finite values) has
    ``diverged`` set to the reason and no metrics: the `MEASURED` fields and ``avg_gap`` are
    ``None`` and its costs, rounds and seconds are 0 (not measured). Summaries leave it out.
    """

    method: str
    title: str
    seed: int
    retain_acc: float | None  # None only in a diverged record, as the other metrics
    forget_acc: float | None
    test_acc: float | None
    mia: float | None
    mia_std: float | None
    val_acc: float | None
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
    conf_auc: float | None = None  # the confidence attack's ROC AUC × 100 (docs/metrics.md)
    conf_tpr: float | None = None  # its TPR at 1 % FPR, in percent
    conf_auc_floor: float | None = None  # its AUC's noise floor (half-width, points)
    conf_tpr_floor: float | None = None  # 95th percentile of its null TPR, in percent
    cached: bool = False
    notes: dict[str, Any] = field(default_factory=dict)
    diverged: str = ""  # why the method diverged on this seed ("": it did not)
    # the values `fednot tune` chose for this method (key -> value; docs/tuning.md); {}: none
    tuned: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Inverse of `to_dict`, also of its `json_safe` form (a NaN metric stored as null)."""
        values = dict(data)
        if not values.get("diverged"):
            for name in MEASURED:
                if values.get(name) is None:
                    values[name] = math.nan
        return cls(**values)

    @classmethod
    def of_divergence(
        cls, method: str, title: str, seed: int, *, scenario: str, requirements: str, reason: str
    ) -> Record:
        """The record of a cell whose method diverged: ``reason``, and no metrics."""
        return cls(
            method=method,
            title=title,
            seed=seed,
            retain_acc=None,
            forget_acc=None,
            test_acc=None,
            mia=None,
            mia_std=None,
            val_acc=None,
            scenario=scenario,
            asr=None,
            forget_class_acc=None,
            remaining_class_test_acc=None,
            avg_gap=None,
            comm_bytes=0,
            flops=0,
            step_comm_bytes=0,
            step_flops=0,
            rounds=0,
            stop_reason="diverged",
            rounds_to_target=None,
            comm_to_target=None,
            seconds=0.0,
            requirements=requirements,
            diverged=reason,
        )


MEASURED: tuple[str, ...] = ("retain_acc", "forget_acc", "test_acc", "mia", "mia_std", "val_acc")
"""The metrics every record has, unless its method diverged."""


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (strict JSON's null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


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
        gap = avg_gap(r.to_dict(), ref) if ref is not None and not r.diverged else None
        out.append(Record(**{**r.to_dict(), "avg_gap": gap}))
    return out


SCALAR_FIELDS: tuple[str, ...] = tuple(
    f for f in Record.__dataclass_fields__ if f not in ("notes", "tuned")
)
"""The fields of `Record` with one value each: the columns of results.csv and of `load`."""


def csv_text(records: Sequence[Record]) -> str:
    """One CSV row per (method, seed) record, with the scalar fields of `Record`."""
    import csv
    import io

    fields = list(SCALAR_FIELDS)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        data = record.to_dict()
        writer.writerow({f: data[f] for f in fields})
    return out.getvalue()


class MissingExtraError(FedNotError, ImportError):
    """An optional package a function needs is not installed; the message says what to install."""


def load(run_dir: str | Path) -> pandas.DataFrame:
    """The records of a run folder's ``results.json`` as a DataFrame, one row per method and seed.

    Columns: `SCALAR_FIELDS` (``method``, ``seed``, the metrics in percent, ``avg_gap``, the
    costs, ...), in that order; a metric that is missing (a diverged cell's) is NaN. Works on a
    run in progress: the records written so far.

    Raises:
        MissingExtraError: pandas is not installed.
        ConfigError: ``run_dir`` holds no readable results.json of fednot's.
    """
    try:
        import pandas as pd
    except ImportError as e:
        raise MissingExtraError(
            "fednot.results.load returns a pandas DataFrame, and pandas is not installed: "
            "pip install pandas (or read results.csv, which holds the same columns)."
        ) from e
    path = Path(run_dir) / "results.json"
    try:
        data = json.loads(path.read_text())
        records = [Record.from_dict(r) for r in data["records"]]
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path} does not exist; pass the folder `fednot run` wrote (its --out)."
        ) from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{path} cannot be read as fednot results ({type(e).__name__}: {e}); pass the folder "
            "`fednot run` wrote (its --out)."
        ) from e
    rows = [{f: getattr(r, f) for f in SCALAR_FIELDS} for r in records]
    frame = pd.DataFrame(rows, columns=list(SCALAR_FIELDS))
    for name in SCALAR_FIELDS:  # an optional number (None where absent) as a float column
        kind = str(Record.__dataclass_fields__[name].type)
        if "None" in kind and ("float" in kind or "int" in kind):
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
    return frame
