"""Divergence: a non-finite loss or non-finite weights stop the phase with `DivergenceError`.

`FedAvg.round` checks every client's loss and the aggregated state before anything else sees
the new state (per-round metrics, history, checkpoints, the model cache); the engine checks the
state a method's own step returns, and refuses to evaluate non-finite weights. A check is one
`torch.isfinite` pass over the floating tensors of a state, and one device synchronisation.

The messages name the phase, the round (and the client, where known), what was non-finite, and
the likely cause: a learning rate too large, with the configuration key that sets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from fednot.errors import ContractError, DivergenceError
from fednot.types import StateDict

_SHOWN = 3  # tensor names a message lists before "and N more"


@dataclass(frozen=True)
class Stage:
    """What is training, for divergence messages.

    Attributes:
        name: the phase in words: ``"pre-training"``, ``"Retrain"``, ``"recovery of method
            'ft'"``, ``"the step of method 'mode'"``.
        lr: the learning rate the phase trains with.
        lr_key: the configuration key that sets it (``train.lr``, ``unlearn.recovery_lr``), or
            the table of options that holds it (``options.<method>``, with ``exact=False``).
        exact: whether ``lr_key`` is the key itself.
    """

    name: str
    lr: float
    lr_key: str
    exact: bool = True

    def error(self, round_: int, what: str, clients: tuple[int, ...] = ()) -> DivergenceError:
        """The error for round ``round_``, where ``what`` (e.g. "the training loss is nan")."""
        who = ""
        if clients:
            label = "client" if len(clients) == 1 else "clients"
            who = f" ({label} {', '.join(map(str, clients))})"
        name = self.name[0].upper() + self.name[1:]
        advice = (
            f"lower {self.lr_key} (e.g. --set {self.lr_key}={self.lr / 10:g})"
            if self.exact
            else f"lower the option of {self.lr_key} that sets it (--set "
            f"{self.lr_key}.<option>=<value>)"
        )
        return DivergenceError(
            f"{name} diverged in round {round_}{who}: {what}. Likely cause: the learning rate "
            f"{self.lr:g} is too large; {advice}. The diverged model was not saved."
        )


def stage_of(phase: str, label: str, lr: float) -> Stage:
    """The `Stage` of a FedAvg run from its seed-stream ``phase``, ``label`` and ``lr``.

    The engine's phases: ``pretrain`` (label ``pretrain`` or ``retrain``), ``recovery`` (label:
    the method) and a method's own rounds ``unlearn/<method>/...``; any other phase is named by
    its label.
    """
    if phase == "recovery":
        return Stage(f"recovery of method {label!r}", lr, "unlearn.recovery_lr")
    if phase.startswith("unlearn/"):
        method = phase.split("/")[1]
        return Stage(f"the step of method {method!r}", lr, f"options.{method}", exact=False)
    if label == "retrain":
        return Stage("Retrain", lr, "train.lr")
    if label == "pretrain":
        return Stage("pre-training", lr, "train.lr")
    return Stage(f"training phase {label!r}", lr, "train.lr")


def non_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of ``state``'s floating tensors that hold a NaN or an infinity (none: ``[]``)."""
    names = [k for k, v in state.items() if v.is_floating_point()]
    if not names:
        return []
    flags = [torch.isfinite(state[k]).all() for k in names]
    device = flags[0].device
    finite = torch.stack([f.to(device) for f in flags])
    if bool(finite.all()):
        return []
    return [k for k, ok in zip(names, finite.tolist(), strict=True) if not ok]


def describe_non_finite(names: list[str], state: Mapping[str, torch.Tensor]) -> str:
    """``names`` (from `non_finite`) in words, e.g. "non-finite weights (NaN or inf) in ..."."""
    total = sum(1 for v in state.values() if v.is_floating_point())
    shown = ", ".join(names[:_SHOWN])
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"non-finite weights (NaN or inf) in {len(names)} of {total} tensors: {shown}{more}"


def check_step(
    state: StateDict,
    method: str,
    options: Mapping[str, Any] | None,
    reference: StateDict | None = None,
) -> None:
    """Raise if a method's step returned other weights than the model's, or non-finite ones.

    Raises:
        ContractError: ``state`` is not a mapping of tensors with ``reference``'s keys, shapes
            and dtypes (checked when ``reference``, the state the step started from, is given).
        DivergenceError: ``state`` holds NaN or infinite weights.
    """
    if reference is not None:
        problem = _form_problem(state, reference)
        if problem is not None:
            raise ContractError(
                f"The step of method {method!r} returned {problem}; a step must return the "
                "model's state dict: the same keys, and tensors of the same shapes and dtypes."
            )
    bad = non_finite(state)
    if not bad:
        return
    given = f"options.{method} = {dict(options)}" if options else f"no options.{method} given"
    raise DivergenceError(
        f"The step of method {method!r} diverged: it returned {describe_non_finite(bad, state)}. "
        f"Likely cause: a learning rate or scale among its options is too large ({given}); "
        f"lower it with --set options.{method}.<option>=<value>."
    )


def check_evaluable(state: Mapping[str, torch.Tensor]) -> None:
    """Raise `DivergenceError` if ``state`` cannot be evaluated (non-finite weights)."""
    bad = non_finite(state)
    if bad:
        raise DivergenceError(
            f"Cannot evaluate a model with {describe_non_finite(bad, state)}: it diverged in "
            "training. Train it again with a lower learning rate (train.lr for pre-training, "
            "unlearn.recovery_lr for a method's recovery, options.<method>.* for its step)."
        )


def _form_problem(state: object, reference: StateDict) -> str | None:
    """How ``state`` differs in form from ``reference`` (``None``: it does not)."""
    if not isinstance(state, Mapping):
        return f"a {type(state).__name__}, not a state dict"
    missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    if missing or extra:
        return f"a state dict lacking {missing[:_SHOWN]} and adding {extra[:_SHOWN]}"
    for key, expected in reference.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            return f"{key} as a {type(value).__name__}, not a tensor"
        if value.shape != expected.shape or value.dtype != expected.dtype:
            return (
                f"{key} of shape {tuple(value.shape)} and {value.dtype}, where the model has "
                f"{tuple(expected.shape)} and {expected.dtype}"
            )
    return None
