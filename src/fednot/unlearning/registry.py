"""Unlearning methods by name.

The configuration and the CLI use names; library users may pass instances instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fednot.errors import ConfigError
from fednot.typecheck import check_options
from fednot.unlearning.base import Unlearner

_REGISTRY: dict[str, type[Unlearner]] = {}


def register_unlearner(cls: type[Unlearner]) -> type[Unlearner]:
    """Register ``cls`` under ``cls.name``; usable as a class decorator."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{cls.__name__} needs a class attribute `name` to be registered.")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ConfigError(f"An unlearner named {name!r} is already registered.")
    _REGISTRY[name] = cls
    return cls


def unlearner_names() -> list[str]:
    """Registered method names."""
    return sorted(_REGISTRY)


def unlearner_class(name: str) -> type[Unlearner]:
    """The class registered as ``name``."""
    if name not in _REGISTRY:
        raise ConfigError(f"Unknown unlearner {name!r}. Known: {', '.join(unlearner_names())}.")
    return _REGISTRY[name]


def create_unlearner(name: str, options: Mapping[str, Any] | None = None) -> Unlearner:
    """Build the method ``name`` with keyword ``options`` checked by name and type."""
    cls = unlearner_class(name)
    return cls(**check_options(cls, options or {}, f"method {name!r}"))


def registry_snapshot() -> dict[str, type[Unlearner]]:
    """A copy of the registry (tests restore it with `restore_registry`)."""
    return dict(_REGISTRY)


def restore_registry(snapshot: Mapping[str, type[Unlearner]]) -> None:
    """Replace the registry's contents by ``snapshot``."""
    _REGISTRY.clear()
    _REGISTRY.update(snapshot)
