"""Instance-wise forgetting: the targets forget some of their samples and stay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fednot.benchmark.scenarios.base import (
    Scenario,
    ScenarioDefinition,
    random_share,
)
from fednot.config import DataConfig, ScenarioSettings, UnlearnConfig
from fednot.config.rules import changed
from fednot.config.sections import _require
from fednot.data.federated import Federation
from fednot.errors import ConfigError
from fednot.paths import check_input_file
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest


@dataclass(frozen=True)
class InstanceScenario(ScenarioSettings):
    """A seeded ``forget_ratio`` of each target's training samples, or the ids in ``forget_ids``."""

    kind: str = "instance"
    forget_ratio: float = 0.5  # 50 % (ours)
    forget_ids: str | None = None  # file of training-split sample ids, one per line or a JSON list

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 < self.forget_ratio < 1, "scenario.forget_ratio must lie in (0, 1).")

    def check(self, data: DataConfig, unlearn: UnlearnConfig) -> None:
        """Nothing: the targets stay, so every client may ask."""

    def unused(self) -> list[str]:
        """``forget_ratio`` where ``forget_ids`` lists the samples."""
        if self.forget_ids is not None and changed(self, "forget_ratio"):
            return ["scenario.forget_ratio (no random forget set is drawn)"]
        return []


def build(
    s: InstanceScenario, targets: tuple[int, ...], federation: Federation, streams: SeedStreams
) -> Scenario:
    """The listed ids, or a seeded share of each target's samples; the federation is unchanged."""
    if s.forget_ids is not None:
        ids = read_sample_ids(Path(s.forget_ids))
    else:
        shares = (random_share(federation, k, s.forget_ratio, streams) for k in targets)
        ids = tuple(sorted(i for share in shares for i in share))
    return Scenario(s.kind, federation, ForgetRequest(clients=targets, indices=ids))


def read_sample_ids(path: Path) -> tuple[int, ...]:
    """Sample ids from a file: a JSON list, or one integer per line (``#`` starts a comment)."""
    check_input_file(path, "the forget-ids file")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"Cannot read the forget-ids file {path}: {e}.") from e
    try:
        if text.lstrip().startswith("["):
            values = json.loads(text)
        else:
            values = [line.split("#")[0].strip() for line in text.splitlines()]
            values = [v for v in values if v]
        ids = tuple(int(v) for v in values)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"{path} must hold training-split sample ids (as in partition.json): a JSON list of "
            f"integers or one integer per line ({e})."
        ) from e
    if not ids:
        raise ConfigError(f"The forget-ids file {path} lists no sample.")
    return ids


def describe(s: InstanceScenario, targets: tuple[int, ...]) -> str:
    """``50% of the training samples of clients [0] forgotten (instance-wise)``."""
    source = f" (ids from {s.forget_ids})" if s.forget_ids else " (instance-wise)"
    return f"{s.forget_ratio:.0%} of the training samples of clients {list(targets)} forgotten" + (
        source
    )


INSTANCE = ScenarioDefinition(
    InstanceScenario,
    build,
    describe,
    "The targets forget `forget_ratio` of their samples (or the `forget_ids`) and stay.",
)
