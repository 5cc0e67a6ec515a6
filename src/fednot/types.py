"""Small shared types: state dicts and forget requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from fednot.errors import ConfigError

StateDict = dict[str, Tensor]
"""A model's ``state_dict()``: parameters and buffers by name."""

RequestKind = Literal["client", "class", "instance"]


@dataclass(frozen=True)
class ForgetRequest:
    """What a client (or several) asks the federation to forget.

    - Client-wise: ``ForgetRequest(clients=(0,))``: all training data of client 0. The client
      leaves: it takes no part in recovery.
    - Class-wise: ``ForgetRequest(clients=(0,), classes=(3,))``: client 0's samples of class 3.
      Name every client for a federation-wide class removal.
    - Instance-wise: ``ForgetRequest(clients=(0,), indices=(...))``: those samples (indices into
      the data set's training split, as in ``partition.json``), all held by the named clients.

    In the partial kinds the clients stay and recover on their retained data. The request
    carries ids only, never samples: it is what the server may know.
    """

    clients: tuple[int, ...]
    classes: tuple[int, ...] | None = None
    indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.clients:
            raise ConfigError("A forget request must name at least one client.")
        if len(set(self.clients)) != len(self.clients):
            raise ConfigError(f"A forget request names a client twice: {list(self.clients)}.")
        if self.classes is not None and self.indices is not None:
            raise ConfigError("A forget request gives either classes or indices, not both.")
        for name in ("classes", "indices"):
            value = getattr(self, name)
            if value is not None and not value:
                raise ConfigError(f"A forget request's {name} must not be empty.")

    @property
    def kind(self) -> RequestKind:
        """``client``, ``class`` or ``instance``."""
        if self.classes is not None:
            return "class"
        if self.indices is not None:
            return "instance"
        return "client"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "clients": list(self.clients),
            "classes": None if self.classes is None else list(self.classes),
            "indices": None if self.indices is None else list(self.indices),
        }
