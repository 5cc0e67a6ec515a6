"""What the engine hands a method beyond the always-available context: only what it declares.

A method's `Requirements` say whether it reads the stored training history and the server's
own data. These functions resolve each declaration against what the run has, and refuse with a
`ConfigError` naming the fix when a declared need cannot be met. `Experiment.unlearn` calls
them; `UnlearnContext` then withholds everything undeclared.
"""

from __future__ import annotations

from fednot.data.federated import Federation, Samples, UnlabeledSamples
from fednot.errors import ConfigError
from fednot.federation.history import TrainingHistory
from fednot.federation.outcome import Trained
from fednot.unlearning.base import Unlearner


def history_for(method: Unlearner, trained: Trained) -> TrainingHistory | None:
    """The part of ``trained``'s recorded history that ``method`` declared, or ``None``."""
    spec = method.history_spec()
    if spec is None or not method.requirements.history:
        return None
    if trained.history is None:
        raise ConfigError(
            f"Method {method.name!r} needs the training history, but the model was "
            f"pre-trained without it. Pre-train with `pretrain(history={spec})`."
        )
    return trained.history.restrict(spec)


def server_data_for(method: Unlearner, federation: Federation) -> Samples | None:
    """The server's slice of the training pool, without labels (``None`` if there is none).

    The context still hands it only to methods that declare ``server_data``.
    """
    server = federation.server
    if method.requirements.server_data and server is None:
        raise ConfigError(
            f"Method {method.name!r} needs data held by the server. Reserve a slice of the "
            "training pool for it with data.server_samples (e.g. --set "
            "data.server_samples=500); no client will hold those samples."
        )
    return None if server is None else UnlabeledSamples(server.source, server.indices)
