"""`StepBackend`: a back-end that also runs a method's own step.

The engine's `fednot.federation.backend.Backend` runs the clients' jobs and knows no method. The
per-request flow (`fednot.benchmark.experiment.Experiment.unlearn`) also hands its back-end the
method's own step, which runs where the back-end decides: `fednot.federation.backend.InProcess`
calls ``method.unlearn`` in this process; ``fednot.integrations.flower.backend.FlowerBackend`` runs
it on the server without the clients' samples, or whole on the target's node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fednot.data.federated import Federation
from fednot.data.forget import ForgetSplit
from fednot.federation.backend import Backend
from fednot.types import StateDict
from fednot.unlearning.base import Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext


class StepBackend(Backend, Protocol):
    """A `Backend` that also runs a method's own step; see the module docstring."""

    def unlearn_step(
        self, method: Unlearner, state: StateDict, ctx: UnlearnContext
    ) -> UnlearnResult:
        """Run ``method``'s own step from ``state`` for ``ctx``'s request."""
        ...


StepBackendFactory = Callable[[Federation, ForgetSplit | None], StepBackend]
"""A back-end for a view of the federation (all clients, or the retained side of a request)."""
