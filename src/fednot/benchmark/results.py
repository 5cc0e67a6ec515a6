"""Result records: one `Record` per (method, seed), their CSV form, and `load` for analysis.

Each record's ``avg_gap`` is taken against the Retrain of the same seed. Summaries over seeds
(confidence intervals, paired comparisons) are in `fednot.benchmark.comparison`; tables in
`fednot.benchmark.tables`.

`load` reads a run folder's records into a pandas DataFrame (pandas is optional: ``pip install
pandas``)::

    from fednot.benchmark.results import load

    df = load("runs/demo")
    df.groupby("method")["avg_gap"].mean()
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fednot.errors import ConfigError, FedNotError
from fednot.metrics import registry
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

    ``metrics`` holds the registered metrics (`fednot.metrics.registry`) by name, those measured
    on this cell only; `to_dict` spreads them into the record's flat JSON form, one key per
    registered metric (``None`` where not measured), between ``scenario`` and ``avg_gap``.

    ``comm_bytes`` and ``flops`` cover the unlearning step plus recovery (the paper's Comm. and
    Comp.); ``rounds_to_target`` is the first recovery round whose retained-validation accuracy
    reaches Retrain's final one (``None``: not within the budget), an oracle measurement that
    no method stops on by default (docs/protocol.md).

    A cell whose method diverged (its step or recovery produced non-finite values) has
    ``diverged`` set to the reason and no metrics: ``metrics`` is empty, ``avg_gap`` is ``None``
    and its costs, rounds and seconds are 0 (not measured). Summaries leave it out.
    """

    method: str
    title: str
    seed: int
    scenario: str
    metrics: Mapping[str, float]
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
    cached: bool = False
    notes: dict[str, Any] = field(default_factory=dict)
    diverged: str = ""  # why the method diverged on this seed ("": it did not)
    # the values `fednot tune` chose for this method (key -> value; docs/tuning.md); {}: none
    tuned: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        """The value of metric ``name``; ``None`` where not measured (or diverged)."""
        return self.metrics.get(name)

    def value(self, name: str) -> float:
        """The value of metric ``name``.

        Raises:
            KeyError: the record has no such metric (diverged, or not measured).
        """
        if name not in self.metrics:
            why = f"diverged ({self.diverged})" if self.diverged else "was not measured"
            raise KeyError(
                f"{self.method} seed {self.seed} has no metric {name!r}: it {why}; "
                f"measured: {', '.join(self.metrics) or 'none'}."
            )
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: flat, one key per field and per registered metric."""
        out: dict[str, Any] = {}
        for name in _FIELDS:
            if name == "metrics":
                out.update({m: self.metrics.get(m) for m in _metric_names(self.metrics)})
            else:
                value = getattr(self, name)
                out[name] = copy.deepcopy(value) if isinstance(value, dict) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Inverse of `to_dict`, also of its `json_safe` form (a NaN metric stored as null).

        A null metric that every measured record has (`Metric.always`) is read as NaN; another
        null metric (one that does not apply, or results from before it existed) as absent.
        """
        values = {k: v for k, v in data.items() if k in _FIELDS}
        unknown = [k for k in data if k not in _FIELDS and k not in registry.names()]
        if unknown:
            raise TypeError(
                f"A record has keys that are neither Record fields nor registered metrics: "
                f"{unknown}; register the metrics that wrote them (fednot.metrics.registry)."
            )
        measured = not values.get("diverged")
        metrics: dict[str, float] = {}
        for metric in registry.registered():
            value = data.get(metric.name)
            if value is not None:
                metrics[metric.name] = float(value)
            elif measured and metric.always and metric.name in data:
                metrics[metric.name] = math.nan
        return cls(**values, metrics=metrics)

    @classmethod
    def of_divergence(
        cls, method: str, title: str, seed: int, *, scenario: str, requirements: str, reason: str
    ) -> Record:
        """The record of a cell whose method diverged: ``reason``, and no metrics."""
        return cls.without_costs(
            method, title, seed, scenario=scenario, metrics={}, requirements=requirements
        ).with_divergence(reason)

    @classmethod
    def without_costs(
        cls,
        method: str,
        title: str,
        seed: int,
        *,
        scenario: str,
        metrics: dict[str, float],
        requirements: str,
    ) -> Record:
        """A record that costs nothing and ran no round (the original model's; a divergence)."""
        return cls(
            method=method,
            title=title,
            seed=seed,
            scenario=scenario,
            metrics=metrics,
            avg_gap=None,
            comm_bytes=0,
            flops=0,
            step_comm_bytes=0,
            step_flops=0,
            rounds=0,
            stop_reason="",
            rounds_to_target=None,
            comm_to_target=None,
            seconds=0.0,
            requirements=requirements,
        )

    def with_divergence(self, reason: str) -> Record:
        """This record, marked diverged with ``reason``."""
        return replace(self, stop_reason="diverged", diverged=reason)


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record))


def _metric_names(metrics: Mapping[str, float]) -> list[str]:
    """The registered metrics' names, then any other name in ``metrics``."""
    known = registry.names()
    return [*known, *(m for m in metrics if m not in known)]


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
    reference = {r.seed: r.metrics for r in records if r.method == REFERENCE}
    out = []
    for r in records:
        ref = reference.get(r.seed)
        gap = avg_gap(r.metrics, ref) if ref is not None and not r.diverged else None
        out.append(replace(r, avg_gap=gap))
    return out


def _gaps_per_request(records: list[Record], requests: list[int]) -> list[Record]:
    """``records`` with gaps against the Retrain of the same seed and request."""
    out = list(records)
    for request in set(requests):
        where = [i for i, r in enumerate(requests) if r == request]
        for i, record in zip(where, with_gaps([records[i] for i in where]), strict=True):
            out[i] = record
    return out


def columns() -> tuple[str, ...]:
    """The keys of `Record.to_dict` with one value each: the columns of results.csv and `load`.

    ``method``, ``title``, ``seed``, ``scenario``, every registered metric in registry order,
    ``avg_gap``, the costs, ``cached`` and ``diverged``.
    """
    out: list[str] = []
    for name in _FIELDS:
        if name == "metrics":
            out += registry.names()
        elif name not in ("notes", "tuned"):
            out.append(name)
    return tuple(out)


def csv_text(records: Sequence[Record]) -> str:
    """One CSV row per (method, seed) record, with the columns of `columns`."""
    import csv
    import io

    names = list(columns())
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for record in records:
        data = record.to_dict()
        writer.writerow({f: data[f] for f in names})
    return out.getvalue()


class MissingExtraError(FedNotError, ImportError):
    """An optional package a function needs is not installed; the message says what to install."""


def load(run_dir: str | Path) -> pandas.DataFrame:
    """The records of a run folder's ``results.json`` as a DataFrame, one row per method and seed.

    Columns: `columns` (``method``, ``seed``, the registered metrics, ``avg_gap``, the costs,
    ...), in that order; a metric that is missing (a diverged cell's, or one that does not apply)
    is NaN. Works on a run in progress: the records written so far. A sequence run (the
    ``sequence`` scenario) has one row per method, seed and request, with a ``request`` column
    (1: the first) after ``seed``.

    Raises:
        MissingExtraError: pandas is not installed.
        ConfigError: ``run_dir`` holds no readable results.json of fednot's.
    """
    try:
        import pandas as pd
    except ImportError as e:
        raise MissingExtraError(
            "fednot.benchmark.results.load returns a pandas DataFrame, and pandas is not "
            "installed: pip install pandas (or read results.csv, which holds the same columns)."
        ) from e
    path = Path(run_dir) / "results.json"
    try:
        data = json.loads(path.read_text())
        if data.get("scenario") == "sequence":  # chains: one record per request
            points = [p for chain in data["chains"] for p in chain["points"]]
            requests = [int(p["request"]) + 1 for p in points]
            records = _gaps_per_request([Record.from_dict(p["record"]) for p in points], requests)
        else:
            records = [Record.from_dict(r) for r in data["records"]]
            requests = []
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path} does not exist; pass the folder `fednot run` wrote (its --out)."
        ) from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{path} cannot be read as fednot results ({type(e).__name__}: {e}); pass the folder "
            "`fednot run` wrote (its --out)."
        ) from e
    names = columns()
    rows = [{f: r.to_dict()[f] for f in names} for r in records]
    frame = pd.DataFrame(rows, columns=list(names))
    if requests:
        frame.insert(3, "request", requests)
    metrics = set(registry.names())
    for name in names:  # a metric or an optional number (None where absent) as a float column
        kind = "" if name in metrics else str(Record.__dataclass_fields__[name].type)
        if name in metrics or ("None" in kind and ("float" in kind or "int" in kind)):
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
    return frame
