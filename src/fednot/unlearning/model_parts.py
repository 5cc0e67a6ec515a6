"""`ModelParts`: the model an `fednot.unlearning.context.UnlearnContext` hands a method."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from fednot.federation.costs import FlopMeter
from fednot.types import StateDict


@dataclass(frozen=True, eq=False)
class ModelParts:
    """The model a method works on.

    Attributes:
        module: a scratch module of the architecture (methods load states into it).
        initial_state: the run's initial weights, the ones training started from.
        name: the architecture's registry name (`UnlearnContext.fresh_state` builds it).
        options: the architecture's options.
        device: where the module computes.
        flops: the run's FLOP meter (``None``: a new one on ``module``).
    """

    module: nn.Module
    initial_state: StateDict
    name: str = ""
    options: Mapping[str, object] = field(default_factory=dict)
    device: torch.device | str = "cpu"
    flops: FlopMeter | None = None
