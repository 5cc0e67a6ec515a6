"""Models by name: the registry the configuration and the CLI use.

A name that is not registered may be an installed package's entry point (group
``fednot.models``) or an import string ``"pkg.module:factory"`` (`fednot.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import nn

from fednot.errors import ConfigError
from fednot.models.resnet import ResNet18
from fednot.models.small import CNN, MLP
from fednot.models.vit import ViT, vit_b16
from fednot.plugins import External, accepted_keywords, describe, resolve
from fednot.typecheck import check_options

ModelFactory = Callable[..., nn.Module]
MODEL_KEYWORDS = ("input_shape", "num_classes")
"""The keyword arguments fednot passes to every model factory."""

_MODELS: dict[str, ModelFactory] = {
    "cnn": CNN,
    "mlp": MLP,
    "resnet18": ResNet18,
    "vit": ViT,
    "vit_b16": vit_b16,
}


def register_model(name: str, factory: ModelFactory) -> None:
    """Register a model factory taking ``input_shape`` and ``num_classes`` keywords."""
    if name in _MODELS:
        raise ConfigError(f"A model named {name!r} is already registered.")
    _MODELS[name] = factory


def model_names() -> list[str]:
    """Names of the registered models."""
    return sorted(_MODELS)


def model_factory(found: External) -> ModelFactory:
    """The contract of a model from outside fednot: a callable taking keyword arguments.

    It must accept ``input_shape`` and ``num_classes`` (and ``model.options``) as keywords;
    `create_model` checks that it returns a `torch.nn.Module`.
    """
    expected = (
        "a callable accepting the keyword arguments input_shape and num_classes (plus any "
        "model.options) and returning a torch.nn.Module"
    )
    if not callable(found.obj):
        raise found.refuse(expected)
    accepted = accepted_keywords(found.obj, MODEL_KEYWORDS)
    missing = [k for k in MODEL_KEYWORDS if k not in accepted]
    if missing:
        raise found.refuse(expected, f"{describe(found.obj)}, which lacks {', '.join(missing)}")
    return cast(ModelFactory, found.obj)


def create_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    options: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Build the model ``name``: registered, an entry point, or an import string.

    Args:
        name: a registered name (see `model_names`), an entry point of the group
            ``fednot.models``, or an import string ``"pkg.module:factory"`` (`fednot.plugins`).
        input_shape: per-image shape (C, H, W).
        num_classes: number of output classes.
        options: extra keyword arguments of the model's constructor, checked by name and type.
        generator: if given, the model's initial weights are drawn from it (the run's ``init``
            stream), so they do not depend on the global RNG.
    """
    factory = resolve(name, "model", _MODELS, model_factory)
    kwargs = check_options(
        factory, options or {}, f"model {name!r}", skip=("input_shape", "num_classes")
    )
    try:
        if generator is None:
            model = factory(input_shape=input_shape, num_classes=num_classes, **kwargs)
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = factory(input_shape=input_shape, num_classes=num_classes, **kwargs)
    except ConfigError:
        raise
    except (RuntimeError, ValueError, AssertionError, ZeroDivisionError) as e:
        raise ConfigError(
            f"Model {name!r} cannot be built for inputs {input_shape} and {num_classes} classes "
            f"with options {dict(kwargs)} ({type(e).__name__}: {e}); check model.options."
        ) from e
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"Model {name!r} returned {type(model).__name__} {model!r:.60}; expected a "
            "torch.nn.Module. A model factory must return the model it builds."
        )
    return model
