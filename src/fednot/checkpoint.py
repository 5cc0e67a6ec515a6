"""Checkpoint files written by ``fednot train`` and ``fednot unlearn``.

A checkpoint holds the global state, the resolved configuration and the seed that produced it,
so that later commands rebuild the same federation and partition from it.

Since format 2 a checkpoint carries a digest of its content (`fednot.store.integrity`), checked when
it is loaded: a checkpoint that cannot be read, or whose content changed after fednot wrote it,
is refused with a `ConfigError`, since a user's model cannot be recomputed behind their back.
Format-1 checkpoints (written before the digest existed) still load, with a `FedNotWarning` that
their content cannot be verified: refusing them would force re-training models that were valid.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fednot.config import RunConfig
from fednot.configio import apply_overrides, from_dict, to_dict
from fednot.errors import ConfigError, DamagedFileError, FedNotWarning
from fednot.paths import check_input_file
from fednot.store.cache import read_payload, save_verified
from fednot.store.integrity import DIGEST_KEY, problem, unsealed
from fednot.types import StateDict
from fednot.version import __version__

FORMAT = "fednot-checkpoint-2"
"""The format `save_checkpoint` writes: format 1 plus a content digest."""
LEGACY_FORMAT = "fednot-checkpoint-1"
"""The format written before the digest existed; loaded unverified, with a warning."""

RECREATE = "Re-create it with `fednot train` (or `fednot unlearn` from its source checkpoint)."


def save_checkpoint(
    path: Path, state: StateDict, config: RunConfig, seed: int, kind: str, **meta: Any
) -> None:
    """Write a checkpoint atomically, with its content digest."""
    payload = {
        "format": FORMAT,
        "fednot_version": __version__,
        "kind": kind,
        "seed": seed,
        "config": to_dict(config),
        "state": state,
        **meta,
    }
    save_verified(payload, path)


def load_checkpoint(
    path: Path, overrides: list[str] | None = None, *, trust_code: bool = False
) -> tuple[dict[str, Any], RunConfig]:
    """Read a checkpoint; return its payload and its configuration with ``overrides`` applied.

    Overrides may change the unlearning and evaluation settings but not what determines the
    trained model (data, model, FedAvg recipe).

    A checkpoint is a file, possibly downloaded: its configuration never makes fednot import
    code. Registry names and installed packages' entry points resolve as usual; an import
    string (``"pkg.module:attr"``) in ``data.dataset``, ``model.name`` or ``unlearn.methods`` is
    refused unless the user gave the same string in ``overrides`` or passes ``trust_code``
    (``--trust-code``): `foreign_code`.

    Raises:
        ConfigError: the file does not exist, is not a fednot checkpoint, is damaged (unreadable
            or changed since fednot wrote it), lacks ``state``, ``config`` or ``seed``, names
            code to import without ``trust_code``, holds a configuration that does not parse,
            or ``overrides`` change what trained the model.
    """
    payload = _verified(path)
    _check_structure(path, payload)
    base = payload["config"]
    foreign = foreign_code(base, overrides or [])
    if foreign and not trust_code:
        named = ", ".join(f"{key} = {value!r}" for key, value in foreign)
        raise ConfigError(
            f"Checkpoint {path} names code to import ({named}); fednot does not run code that a "
            "file names. If you trust this checkpoint and that code, pass --trust-code (Python: "
            "load_checkpoint(..., trust_code=True)); a registry name or an installed package's "
            "entry point needs no opt-in."
        )
    try:
        from_dict(RunConfig, base)
    except ConfigError as e:
        raise ConfigError(
            f"Checkpoint {path} holds a configuration this fednot cannot read: {e} {RECREATE}"
        ) from e
    merged = apply_overrides(base, overrides or [])
    for section in ("data", "model", "train"):
        if merged.get(section) != base.get(section):
            raise ConfigError(
                f"-c FILE and --set cannot change [{section}] of a checkpoint: it determines the "
                "trained model. Train a new checkpoint instead."
            )
    return payload, from_dict(RunConfig, merged)


def foreign_code(config: Mapping[str, Any], overrides: list[str]) -> list[tuple[str, str]]:
    """``(key, import string)`` of the code a checkpoint's configuration would import.

    The import strings (they hold a ``:``) in ``data.dataset``, ``model.name`` and the methods
    that would run (``unlearn.methods`` after ``overrides``) that ``overrides`` do not name
    themselves: what the user typed is trusted, what the file holds is not.
    """
    merged = apply_overrides(dict(config), overrides)
    given = json.dumps(apply_overrides({}, overrides))
    found = []
    for section, key in (("data", "dataset"), ("model", "name"), ("unlearn", "methods")):
        value = (merged.get(section) or {}).get(key)
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, str) and ":" in entry and json.dumps(entry) not in given:
                found.append((f"{section}.{key}", entry))
    return found


def _verified(path: Path) -> dict[str, Any]:
    """The checkpoint's payload, its digest checked (format 2) or warned about (format 1)."""
    check_input_file(path, "checkpoint")
    try:
        payload = read_payload(path)
    except FileNotFoundError as e:
        raise ConfigError(f"Checkpoint {path} does not exist.") from e
    except DamagedFileError as e:
        raise ConfigError(f"Checkpoint {e}. {RECREATE}") from e
    version = payload.get("format")
    if DIGEST_KEY in payload or version == FORMAT:
        reason = problem(payload)
        if reason is not None:
            raise ConfigError(f"Checkpoint {path} is damaged ({reason}). {RECREATE}")
        return unsealed(payload)
    if version == LEGACY_FORMAT:
        warnings.warn(
            f"Checkpoint {path} was written before fednot checked checkpoints' content "
            f"({LEGACY_FORMAT}), so it cannot be verified; using it as it is. Re-create it with "
            "`fednot train` to protect it.",
            FedNotWarning,
            stacklevel=3,
        )
        return payload
    raise ConfigError(
        f"{path} is not a checkpoint written by fednot (train or unlearn): expected format "
        f"{FORMAT!r} or {LEGACY_FORMAT!r}, found {version!r}."
    )


def _check_structure(path: Path, payload: Mapping[str, Any]) -> None:
    """Raise a `ConfigError` naming each required entry that is missing or of the wrong type."""
    wrong = []
    state = payload.get("state")
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        wrong.append("`state` (the model's state dict: names to tensors)")
    if not isinstance(payload.get("config"), Mapping):
        wrong.append("`config` (the run configuration, a table)")
    seed = payload.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        wrong.append("`seed` (an integer)")
    if wrong:
        raise ConfigError(
            f"Checkpoint {path} lacks a valid {', '.join(wrong)}; found entries "
            f"{sorted(map(str, payload))}. {RECREATE}"
        )
