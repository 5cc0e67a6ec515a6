"""A method's whole step on the target's node, on its own data only (`target_step`).

For methods whose step reads the target's data itself (`fednot.integrations.placement`): FCU
(model-contrastive unlearning and frequency fusion) and PGD (the reference model, the ball and
the projected ascent; the server sends the target's own last local model and its aggregation
share, which it received and computed during training). The method gets an `UnlearnContext`
like the engine's, except that its retained federation holds only the target's own retained
data. The same seeds reach the same streams as in the engine (``("unlearn", method, ...)``), so
a single-target request gives the engine's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fednot.data.forget import split_request
from fednot.errors import ConfigError
from fednot.federation.costs import Costs
from fednot.federation.history import HistorySpec, TrainingHistory
from fednot.federation.local import LocalRecipe
from fednot.integrations.flower.runtime import ClientRuntime
from fednot.integrations.placement import runs_on_target, target_step_methods
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.registry import create_unlearner


@dataclass(frozen=True)
class TargetOutcome:
    """What the target sends back after a method's step."""

    state: StateDict
    num_samples: int
    costs: Costs
    notes: dict[str, Any] = field(default_factory=dict)


def target_step(
    rt: ClientRuntime,
    method_name: str,
    request: ForgetRequest | None,
    state: StateDict,
    last_local: StateDict | None = None,
    last_share: float = 0.0,
) -> TargetOutcome:
    """Run ``method_name``'s own step on this (target) client, from the global ``state``.

    Args:
        rt: the target's runtime.
        method_name: a method declared to step on the target (`runs_on_target`).
        request: the request, naming this client only.
        state: the global model the step starts from.
        last_local: the target's last local model of training (PGD).
        last_share: the target's aggregation share p_u in its last training round (PGD).
    """
    if request is None or request.clients != (rt.client_id,):
        raise ConfigError(
            f"Client {rt.client_id} runs a method's step only for its own request, got "
            f"{None if request is None else request.to_dict()}."
        )
    method = create_unlearner(method_name, rt.settings.config.options.get(method_name))
    if not runs_on_target(method):
        raise ConfigError(
            f"{method_name!r} does not run its step on the target's node; the methods that do: "
            f"{', '.join(target_step_methods())} (a plugin declares itself with "
            "`fednot.integrations.placement.step_on_target`)."
        )
    split = split_request(rt.federation, rt.own_part(request))
    own = split.retained.replace(c for c in split.retained.clients if c.id == rt.client_id)
    config = rt.settings.config
    parts = ModelParts(
        rt.model,
        rt.initial_state(),
        name=config.model.name,
        options=config.model.options,
        device=rt.device,
        flops=rt.flops,
    )
    ctx = UnlearnContext.create(
        method,
        replace(split, retained=own),
        parts,
        rt.streams,
        recipe=LocalRecipe.from_config(config.train),
        history=_history(rt.client_id, last_local, last_share),
    )
    result = method.unlearn(state, ctx)
    return TargetOutcome(result.state, len(split.forget), ctx.costs + result.costs, result.notes)


def _history(client: int, last_local: StateDict | None, share: float) -> TrainingHistory | None:
    """The part of the training history that concerns the target (PGD's θ_u^T and p_u)."""
    if last_local is None:
        return None
    history = TrainingHistory(HistorySpec(last_local_models=True))
    history.last_local[client] = last_local
    history.last_share[client] = share
    return history
