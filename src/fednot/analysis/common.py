"""The context every analysis runs in: configuration, seeds, output folder, figures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.runlog import CellLog
from fednot.benchmark.stats import Interval, mean_ci
from fednot.benchmark.tables import format_interval
from fednot.benchmark.trajectory import (
    COST_POINTS,
    Trajectory,
    cost_key,
    read_cost_points,
    trajectory,
)
from fednot.config import RunConfig
from fednot.configio import to_toml
from fednot.data.federated import Federation
from fednot.federation.costs import Costs
from fednot.federation.outcome import UnlearnOutcome
from fednot.metrics.gaps import GAP_METRICS
from fednot.progress import Progress, Silent
from fednot.store.cache import atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot() -> Any:
    """Matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Study:
    """One analysis: what it runs on and where it writes.

    Attributes:
        config: the run configuration (data, model, FedAvg recipe, recovery budget, seeds).
        out: the output folder (created on first write).
        progress: where progress lines go.
        options: analysis-specific options given on the command line (e.g. ``counts``).
        federation: use this federation instead of reading ``config.data`` (tests).
    """

    config: RunConfig
    out: Path
    progress: Progress = field(default_factory=Silent)
    options: dict[str, str] = field(default_factory=dict)  # analysis-specific CLI options
    federation: Federation | None = None  # a given federation instead of config.data (tests)
    _experiments: dict[int, Experiment] = field(default_factory=dict, repr=False)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds to run."""
        return self.config.seeds

    def experiment(self, seed: int, config: RunConfig | None = None) -> Experiment:
        """The experiment of ``seed`` (one per seed for the study's own configuration)."""
        if config is not None:
            return Experiment(config, seed, progress=self.progress, federation=self.federation)
        if seed not in self._experiments:
            self._experiments[seed] = Experiment(
                self.config, seed, progress=self.progress, federation=self.federation
            )
        return self._experiments[seed]

    def option(self, key: str, default: str) -> str:
        """An analysis-specific option (``--param KEY=VALUE`` on the command line)."""
        return self.options.get(key, default)

    def setting(self) -> str:
        """Data, model and seeds in a few words, for figure titles and reports."""
        d = self.config.data
        return (
            f"{d.dataset} / {self.config.model.name}, {d.num_clients} clients ({d.partition}), "
            f"seeds {list(self.seeds)}"
        )

    def path(self, name: str) -> Path:
        """``out/name``, creating ``out``."""
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name

    def save_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as ``out/name.json``, with the resolved configuration beside it."""
        atomic_write_text(to_toml(self.config), self.path("config.toml"))
        path = self.path(f"{name}.json")
        atomic_write_text(json.dumps(data, indent=1), path)
        return path

    def save_figure(self, figure: Figure, name: str) -> Path:
        """Write ``figure`` as ``out/name.png`` (readable at 100 % zoom) and ``.svg``; close it."""
        path = self.path(f"{name}.png")
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        figure.savefig(path.with_suffix(".svg"))
        pyplot().close(figure)
        return path

    def write_markdown(self, name: str, title: str, body: str) -> Path:
        """Write ``out/name.md`` with a heading, the setting and ``body``."""
        text = f"# {title}\n\n{self.setting()}.\n\n{body.strip()}\n"
        path = self.path(f"{name}.md")
        atomic_write_text(text, path)
        return path


def with_trajectories(config: RunConfig) -> RunConfig:
    """``config`` with a trajectory point after every round (if it had none)."""
    if config.eval.curve_every:
        return config
    return replace(config, eval=replace(config.eval, curve_every=1))


def outcome_points(outcome: UnlearnOutcome) -> Trajectory:
    """The trajectory of an unlearning outcome, step costs included."""
    log = CellLog.of(outcome.start, outcome.log)
    costs = outcome.step_costs
    return trajectory(log, step_comm_bytes=costs.comm_bytes, step_flops=costs.flops)


def gaps_at_cost(
    run: Trajectory, reference: Mapping[str, float], ref_costs: Costs
) -> dict[str, float | None]:
    """The average gap read at each cost point (`cost_keys`; ``None``: no model yet)."""
    readings = read_cost_points(run, ref_costs.comm_bytes, ref_costs.flops)
    return {key: None if r is None else r.point.gap(reference) for key, r in readings.items()}


def summarize_finals(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Over seeds: each metric, the average gap, gaps at cost, costs: mean and 95 % CI."""
    out: dict[str, Any] = {}
    for key in (*GAP_METRICS, "avg_gap", "comm_ratio", "rounds"):
        out[key] = mean_ci([float(r[key]) for r in rows]).to_dict()
    for fraction in COST_POINTS:
        key = cost_key(fraction)
        values = [float(v) for r in rows if (v := r["gap_at"].get(key)) is not None]
        out[f"gap_{key}"] = mean_ci(values).to_dict() if values else None
    return out


def _format(data: Mapping[str, Any] | None) -> str:
    """An interval in its JSON form (`Interval.to_dict`) as `format_interval` writes it."""
    return format_interval(None if data is None else Interval.from_dict(dict(data)))


def finals_table(summary: Mapping[str, Mapping[str, Any]], first: str) -> str:
    """A Markdown table of `summarize_finals` rows: mean ± 95 % CI half-width."""
    points = [cost_key(f) for f in COST_POINTS]
    header = [
        first,
        "retain",
        "forget",
        "test",
        "MIA",
        "avg. gap (end)",
        *(f"gap @{p.removeprefix('comm')} % comm." for p in points),
        "comm. / Retrain",
        "rounds",
    ]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    for label, row in summary.items():
        cells = [
            label,
            *(_format(row[m]) for m in GAP_METRICS),
            _format(row["avg_gap"]),
        ]
        cells += [_format(row[f"gap_{p}"]) for p in points]
        cells += [_format(row["comm_ratio"]), f"{row['rounds']['mean']:.0f}"]
        lines.append(f"| {' | '.join(cells)} |")
    lines.append("")
    lines.append(
        "Cells: mean ± half-width of the 95 % Student-t CI over seeds; gaps against the same "
        "seed's Retrain; gap @x % comm.: the last evaluated model within that communication "
        "(— : the step alone costs more)."
    )
    return "\n".join(lines)
