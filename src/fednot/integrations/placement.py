"""Where a method's step runs on a deployment: on the server, or whole on the target's node.

Placement is the deployment's decision, kept beside the method's contract (`fednot.unlearning.
base.Unlearner`), not inside it. By default a method's step runs on the server, which holds no
client sample: its local training (`UnlearnContext.train`, ``fedavg_round``) travels to the
clients as jobs. A method whose step reads the target's samples itself (``ctx.forget_data`` in
its own loop) cannot run there; declared here, it runs whole on the target's node instead
(`fednot.integrations.flower.target.target_step`). FCU and PGD are declared below.

A plugin method declares itself with `step_on_target`, as a class decorator or a call, in the
module that defines it (so the declaration is made wherever the method is loaded, on the server
and on the target's node alike). This module needs no Flower: a plugin may import it whether or
not ``fednot[flower]`` is installed.
"""

from __future__ import annotations

from typing import TypeVar

from fednot.errors import ConfigError
from fednot.unlearning.base import Unlearner

__all__ = ["runs_on_target", "step_on_target", "target_step_methods"]

U = TypeVar("U", bound=type[Unlearner])

_ON_TARGET: set[str] = {"fcu", "pgd"}  # they read D_u in their own loops


def step_on_target(cls: U) -> U:
    """Declare that ``cls``'s whole step runs on the target's node; usable as a class decorator.

    Raises:
        ConfigError: ``cls`` is not an `Unlearner` subclass with a class attribute ``name``.
    """
    name = getattr(cls, "name", None)
    if not (isinstance(cls, type) and issubclass(cls, Unlearner) and isinstance(name, str)):
        raise ConfigError(
            f"step_on_target expects an Unlearner subclass with a class attribute `name`, got "
            f"{cls!r}. Decorate the method's class (after setting its `name`)."
        )
    _ON_TARGET.add(name)
    return cls


def runs_on_target(method: Unlearner | type[Unlearner] | str) -> bool:
    """Whether ``method`` (an instance, its class or its registry name) steps on the target."""
    name = method if isinstance(method, str) else method.name
    return name in _ON_TARGET


def target_step_methods() -> list[str]:
    """The names of the methods declared to step on the target's node."""
    return sorted(_ON_TARGET)
