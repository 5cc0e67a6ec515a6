"""Models by name: the registry the configuration and the CLI use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from fednot.errors import ConfigError
from fednot.models.resnet import ResNet18
from fednot.models.small import CNN, MLP
from fednot.models.vit import ViT, vit_b16
from fednot.typecheck import check_options

ModelFactory = Callable[..., nn.Module]

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


def create_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    options: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: a registered name (see `model_names`).
        input_shape: per-image shape (C, H, W).
        num_classes: number of output classes.
        options: extra keyword arguments of the model's constructor, checked by name and type.
        generator: if given, the model's initial weights are drawn from it (the run's ``init``
            stream), so they do not depend on the global RNG.
    """
    if name not in _MODELS:
        raise ConfigError(f"Unknown model {name!r}. Known models: {', '.join(model_names())}.")
    factory = _MODELS[name]
    kwargs = check_options(
        factory, options or {}, f"model {name!r}", skip=("input_shape", "num_classes")
    )
    try:
        if generator is None:
            return factory(input_shape=input_shape, num_classes=num_classes, **kwargs)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory(input_shape=input_shape, num_classes=num_classes, **kwargs)
    except ConfigError:
        raise
    except (RuntimeError, ValueError, AssertionError, ZeroDivisionError) as e:
        raise ConfigError(
            f"Model {name!r} cannot be built for inputs {input_shape} and {num_classes} classes "
            f"with options {dict(kwargs)} ({type(e).__name__}: {e}); check model.options."
        ) from e
