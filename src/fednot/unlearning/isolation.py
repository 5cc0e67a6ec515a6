"""No method can change the inputs of the methods run after it.

A run hands every method the same original model, the same initial weights, the same recorded
history and the same federation. A method that wrote into any of them in place (a plugin's
``state[k].neg_()``, say) would silently change the numbers of every method after it. The engine
therefore gives each step its own copy of the model states (cheap: one model each) and, for what
is too large to copy (the history and the clients' samples), compares a content digest taken
before the step with one taken after it: a change stops the run with a `ContractError` that
names the method.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fednot.data.federated import Federation
from fednot.errors import ContractError
from fednot.federation.history import TrainingHistory


def content_digest(value: Any) -> str:
    """A hash of every tensor (shape, dtype, values) and key in nested containers of ``value``."""
    digest = hashlib.sha256()
    _update(digest, value)
    return digest.hexdigest()


def _update(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"T{tuple(value.shape)}{value.dtype}".encode())
        digest.update(
            value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _update(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        digest.update(b"[")
        for item in value:
            _update(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


class InputGuard:
    """The digests of what a method's step shares with the other methods, taken before it runs.

    Args:
        federation: every client's (and the server's and the test set's) samples.
        fingerprint: ``federation.fingerprint()`` as the run knows it (the one in its cache
            keys), so that the samples are hashed once per step, after it.
        history: the recorded history handed to the method, if any.
    """

    def __init__(
        self, federation: Federation, fingerprint: str, history: TrainingHistory | None
    ) -> None:
        self.federation = federation
        self.history = history
        self._samples = fingerprint
        self._history = None if history is None else content_digest(history.to_payload())

    def check(self, method: str) -> None:
        """Raise if ``method``'s step changed the samples or the history it was handed.

        Raises:
            ContractError: naming the method and what it changed.
        """
        changed = []
        if self.federation.fingerprint() != self._samples:
            changed.append("the clients' samples (pixels or labels)")
        if self.history is not None and content_digest(self.history.to_payload()) != self._history:
            changed.append("the recorded training history")
        if changed:
            raise ContractError(
                f"Method {method!r} wrote into {' and '.join(changed)} in place, which every "
                "method after it would have read changed: the run is stopped. A method's step "
                "must leave its inputs as it found them; copy what it modifies (x.clone())."
            )
