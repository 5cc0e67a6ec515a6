"""A method's own step on Flower, by where it runs.

- **On the server** (`server_step`): methods that need nothing beyond the global model (NoT,
  FT, Retrain) run their own ``Unlearner.unlearn`` on the server, with an `UnlearnContext`
  whose client data raise on any read: the server holds none. NoT negates its layers exactly
  as in the engine (`fednot.unlearning.negation.NoT`).
- **On the target** (`target_side_step`): FCU and PGD send the global model (PGD: also the
  target's own last local model and share) to the target, which runs the method's step on its
  own data (`fednot.integrations.flower.target.target_step`).
- **As rounds** (`puf_step`, `mode_step`): PUF and MoDE are rounds of local training with
  method-specific streams and recipes; the clients train (`ServerSession.train_jobs`) and the
  server combines their models with the methods' own functions (`puf_update`,
  `momentum_update`, `weighted_average`).

Methods that need the server to hold the training history of every client or its own data
(FedEraser, FUKD, negative-gradient subtraction) and centralized-only methods are not available
on Flower yet: `unlearn_step` raises a `ConfigError` that says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from fednot.data.federated import ClientData, ForbiddenSamples
from fednot.errors import ConfigError
from fednot.federation.aggregate import weighted_average
from fednot.federation.costs import Costs
from fednot.federation.history import TrainingHistory
from fednot.federation.local import LocalRecipe
from fednot.integrations.flower.records import (
    ARRAYS,
    CONFIG,
    Entries,
    arrays_in,
    as_int,
    config_in,
    metrics_in,
    request_to_config,
    to_arrays,
    to_state,
)
from fednot.integrations.flower.session import ServerSession, TrainJob
from fednot.integrations.flower.target import TARGET_STEP_METHODS
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.mode import MoDE, momentum_update
from fednot.unlearning.puf import PUF, clamp_running_variances, pseudo_gradient, puf_update


@dataclass(frozen=True)
class StepInput:
    """What a method's step starts from.

    Attributes:
        session: the server's session.
        method: the method.
        state: the trained global model.
        request: the request served.
        retained: the clients that keep data (and so take part in recovery), ascending.
        history: the training history the server recorded, if the method needs one.
    """

    session: ServerSession
    method: Unlearner
    state: StateDict
    request: ForgetRequest
    retained: tuple[int, ...]
    history: TrainingHistory | None = None


Step = Callable[[StepInput], UnlearnResult]


def unlearn_step(step: StepInput) -> UnlearnResult:
    """Run the method's own step for the request, from the trained model."""
    method = step.method
    reason = method.not_applicable(step.request.kind)
    if reason is not None:
        raise ConfigError(reason)
    check_supported(method)
    return _STEPS.get(method.name, server_step)(step)


def check_supported(method: Unlearner) -> None:
    """Raise `ConfigError` unless ``method`` can run on Flower (checked before training)."""
    if method.name in _STEPS or method.requirements == Requirements():
        return
    raise ConfigError(
        f"{method.title or method.name} is not available on Flower yet: it needs "
        f"{method.requirements.describe()}. Flower runs: methods with no requirements (not, ft, "
        f"retrain) on the server, {', '.join(sorted(TARGET_STEP_METHODS))} on the target, and "
        "puf, mode as rounds."
    )


def server_step(step: StepInput) -> UnlearnResult:
    """``method.unlearn`` on the server, which holds no client data."""
    session, method = step.session, step.method
    reason = "a Flower server holds no client data; this method's step must run on the clients"
    forbidden = session.federation.replace(
        ClientData(c.id, ForbiddenSamples(c.train, reason), ForbiddenSamples(c.val, reason))
        for c in session.federation.clients if c.id in step.retained
    )  # fmt: skip
    config = session.config
    ctx = UnlearnContext(
        method=method.name, requirements=method.requirements, request=step.request,
        retained=forbidden, model=session.model, initial_state=session.initial_state,
        streams=session.streams, recipe=LocalRecipe.from_config(config.train),
        flops=session.flops, device=config.device, model_name=config.model.name,
        model_options=config.model.options,
    )  # fmt: skip
    result = method.unlearn(step.state, ctx)
    return replace(result, costs=ctx.costs + result.costs)


def target_side_step(step: StepInput) -> UnlearnResult:
    """The method's step on the target's node (FCU, PGD)."""
    session, method, history = step.session, step.method, step.history
    target = _single_target(method, step.request)
    entries: Entries = {"method": method.name, **request_to_config(step.request)}
    content = RecordDict({ARRAYS: to_arrays(step.state)})
    if method.history_spec() is not None:
        if history is None or target not in history.last_local:
            raise ConfigError(
                f"{method.title} needs the target's last local model from training; run the "
                "pre-training in the same Flower run (stage='all')."
            )
        content["last-local"] = to_arrays(history.last_local[target])
        entries["last-share"] = history.last_share[target]
    content[CONFIG] = ConfigRecord(entries)
    node = session.clients.node_of[target]
    message = Message(content, node, f"{MessageType.TRAIN}.unlearn")
    reply = session.send([message], f"{method.name} step on client {target}")[0]
    metrics = metrics_in(reply.content)
    comm = as_int(metrics["method-comm-bytes"], "method-comm-bytes")
    costs = Costs(comm, as_int(metrics["flops"], "flops"))
    notes = json.loads(str(config_in(reply.content)["notes"]))
    return UnlearnResult(to_state(arrays_in(reply.content)), costs=costs, notes=notes)


def puf_step(step: StepInput) -> UnlearnResult:
    """PUF's unlearning round: the target trains on D_u, the server negates and scales."""
    method, state, request = step.method, step.state, step.request
    assert isinstance(method, PUF)
    target = _single_target(method, request)
    jobs = [TrainJob(target, state, ("unlearn", "puf", "local", "target"), "forget",
                     {"recipe-epochs": method.epochs}, request)]  # fmt: skip
    if method.variant == "regular":
        key = ("unlearn", "puf", "local", "retained")
        jobs += [_job(c, state, (*key, str(c)), request) for c in step.retained]
    updates = step.session.train_jobs(jobs)
    head, others = updates[0], updates[1:]
    new = puf_update(
        state, [pseudo_gradient(head.state, state)], [float(head.num_samples)], alpha=method.alpha,
        other_deltas=[pseudo_gradient(u.state, state) for u in others],
        other_weights=[float(u.num_samples) for u in others],
    )  # fmt: skip
    costs = Costs(flops=sum(u.flops for u in updates))
    notes = {"variant": method.variant, "alpha": method.alpha, "target_samples": head.num_samples}
    return UnlearnResult(clamp_running_variances(new), costs=costs, notes=notes)


def mode_step(step: StepInput) -> UnlearnResult:
    """MoDE's rounds: degradation on the retained clients, then memory guidance with the target."""
    session, method, request, retained = step.session, step.method, step.request, step.retained
    assert isinstance(method, MoDE)
    target = _single_target(method, request)
    theta = dict(step.state)
    ctx = server_context(session, method, request)
    theta_de = ctx.fresh_state("degradation")
    flops = 0
    for round_ in range(1, method.rounds + 1):
        if round_ <= method.degradation_rounds:
            phase = f"unlearn/mode/degradation/{round_}"
            degrade = _sgd(method.lr_degradation, method.local_epochs)
            jobs = [_job(c, theta_de, ("client", phase, "1", str(c)), request, degrade)
                    for c in retained]  # fmt: skip
            updates = session.train_jobs(jobs)
            theta_de = weighted_average(
                [u.state for u in updates], [u.num_samples for u in updates]
            )
            theta = momentum_update(theta, theta_de, method.momentum)
            flops += sum(u.flops for u in updates)
        key = ("unlearn", "mode", "local", "guidance", str(round_))
        guide = _sgd(method.lr_retained_guidance, method.local_epochs)
        jobs = [_job(c, theta, (*key, str(c)), request, guide) for c in retained]
        jobs.append(TrainJob(target, theta, ("unlearn", "mode", "target", str(round_)), "forget",
                             _sgd(method.lr_target_guidance, method.local_epochs), request,
                             theta_de))  # fmt: skip
        updates = session.train_jobs(jobs)
        theta = weighted_average([u.state for u in updates], [u.num_samples for u in updates])
        flops += sum(u.flops for u in updates)
    notes = {"degradation_rounds_run": min(method.rounds, method.degradation_rounds)}
    return UnlearnResult(theta, costs=Costs(flops=flops), notes=notes)


def server_context(
    session: ServerSession, method: Unlearner, request: ForgetRequest
) -> UnlearnContext:
    """A context for the server's share of a method's work (seeds, fresh initialisations)."""
    config = session.config
    return UnlearnContext(
        method=method.name, requirements=Requirements(), request=request,
        retained=session.federation, model=session.model, initial_state=session.initial_state,
        streams=session.streams, model_name=config.model.name,
        model_options=config.model.options,
    )  # fmt: skip


def _job(
    client: int, state: StateDict, stream: tuple[str, ...], request: ForgetRequest,
    recipe: dict[str, float | int | str] | None = None,
) -> TrainJob:  # fmt: skip
    """A retained client's job: on its retained part if it is a target, else on all its data."""
    partial = client in request.clients
    return TrainJob(client, state, stream, "retained" if partial else "train", dict(recipe or {}),
                    request if partial else None)  # fmt: skip


def _single_target(method: Unlearner, request: ForgetRequest) -> int:
    if len(request.clients) != 1:
        raise ConfigError(
            f"On Flower, {method.title or method.name} serves one target per request (its step "
            f"runs on the target's node); got clients {list(request.clients)}."
        )
    return request.clients[0]


def _sgd(lr: float, epochs: int = 1) -> dict[str, float | int | str]:
    """MoDE's local step (``fednot.unlearning.mode._sgd``) as recipe overrides."""
    return {
        "recipe-optimizer": "sgd", "recipe-lr": lr, "recipe-momentum": 0.0, "recipe-epochs": epochs,
    }  # fmt: skip


_STEPS: dict[str, Step] = {
    "fcu": target_side_step,
    "pgd": target_side_step,
    "puf": puf_step,
    "mode": mode_step,
}
