"""Apply a forget request to a federation: the retained federation and the forget set."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fednot.data.federated import ClientData, Federation, Samples, concat
from fednot.errors import ConfigError
from fednot.types import ForgetRequest


@dataclass(frozen=True, eq=False)
class ForgetSplit:
    """The two sides of a request.

    Attributes:
        request: the request.
        retained: the federation that recovers: without the leaving clients (client-wise), or
            with the targets' training data reduced to what they keep (class- and instance-wise).
            The targets' validation splits are dropped in client-wise forgetting; in class-wise
            forgetting each target also drops its validation samples of the forgotten classes,
            so a federation-wide class request leaves no such sample in any validation split
            (recovery, patience and targets never reward knowing the class; docs/protocol.md).
        forget: D_u, the forgotten training samples (for evaluation and for methods that declare
            they need them).
    """

    request: ForgetRequest
    retained: Federation
    forget: Samples

    @property
    def retain(self) -> Samples:
        """D_r: every retained training sample of every client."""
        return self.retained.pooled_train()


def split_request(federation: Federation, request: ForgetRequest) -> ForgetSplit:
    """Split ``federation`` by ``request``; raise `ConfigError` if the request does not fit."""
    targets = [federation.client(c) for c in request.clients]
    if request.kind == "client":
        retained = federation.without(request.clients)
        if not retained.clients:
            raise ConfigError(
                f"Forgetting clients {list(request.clients)} leaves no client to recover on."
            )
        return ForgetSplit(request, retained, concat(t.train for t in targets))
    masks = {t.id: _forget_mask(t, request, federation.num_classes) for t in targets}
    forget = concat(t.train.select(masks[t.id]) for t in targets)
    if len(forget) == 0:
        raise ConfigError(f"The request {request.to_dict()} selects no training sample.")
    if request.indices is not None and len(forget) != len(set(request.indices)):
        missing = sorted(set(request.indices) - set(forget.indices.tolist()))
        raise ConfigError(
            f"Samples {missing[:10]}{' ...' if len(missing) > 10 else ''} are not in the training "
            f"split of clients {list(request.clients)}; a client can only ask to forget its own "
            "data."
        )
    kept = [
        ClientData(c.id, c.train.select(~masks[c.id]), _kept_val(c.val, request))
        if c.id in masks
        else c
        for c in federation.clients
    ]
    retained = federation.replace(c for c in kept if len(c.train) > 0)
    if len(retained.pooled_train()) == 0:
        raise ConfigError(f"The request {request.to_dict()} leaves no retained training data.")
    return ForgetSplit(request, retained, forget)


def _forget_mask(client: ClientData, request: ForgetRequest, num_classes: int) -> torch.Tensor:
    if request.classes is not None:
        bad = [c for c in request.classes if not 0 <= c < num_classes]
        if bad:
            raise ConfigError(f"Classes {bad} out of range: labels are 0..{num_classes - 1}.")
        return torch.isin(client.train.labels, torch.tensor(request.classes))
    assert request.indices is not None
    wanted = torch.tensor(request.indices, dtype=torch.int64)
    return torch.isin(client.train.indices, wanted)


def _kept_val(val: Samples, request: ForgetRequest) -> Samples:
    """A target's validation split without the classes it asks to forget (class-wise only).

    A class request covers the class, not only the listed training samples: a target that keeps
    validating on it would steer recovery towards a model that still knows the class.
    """
    if request.classes is None:
        return val
    return val.select(~torch.isin(val.labels, torch.tensor(request.classes)))
