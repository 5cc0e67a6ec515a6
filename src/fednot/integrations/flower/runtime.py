"""What a ClientApp knows about itself: its fednot client id, its data, its model and streams.

A node says which data owner it is through its ``node_config``: ``partition-id`` (0..N-1), set
by the simulation runtime or by the operator (``flower-supernode --node-config
"partition-id=3 num-partitions=10"``). Everything else is rebuilt from the run configuration
with fednot's own functions, so a client trains exactly what the in-process engine trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fednot.data.federated import Federation, Samples
from fednot.data.forget import split_request
from fednot.environment import place_model
from fednot.errors import ConfigError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import FlopMeter
from fednot.integrations.flower.records import parse_request
from fednot.integrations.flower.settings import ConfigValue, FlowerSettings, load_federation
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest, StateDict

DataPart = str  # "train" | "val" | "retained" | "retained-val" | "forget"
_PARTS = ("train", "val", "retained", "retained-val", "forget")


@dataclass(eq=False)
class ClientRuntime:
    """One client's view of a run (memoised per process by `client_runtime`)."""

    settings: FlowerSettings
    client_id: int
    federation: Federation
    model: nn.Module
    flops: FlopMeter
    streams: SeedStreams

    @property
    def device(self) -> torch.device:
        """Where the client computes (``device`` of the fednot configuration)."""
        return torch.device(self.settings.config.device)

    def new_model(self) -> nn.Module:
        """A fresh instance of the run's architecture (e.g. a teacher), placed as the engine's."""
        layout = self.settings.config.memory_format
        return place_model(_model(self.settings, self.federation), self.device, layout)

    def initial_state(self) -> StateDict:
        """The run's initial weights, drawn as the engine draws them (stream ``init``)."""
        init = _model(self.settings, self.federation, self.streams.torch("init"))
        return clone_state(init.state_dict())

    def data(self, part: DataPart, request: ForgetRequest | None = None) -> Samples:
        """The client's own samples: ``train``, ``val``, or the two sides of ``request``."""
        if part not in _PARTS:
            raise ConfigError(f"Expected a data part among {_PARTS}, got {part!r}.")
        own = self.federation.client(self.client_id)
        if part in ("train", "val"):
            return own.train if part == "train" else own.val
        if request is None:
            raise ConfigError(f"The data part {part!r} needs the forget request in the message.")
        split = split_request(self.federation, self.own_part(request))
        if part == "forget":
            return split.forget
        kept = [c for c in split.retained.clients if c.id == self.client_id]
        if part == "retained-val":  # the engine's validation split of a partial target
            return kept[0].val if kept else own.val.view(own.val.indices[:0])
        return kept[0].train if kept else own.train.view(own.train.indices[:0])

    def own_part(self, request: ForgetRequest) -> ForgetRequest:
        """The part of ``request`` that concerns this client (it may name several clients)."""
        if self.client_id not in request.clients:
            raise ConfigError(
                f"Client {self.client_id} was sent a request for clients {list(request.clients)}."
            )
        indices = request.indices
        if indices is not None:
            mine = set(self.federation.client(self.client_id).train.indices.tolist())
            indices = tuple(i for i in indices if i in mine)
        return ForgetRequest(clients=(self.client_id,), classes=request.classes, indices=indices)

    def own_request(self, node_config: Mapping[str, ConfigValue]) -> ForgetRequest | None:
        """The request this client files, if any (see `request_text`)."""
        text = request_text(node_config, self.settings, self.client_id)
        return None if text is None else parse_request(text, self.client_id)


def request_text(
    node_config: Mapping[str, ConfigValue], settings: FlowerSettings, client_id: int
) -> str | None:
    """Where a client's request comes from, first match wins.

    1. ``node_config["forget"]``: set by the data owner on its own SuperNode
       (``--node-config "partition-id=1 forget='client'"``);
    2. ``node_config["forget-file"]``: a file on the data owner's host holding the request text,
       read at every request round (a missing or empty file means no request), so a request
       can be filed without restarting the SuperNode;
    3. the run configuration's ``forget-requests`` entry addressed to this client id, for
       runtimes whose node configs are fixed (simulation).
    """
    if str(node_config.get("forget", "")).strip():
        return str(node_config["forget"])
    path = str(node_config.get("forget-file", "")).strip()
    if path:
        file = Path(path).expanduser()
        text = file.read_text().strip() if file.exists() else ""
        return text or None
    return settings.relayed_request(client_id)


def client_id_of(node_config: Mapping[str, ConfigValue], num_clients: int) -> int:
    """The fednot client id a node declares in its ``node_config`` (``partition-id``)."""
    if "partition-id" not in node_config:
        raise ConfigError(
            "This SuperNode has no `partition-id` in its node config; start it with "
            '--node-config "partition-id=<k> num-partitions=<N>" (k = its fednot client id).'
        )
    client_id = int(node_config["partition-id"])
    declared = int(node_config.get("num-partitions", num_clients))
    if declared != num_clients or not 0 <= client_id < num_clients:
        raise ConfigError(
            f"This SuperNode declares partition-id={client_id} num-partitions={declared}, but "
            f"the run's federation has {num_clients} clients (data.num_clients)."
        )
    return client_id


_RUNTIMES: dict[tuple[str, int], ClientRuntime] = {}


def client_runtime(
    settings: FlowerSettings, node_config: Mapping[str, ConfigValue]
) -> ClientRuntime:
    """The memoised `ClientRuntime` of this process for ``settings`` and this node."""
    client_id = client_id_of(node_config, settings.num_clients)
    key = (settings.key(), client_id)
    if key not in _RUNTIMES:
        if settings.config.threads is not None:
            torch.set_num_threads(settings.config.threads)
        federation = load_federation(settings)
        model = place_model(
            _model(settings, federation), settings.config.device, settings.config.memory_format
        )
        _RUNTIMES.clear()  # one run at a time per process
        _RUNTIMES[key] = ClientRuntime(
            settings, client_id, federation, model, FlopMeter(model), SeedStreams(settings.seed)
        )
    return _RUNTIMES[key]


def _model(
    settings: FlowerSettings, federation: Federation, generator: torch.Generator | None = None
) -> nn.Module:
    config = settings.config.model
    return create_model(
        config.name,
        input_shape=federation.input_shape,
        num_classes=federation.num_classes,
        options=config.options,
        generator=generator,
    )
