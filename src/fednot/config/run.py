"""`RunConfig`: everything that determines a run, the sections of `fednot.config.sections`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fednot.config.rules import check_tuned, unused_settings
from fednot.config.scenario import ScenarioSettings
from fednot.config.sections import (
    MEMORY_FORMATS,
    TUNED_RECOVERY_LR,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
    UnlearnConfig,
    _require,
)
from fednot.environment import parse_device


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    unlearn: UnlearnConfig = field(default_factory=UnlearnConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # the scenario kind's own settings (`fednot.config.scenario`); default: client-wise
    scenario: ScenarioSettings = field(default_factory=ScenarioSettings)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method keyword options
    seeds: tuple[int, ...] = (0,)  # one seed keeps the demo under 10 min; use [0, 1, 2] for tables
    device: str = "cpu"
    threads: int | None = None  # torch threads; None = torch's default
    # the layout of the model's 4-D weights and activations: "channels_last" (NHWC) is 1.5-2.5x
    # faster for the CNNs on CPU; "contiguous" (NCHW) is torch's default. Like the thread count it
    # changes low-order bits, so it is part of every cache key (docs/reliability.md).
    memory_format: str = "channels_last"
    out_dir: str = "runs"
    cache_dir: str = ".fednot-cache"  # trained and retrained models, keyed by what determines them
    save_models: bool = True  # write each final global model into the run directory
    # what `fednot tune` chose: method -> its tuned keys, options.<method>.<key> or "recovery_lr"
    # (unlearn.method_recovery_lr.<method>); results mark them (docs/tuning.md)
    tuned: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(len(self.seeds) > 0, "seeds must name at least one seed.")
        _require(len(set(self.seeds)) == len(self.seeds), f"seeds has duplicates: {self.seeds}.")
        _require(
            self.threads is None or self.threads >= 1,
            f"threads must be >= 1 (or absent for torch's default), got {self.threads}.",
        )
        _require(
            self.memory_format in MEMORY_FORMATS,
            f"memory_format must be one of {list(MEMORY_FORMATS)}, got {self.memory_format!r}.",
        )
        parse_device(self.device)  # whether this machine has it is checked when a run starts
        bad = [c for c in self.unlearn.forget_clients if not 0 <= c < self.data.num_clients]
        _require(
            not bad,
            f"unlearn.forget_clients {bad} out of range: client ids are "
            f"0..{self.data.num_clients - 1} (data.num_clients = {self.data.num_clients}).",
        )
        self.scenario.check(self.data, self.unlearn)
        unused = sorted(set(self.options) - set(self.unlearn.methods))
        _require(
            not unused,
            f"options given for {unused}, which unlearn.methods {list(self.unlearn.methods)} "
            "does not run.",
        )
        check_tuned(self.tuned, self.options, self.unlearn)
        ignored = [*unused_settings(self.data, self.train, self.unlearn), *self.scenario.unused()]
        _require(
            not ignored,
            f"Set but unused, so they would do nothing: {'; '.join(ignored)}. Remove them, or "
            "change the setting that makes them act.",
        )

    def tuned_values(self, method: str) -> dict[str, Any]:
        """``method``'s tuned values, key -> value (``recovery_lr`` included); empty if none."""
        return {
            key: self.unlearn.method_recovery_lr[method]
            if key == TUNED_RECOVERY_LR
            else self.options[method][key]
            for key in self.tuned.get(method, ())
        }
