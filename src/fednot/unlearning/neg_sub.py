"""NegSub: subtract the departing client's last update (its "negative gradient") from the model.

A. Tahir, Z. Tan, K. O. Babaagba, "Can Federated Models be Rectified through Learning Negative
Gradients?", BDTA 2023, LNICST 555 (docs/methods.md, "NegSub"; also called "NegGrad"). The
paper's method: "the gradients obtained from the model trained on the client's data locally are
used to subtract from the main global model"; its abstract speaks of "subtracting local model
parameters". It gives neither the scaling nor code. Its numbers decide between the readings:
subtracting a client's model costs the global model only 1.7–4.3 points of accuracy (96.17 %
to 94.44 % / 91.83 %), which subtracting a whole parameter vector cannot do (θ_T − θ_u is close
to 0), while subtracting an update can. With θ_u the target's last local model, θ_s the global
model it started that round from, and p_u = n_u / Σ_k n_k its FedAvg weight in that round:

- ``"update"`` (default, the paper's negative gradient): θ' = θ_T − p_u (θ_u − θ_s), which
  removes u's weighted update from the last FedAvg step and keeps the other clients' updates at
  their weights; the result is the last step taken without u's term, not renormalised.
- ``"renormalize"``: θ' = (θ_T − p_u θ_u) / (1 − p_u), which removes u's term from the last
  FedAvg average. It equals PGD's reference model w_ref (Halimi et al.), the average of the other
  clients' last local models, hence the last FedAvg round redone without u (measured: after
  recovery it is FT itself, not FT one round later; docs/methods.md, "NegSub").
- ``"p_u"``: θ' = θ_T − p_u θ_u.
- ``"one"``: θ' = θ_T − θ_u, the abstract's literal "subtracting local model parameters".

Several targets subtract each of their models (``renormalize`` divides by 1 − Σ p_u). The
server keeps each client's last local model and its start (`HistorySpec(last_local_models=True)`);
the subtraction applies to floating-point tensors (parameters and BatchNorm statistics) and
leaves integer buffers at their trained values. The shared recovery phase follows without the
target. Only client-wise removal is defined. Costs: no traffic and no training (one subtraction).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal, get_args

import torch

from fednot.errors import ConfigError, FedNotWarning, UnsupportedScenarioError
from fednot.federation.history import HistorySpec, TrainingHistory
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import one_of
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import Choice

Scaling = Literal["update", "renormalize", "p_u", "one"]


def subtract_updates(
    state: StateDict,
    locals_: Sequence[StateDict],
    starts: Sequence[StateDict],
    shares: Sequence[float],
) -> StateDict:
    """θ_T − Σ_u p_u (θ_u − θ_s): remove the targets' weighted last updates from ``state``.

    Args:
        state: the global model θ_T.
        locals_: the targets' last local models θ_u.
        starts: the global models θ_s each of those rounds started from.
        shares: each target's share p_u of that round's FedAvg average.
    """
    result = dict(state)
    for key, value in state.items():
        if not value.is_floating_point():
            continue
        out = value.double()
        for local, start, p in zip(locals_, starts, shares, strict=True):
            out = out - p * (local[key].double() - start[key].double())
        result[key] = out.to(value.dtype)
    return result


def subtract_local_models(
    state: StateDict,
    locals_: Sequence[StateDict],
    shares: Sequence[float],
    scaling: Scaling = "renormalize",
) -> StateDict:
    """Remove the local models ``locals_``, with aggregation shares p_u, from ``state``.

    Args:
        state: the global model θ_T.
        locals_: the targets' last local models θ_u.
        shares: each target's share p_u of its last FedAvg average.
        scaling: ``"renormalize"``, ``"p_u"`` or ``"one"`` (see the module docstring; the
            default ``"update"`` of `NegSub` is `subtract_updates`).
    """
    if scaling not in ("renormalize", "p_u", "one"):
        raise ConfigError(
            f"Expected `scaling` to be one of ['renormalize', 'p_u', 'one'], got {scaling!r}."
        )
    coefficients = [1.0] * len(locals_) if scaling == "one" else list(shares)
    rest = 1.0 - sum(shares)
    if scaling == "renormalize" and rest <= 1e-12:
        raise ConfigError(
            f"Cannot renormalise: the targets held the whole last round (shares {list(shares)}); "
            "no other client's model remains. Use scaling='p_u' or 'one'."
        )
    result = dict(state)
    for key, value in state.items():
        if not value.is_floating_point():
            continue
        out = value.double()
        for local, c in zip(locals_, coefficients, strict=True):
            out = out - c * local[key].double()
        result[key] = (out / rest if scaling == "renormalize" else out).to(value.dtype)
    return result


def _same(a: StateDict, b: StateDict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def aggregation_share(history: TrainingHistory, client: int) -> float:
    """p_u: u's FedAvg weight in the last round it took part in.

    Under partial participation the clients' last local models may come from different rounds;
    the subtraction then removes u from an aggregate it was not part of, and a `FedNotWarning`
    says so.
    """
    start = history.last_start[client]
    if not all(_same(s, start) for s in history.last_start.values()):
        warnings.warn(
            "NegSub: the clients' last local models come from different rounds (partial "
            f"participation); client {client}'s model is subtracted with its share p_{client} "
            "of the last round it took part in.",
            FedNotWarning,
            stacklevel=2,
        )
    return history.last_share[client]


@register_unlearner
class NegSub(Unlearner):
    """Subtract the target's last weighted update from the global model; recovery follows."""

    name = "negsub"
    title = "NegSub"
    requirements = Requirements(history=True)
    scenarios = frozenset({"client", "backdoor"})
    scenario_note = "it subtracts a whole client's model"
    # the two readings of the paper (module docstring)
    search_space = {"scaling": Choice(("update", "renormalize"))}

    def __init__(self, *, scaling: Scaling = "update") -> None:
        self.scaling: Scaling = one_of(scaling, "scaling", get_args(Scaling))

    def history_spec(self) -> HistorySpec:
        """Each client's last local model, its start and its weight."""
        return HistorySpec(last_local_models=True)

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Subtract the targets' last updates (or models); recovery follows in the engine."""
        if ctx.request.kind != "client":
            raise UnsupportedScenarioError(
                f"NegSub defines client removal only, not {ctx.request.kind}-wise forgetting. "
                "Supported scenarios: client-wise and backdoor (client-wise) forgetting."
            )
        history = ctx.history
        missing = [u for u in ctx.request.clients if u not in history.last_local]
        if missing:
            raise ConfigError(
                f"NegSub needs the last local model of clients {missing}, but the history holds "
                f"none for them. Pre-train with `pretrain(history={self.history_spec()})`."
            )
        targets = ctx.request.clients
        shares = {u: aggregation_share(history, u) for u in targets}
        locals_ = [history.last_local[u] for u in targets]
        weights = [shares[u] for u in targets]
        if self.scaling == "update":
            starts = [history.last_start[u] for u in targets]
            result = subtract_updates(state, locals_, starts, weights)
        else:
            result = subtract_local_models(state, locals_, weights, self.scaling)
        return UnlearnResult(result, notes={"shares": {str(u): p for u, p in shares.items()}})
