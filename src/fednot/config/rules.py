"""Settings that the rest of a configuration makes unused: set one, and fednot refuses it.

A value that differs from its default was set by someone, and a value nothing reads is a value
that silently does nothing (``data.alpha`` with an IID partition, ``train.momentum`` with AdamW).
`unused_settings` lists each such key with the setting that would make it act; `check_tuned`
refuses marks of tuned values (``[tuned]``, written by ``fednot tune``) that mark nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fednot.config.sections import (
    TUNED_RECOVERY_LR,
    DataConfig,
    TrainConfig,
    UnlearnConfig,
)
from fednot.errors import ConfigError

# Shipped readers that never resize (Caltech-101, image folders and user loaders may).
_FIXED_SIZE = frozenset({"mnist5k", "mnist", "fashion_mnist", "cifar10", "cifar100"})


def changed(section: object, name: str) -> bool:
    """Whether the key ``name`` of the dataclass ``section`` differs from its default."""
    field = next(f for f in dataclasses.fields(section) if f.name == name)  # type: ignore[arg-type]
    default: Any = field.default
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    return bool(getattr(section, name) != default)


def unused_settings(data: DataConfig, train: TrainConfig, unlearn: UnlearnConfig) -> list[str]:
    """``"key (why it is unused)"`` for every set key that nothing in these sections reads."""
    rules = [
        (data, "root", data.dataset == "mnist5k", "data.dataset is the embedded mnist5k"),
        (
            data,
            "image_size",
            data.dataset in _FIXED_SIZE,
            f"the {data.dataset} reader keeps its images' size",
        ),
        (data, "alpha", data.partition != "dirichlet", 'data.partition is not "dirichlet"'),
        (
            data,
            "min_client_samples",
            data.partition != "dirichlet",
            'data.partition is not "dirichlet"',
        ),
        (data, "shards_per_client", data.partition != "shards", 'data.partition is not "shards"'),
        (train, "momentum", train.optimizer != "sgd", 'train.optimizer is not "sgd"'),
        (
            unlearn,
            "target_margin",
            unlearn.target_val_acc != "original",
            'unlearn.target_val_acc is not "original"',
        ),
    ]
    section_names = {id(data): "data", id(train): "train", id(unlearn): "unlearn"}
    return [
        f"{section_names[id(section)]}.{name} ({why})"
        for section, name, unused, why in rules
        if unused and changed(section, name)
    ]


def check_tuned(
    tuned: Mapping[str, tuple[str, ...]],
    options: Mapping[str, Mapping[str, Any]],
    unlearn: UnlearnConfig,
) -> None:
    """Raise `ConfigError` unless every method marked in ``tuned`` runs and its marked keys are set.

    A tuned key is ``options.<method>.<key>``, or `TUNED_RECOVERY_LR` for
    ``unlearn.method_recovery_lr.<method>`` (the marks `fednot tune` writes into a tuned preset).
    """
    unknown = sorted(set(tuned) - set(unlearn.methods))
    _require(
        not unknown,
        f"tuned names {unknown}, which unlearn.methods {list(unlearn.methods)} does not "
        "run; remove them from [tuned].",
    )
    for method, keys in tuned.items():
        unset = [
            key
            for key in keys
            if key not in options.get(method, {})
            and (key != TUNED_RECOVERY_LR or method not in unlearn.method_recovery_lr)
        ]
        _require(
            not unset,
            f"tuned.{method} marks {unset} as tuned, but they are not set: a tuned key is set in "
            f"options.{method} (or, for {TUNED_RECOVERY_LR!r}, in unlearn.method_recovery_lr). "
            "Set the tuned values, or remove the marks.",
        )


def _require(condition: bool, message: str) -> None:
    """Raise `ConfigError` with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)
