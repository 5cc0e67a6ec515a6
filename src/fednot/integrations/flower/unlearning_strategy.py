"""`UnlearningStrategy`: NoT (or FT, or Retrain) for any Flower app, around its own Strategy.

An operator who already runs Flower, with their own ClientApp, model and data, honours a
client's deletion request with three more lines on the server and none on the clients:

```python
strategy = UnlearningStrategy(FedAvg(), method=NoT(), model=Net())   # wraps their strategy
result = strategy.start(grid, arrays, num_rounds=20)                 # training, as before
unlearned = strategy.unlearn(grid, result.arrays, forget=[node_id], rounds=5)
```

`unlearn` runs the method's own step on the server, with fednot's code (NoT negates the first
layer of ``model``'s layer graph, or the ``layers`` named), then recovery rounds of the wrapped
strategy on every node but the forgotten ones: they receive no message from then on, in this
call and in any later `start`. FT skips the step; Retrain starts from ``initial_arrays`` instead.
Only methods that need nothing from the clients beyond ordinary training qualify (their
``Requirements()`` are empty): the recovery rounds are the app's own ``train`` messages.

Accounting: the unlearning's wire bytes per message type, as the grid sees them (each message's
records, counted as flwr's ``message_size_mod`` counts them), the rounds and the seconds. FLOPs
happen on the clients, in the app's own training code, and are not measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from torch import nn

from fednot.data.federated import Federation, Preprocess, Samples
from fednot.data.source import ImageSet
from fednot.errors import ConfigError
from fednot.integrations.flower.grid import MeteredGrid
from fednot.integrations.flower.records import to_arrays, to_state
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest
from fednot.unlearning.base import Requirements, Unlearner
from fednot.unlearning.context import UnlearnContext


@dataclass
class UnlearningResult:
    """What `UnlearningStrategy.unlearn` did.

    Attributes:
        arrays: the unlearned global model.
        method: the method's registry name.
        forgotten: the node ids left out (this request's and earlier ones').
        notes: what the method's step recorded (e.g. NoT's negated parameters).
        recovery: the wrapped strategy's `Result` of the recovery (or Retrain) rounds.
        bytes_sent: the unlearning's message bytes from the server, by message type.
        bytes_received: the replies' bytes, by message type.
        seconds: wall time of the step and the rounds.
    """

    arrays: ArrayRecord
    method: str
    forgotten: list[int]
    notes: dict[str, Any] = field(default_factory=dict)
    recovery: Result | None = None
    bytes_sent: dict[str, int] = field(default_factory=dict)
    bytes_received: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class _Without(MeteredGrid):
    """A metered grid that hides the forgotten nodes and refuses to message them."""

    def __init__(self, grid: Grid, forgotten: set[int]) -> None:
        super().__init__(grid)
        self.forgotten = forgotten

    def get_node_ids(self) -> Iterable[int]:
        """The connected nodes, but the forgotten ones."""
        return [n for n in super().get_node_ids() if n not in self.forgotten]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Push, after checking that no message goes to a forgotten node."""
        messages = self._checked(messages)
        return super().push_messages(messages)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Send and receive, after checking that no message goes to a forgotten node."""
        return super().send_and_receive(self._checked(messages), timeout=timeout)

    def _checked(self, messages: Iterable[Message]) -> list[Message]:
        messages = list(messages)
        bad = sorted({m.metadata.dst_node_id for m in messages} & self.forgotten)
        if bad:
            raise ConfigError(f"The wrapped strategy addressed forgotten nodes {bad}.")
        return messages


class UnlearningStrategy(Strategy):
    """Wraps ``strategy`` so that the app can honour deletion requests; see the module docstring.

    Args:
        strategy: the app's own strategy (any `flwr.serverapp.strategy.Strategy`).
        method: a fednot method whose requirements are empty: `fednot.unlearning.NoT`
            (``layers=...``), `fednot.unlearning.FT` or `fednot.unlearning.Retrain`.
        model: the app's model (its architecture: NoT resolves its layers on it).
        initial_arrays: the model training started from (Retrain's start).
        seed: seeds the method's own streams.
    """

    def __init__(
        self,
        strategy: Strategy,
        method: Unlearner,
        *,
        model: nn.Module,
        initial_arrays: ArrayRecord | None = None,
        seed: int = 0,
    ) -> None:
        if method.requirements != Requirements():
            raise ConfigError(
                f"{method.title or method.name} needs {method.requirements.describe()}, which an "
                "app's own clients do not provide; UnlearningStrategy runs methods that need "
                "nothing but ordinary training: not, not_wb, ft, retrain."
            )
        method.validate(model)
        self.strategy = strategy
        self.method = method
        self.model = model
        self.initial_arrays = initial_arrays
        self.seed = seed
        self.forgotten: set[int] = set()

    # -- the wrapped strategy, minus the forgotten nodes -------------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's messages, sampled among the nodes not forgotten."""
        return self.strategy.configure_train(server_round, arrays, config, self._grid(grid))

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The wrapped strategy's aggregation."""
        return self.strategy.aggregate_train(server_round, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's messages, sampled among the nodes not forgotten."""
        return self.strategy.configure_evaluate(server_round, arrays, config, self._grid(grid))

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """The wrapped strategy's aggregation."""
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        """The wrapped strategy's summary."""
        self.strategy.summary()

    # -- a deletion request ------------------------------------------------------------------

    def unlearn(
        self,
        grid: Grid,
        arrays: ArrayRecord,
        forget: Iterable[int],
        *,
        rounds: int,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> UnlearningResult:
        """Forget the nodes ``forget`` from the trained model ``arrays``.

        The method's step, then ``rounds`` rounds of the wrapped strategy without the forgotten
        nodes (FT: the rounds only; Retrain: ``rounds`` rounds from ``initial_arrays``). The
        other arguments are `Strategy.start`'s.
        """
        nodes = sorted(set(forget))
        connected = set(grid.get_node_ids())
        unknown = [n for n in nodes if n not in connected]
        if not nodes or unknown:
            raise ConfigError(
                f"Expected the node ids of connected clients to forget, got {list(nodes)}"
                + (f" ({unknown} not connected)." if unknown else ".")
            )
        if rounds < 0:
            raise ConfigError(f"Expected `rounds` to be >= 0, got {rounds}.")
        start = time.perf_counter()
        self.forgotten.update(nodes)
        metered = _Without(grid, self.forgotten)
        result = self.method.unlearn(to_state(arrays), self._context(nodes))
        out = UnlearningResult(
            to_arrays(result.state), self.method.name, sorted(self.forgotten), result.notes
        )
        if result.schedule != "none" and rounds > 0:
            out.recovery = self.start(
                metered, out.arrays, num_rounds=rounds, timeout=timeout, train_config=train_config,
                evaluate_config=evaluate_config, evaluate_fn=evaluate_fn,
            )  # fmt: skip
            out.arrays = out.recovery.arrays
        out.bytes_sent, out.bytes_received = dict(metered.sent), dict(metered.received)
        out.seconds = time.perf_counter() - start
        return out

    def _grid(self, grid: Grid) -> Grid:
        return grid if not self.forgotten or isinstance(grid, _Without) else _Without(
            grid, self.forgotten
        )  # fmt: skip

    def _context(self, nodes: list[int]) -> UnlearnContext:
        """The engine's context on the server of an app: the model, no client data."""
        if self.initial_arrays is None and self.method.schedule == "train":
            raise ConfigError(
                f"{self.method.title or self.method.name} starts from the initial weights: "
                "pass initial_arrays=... to UnlearningStrategy."
            )
        initial = to_state(self.initial_arrays) if self.initial_arrays is not None else {}
        return UnlearnContext(
            method=self.method.name, requirements=self.method.requirements,
            request=ForgetRequest(clients=tuple(nodes)), retained=_no_client_data(),
            model=self.model, initial_state=initial, streams=SeedStreams(self.seed),
        )  # fmt: skip


def _no_client_data() -> Federation:
    """A federation with no client: the app keeps its data, and the methods here read none."""
    empty = torch.zeros(0, dtype=torch.int64)
    samples = Samples(ImageSet(torch.zeros(0, 1, 1, 1, dtype=torch.uint8), empty, ()), empty)
    return Federation((), samples, Preprocess(torch.zeros(1), torch.ones(1)), 0, (1, 1, 1))
