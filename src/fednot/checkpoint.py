"""Checkpoint files written by ``fednot train`` and ``fednot unlearn``.

A checkpoint holds the global state, the resolved configuration and the seed that produced it,
so that later commands rebuild the same federation and partition from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fednot import __version__
from fednot.cache import atomic_save, safe_load
from fednot.config import RunConfig
from fednot.configio import apply_overrides, from_dict, to_dict
from fednot.errors import ConfigError
from fednot.types import StateDict


def save_checkpoint(
    path: Path, state: StateDict, config: RunConfig, seed: int, kind: str, **meta: Any
) -> None:
    """Write a checkpoint atomically."""
    payload = {
        "format": "fednot-checkpoint-1",
        "fednot_version": __version__,
        "kind": kind,
        "seed": seed,
        "config": to_dict(config),
        "state": state,
        **meta,
    }
    atomic_save(payload, path)


def load_checkpoint(
    path: Path, overrides: list[str] | None = None
) -> tuple[dict[str, Any], RunConfig]:
    """Read a checkpoint; return its payload and its configuration with ``overrides`` applied.

    Overrides may change the unlearning and evaluation settings but not what determines the
    trained model (data, model, FedAvg recipe).
    """
    if not path.exists():
        raise ConfigError(f"Checkpoint {path} does not exist.")
    payload = safe_load(path)
    if payload is None or payload.get("format") != "fednot-checkpoint-1":
        raise ConfigError(f"{path} is not a checkpoint written by fednot (train or unlearn).")
    base = payload["config"]
    merged = apply_overrides(base, overrides or [])
    for section in ("data", "model", "train"):
        if merged.get(section) != base.get(section):
            raise ConfigError(
                f"--set cannot change [{section}] of a checkpoint: it determines the trained "
                "model. Train a new checkpoint instead."
            )
    return payload, from_dict(RunConfig, merged)
