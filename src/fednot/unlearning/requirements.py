"""`Requirements`: what a method declares it needs beyond the global model and retained clients.

A module of its own so that `fednot.unlearning.context` (which hands a method only what it
declares) need not import `fednot.unlearning.base` (the method's contract, which names the
context in `Unlearner.unlearn` and re-exports this class).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Requirements:
    """What a method needs beyond the global model and the retained federation.

    Attributes:
        history: updates stored by the server during training (e.g. FedEraser).
        forget_data: the forget samples D_u themselves.
        target_participation: the target client must run a step of the method.
        server_data: data held by the server (e.g. FUKD's unlabeled proxy set).
    """

    history: bool = False
    forget_data: bool = False
    target_participation: bool = False
    server_data: bool = False

    def describe(self) -> str:
        """A short text such as ``"forget data, target participation"`` or ``"none"``."""
        needs = [name.replace("_", " ") for name, flag in vars(self).items() if flag]
        return ", ".join(needs) or "none"
