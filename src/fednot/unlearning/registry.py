"""Unlearning methods by name.

The configuration and the CLI use names; library users may pass instances instead. A name that
is not registered may be an installed package's entry point (group ``fednot.methods``) or an
import string ``"pkg.module:MyMethod"`` naming an `Unlearner` subclass (`fednot.plugins`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from fednot.errors import ConfigError
from fednot.plugins import External, resolve
from fednot.typecheck import check_options
from fednot.unlearning.base import Unlearner

_REGISTRY: dict[str, type[Unlearner]] = {}


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""A method's ``name``: it names files (``models/<name>-seed<S>.pt``), so no path can hide in it."""


def register_unlearner(cls: type[Unlearner]) -> type[Unlearner]:
    """Register ``cls`` under ``cls.name``; usable as a class decorator."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(
            f"{cls.__name__} needs a class attribute `name` to be registered: letters, digits, "
            f"'_', '-', '+' or '.', starting with a letter or digit (got {name!r}); model files "
            "are named after it."
        )
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ConfigError(f"An unlearner named {name!r} is already registered.")
    _REGISTRY[name] = cls
    return cls


def unlearner_names() -> list[str]:
    """Registered method names."""
    return sorted(_REGISTRY)


def unlearner_class(name: str) -> type[Unlearner]:
    """The class registered as ``name``, else the entry point or import string ``name``."""
    return resolve(name, "method", _REGISTRY, method_class)


def method_class(found: External) -> type[Unlearner]:
    """The contract of a method from outside fednot: a concrete `Unlearner` subclass.

    The class itself, not an instance, with a class attribute ``name`` (its records' key).
    """
    cls = found.obj
    expected = "a subclass of fednot.unlearning.base.Unlearner (the class, not an instance)"
    if isinstance(cls, Unlearner):
        raise found.refuse(expected, f"an instance of {type(cls).__qualname__}")
    if not (inspect.isclass(cls) and issubclass(cls, Unlearner)):
        raise found.refuse(expected)
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise found.refuse(
            "an Unlearner subclass with a class attribute `name` (letters, digits, '_', '-', "
            "'+' or '.', starting with a letter or digit: its records, tables and model files "
            "use it, so it may not hold a path)",
            f"class {cls.__qualname__} with name = {name!r}",
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise found.refuse("a concrete Unlearner subclass", f"{cls.__qualname__} lacks {missing}")
    return cls


def create_unlearner(name: str, options: Mapping[str, Any] | None = None) -> Unlearner:
    """Build the method ``name`` (see `unlearner_class`) with keyword ``options`` checked."""
    cls = unlearner_class(name)
    return cls(**check_options(cls, options or {}, f"method {name!r}"))


def registry_snapshot() -> dict[str, type[Unlearner]]:
    """A copy of the registry (tests restore it with `restore_registry`)."""
    return dict(_REGISTRY)


def restore_registry(snapshot: Mapping[str, type[Unlearner]]) -> None:
    """Replace the registry's contents by ``snapshot``."""
    _REGISTRY.clear()
    _REGISTRY.update(snapshot)
