"""The context every analysis runs in: configuration, seeds, output folder, figures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fednot.cache import atomic_write_text
from fednot.config import RunConfig
from fednot.configio import to_toml
from fednot.data.federated import Federation
from fednot.experiment import Experiment
from fednot.progress import Progress, Silent

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
        """Write ``figure`` as ``out/name.png`` (readable at 100 % zoom) and close it."""
        path = self.path(f"{name}.png")
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        pyplot().close(figure)
        return path

    def write_markdown(self, name: str, title: str, body: str) -> Path:
        """Write ``out/name.md`` with a heading, the setting and ``body``."""
        text = f"# {title}\n\n{self.setting()}.\n\n{body.strip()}\n"
        path = self.path(f"{name}.md")
        atomic_write_text(text, path)
        return path
