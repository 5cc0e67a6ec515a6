"""A content-addressed cache of trained models, with resumable partial checkpoints.

Pre-training and Retrain dominate a run's cost. Their results are stored under a hash of
everything that determines them (data and partition fingerprint, model, FedAvg recipe, seed,
forget request, fednot version), so a second run, or another method on the same request, reuses
them. While a model trains, its latest round is checkpointed under the same key with a
``.partial`` suffix; an interrupted run resumes from it bit-identically, because every round's
randomness comes from streams keyed by the round (`fednot.seeding`).

Writes are atomic (a temporary file, then `os.replace`), so an interruption never leaves a
half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from fednot.errors import FedNotWarning

CACHE_FORMAT = 1


def cache_key(kind: str, parts: dict[str, Any]) -> str:
    """A stable key for ``parts`` (JSON-serialisable), prefixed by ``kind``."""
    from fednot import __version__

    text = json.dumps(
        {"parts": parts, "format": CACHE_FORMAT, "version": __version__}, sort_keys=True
    )
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def atomic_save(obj: object, path: Path) -> None:
    """`torch.save` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def safe_load(path: Path) -> dict[str, Any] | None:
    """Load a checkpoint written by fednot; ``None`` (with a warning) if it is unreadable."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable entry is simply recomputed
        warnings.warn(f"Ignoring unreadable cache entry {path} ({e}).", FedNotWarning, stacklevel=2)
        return None
    return data if isinstance(data, dict) else None


class ModelCache:
    """Cache entries as ``<root>/<key>.pt``; a ``None`` root disables caching."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _path(self, key: str, partial: bool = False) -> Path:
        assert self.root is not None
        return self.root / f"{key}{'.partial' if partial else ''}.pt"

    def load(self, key: str, *, partial: bool = False) -> dict[str, Any] | None:
        """The entry for ``key``, or ``None``."""
        return None if self.root is None else safe_load(self._path(key, partial))

    def save(self, key: str, payload: dict[str, Any], *, partial: bool = False) -> None:
        """Store ``payload`` under ``key``; a final save removes the partial checkpoint."""
        if self.root is None:
            return
        atomic_save(payload, self._path(key, partial))
        if not partial:
            self._path(key, partial=True).unlink(missing_ok=True)
