"""`UnlearningStrategy`: NoT (or FT, or Retrain) for any Flower app, around its own Strategy.

An operator who already runs Flower, with their own ClientApp, model and data, honours a
client's deletion request with four more lines on the server (two imports, the wrap and the
`unlearn` call) and none on the clients. Learning which node ids to forget is the app's own
business (examples/flower_app asks its nodes with a ``query`` round):

```python
strategy = UnlearningStrategy(FedAvg(), method=NoT(), model=Net())   # wraps their strategy
result = strategy.start(grid, arrays, num_rounds=20)                 # training, as before
unlearned = strategy.unlearn(grid, result.arrays, forget=[node_id], rounds=5)
```

`unlearn` runs the method's own step on the server, with fednot's code (NoT negates the first
layer of ``model``'s layer graph, or the ``layers`` named), then recovery rounds of the wrapped
strategy on every node but the forgotten ones: they receive no message from then on, in this
call and in any later `start`. FT skips the step; Retrain starts from ``initial_arrays`` instead.

Before anything changes, `unlearn` checks that the nodes left can meet the wrapped strategy's
minimums (``min_available_nodes`` and the like: flwr's sampling would wait for them forever) and
raises `TooFewNodesError` if not, unless ``adapt_minimums=True`` lowers them. Each step is logged
on flwr's logger, so it shows in ``flwr run --stream`` and ``flwr log``.

The deletion ledger: with ``ledger=DeletionLedger(path)``, the forgotten clients outlive the
ServerApp. Nodes are keyed by an identity that survives restarts (``identify``: the app's own by
default, or the SuperNode's public key; `fednot.integrations.flower.ledger`). Every round, nodes
not seen before are identified, and those the ledger lists are left out like this run's
forgotten ones; a node without an identity gets no message but the identity query. `unlearn`
writes the request's receipt as ``"started"`` before the method's step (the identities are on
disk before any recovery message goes out) and completes it after the recovery rounds.

Only methods that need nothing from the clients beyond ordinary training qualify (their
``Requirements()`` are empty): the recovery rounds are the app's own ``train`` messages.

Accounting: the unlearning's wire bytes per message type, as the grid sees them (each message's
records, counted as flwr's ``message_size_mod`` counts them), the rounds and the seconds. FLOPs
happen on the clients, in the app's own training code, and are not measured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from torch import nn

from fednot.errors import ConfigError, TooFewNodesError
from fednot.integrations.flower.grid import WithoutNodes
from fednot.integrations.flower.ledger import Identify, NodeRegister
from fednot.integrations.flower.node_count import lower_minimums, node_need
from fednot.integrations.flower.records import to_arrays, to_state
from fednot.seeding import SeedStreams
from fednot.store.ledger import DeletionLedger, Receipt
from fednot.types import ForgetRequest
from fednot.unlearning.base import Requirements, Unlearner
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.model_parts import ModelParts

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`


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
        receipt: the request's receipt in the ledger (with a ledger).
    """

    arrays: ArrayRecord
    method: str
    forgotten: list[int]
    notes: dict[str, Any] = field(default_factory=dict)
    recovery: Result | None = None
    bytes_sent: dict[str, int] = field(default_factory=dict)
    bytes_received: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    receipt: Receipt | None = None


class UnlearningStrategy(Strategy):
    """Wraps ``strategy`` so that the app can honour deletion requests; see the module docstring.

    Args:
        strategy: the app's own strategy (any `flwr.serverapp.strategy.Strategy`).
        method: a fednot method whose requirements are empty: `fednot.unlearning.NoT`
            (``layers=...``), `fednot.unlearning.FT` or `fednot.unlearning.Retrain`.
        model: the app's model (its architecture: NoT resolves its layers on it).
        initial_arrays: the model training started from (Retrain's start).
        seed: seeds the method's own streams.
        ledger: a `DeletionLedger` that keeps the forgotten clients across restarts: nodes whose
            identity it lists get no message but the identity query, and each `unlearn` leaves
            a receipt in it (see "The deletion ledger" in the module docstring).
        identify: how a node's identity is learnt (with ``ledger``); default: the app's own,
            `query_identity` (``query.identify``); or `public_key_identity`.
    """

    def __init__(
        self,
        strategy: Strategy,
        method: Unlearner,
        *,
        model: nn.Module,
        initial_arrays: ArrayRecord | None = None,
        seed: int = 0,
        ledger: DeletionLedger | None = None,
        identify: Identify | None = None,
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
        self.ledger = ledger
        self.register = None if ledger is None else NodeRegister(ledger, identify)

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
        adapt_minimums: bool = False,
    ) -> UnlearningResult:
        """Forget the nodes ``forget`` from the trained model ``arrays``.

        The method's step, then ``rounds`` rounds of the wrapped strategy without the forgotten
        nodes (FT: the rounds only; Retrain: ``rounds`` rounds from ``initial_arrays``). The
        other arguments are `Strategy.start`'s, but ``adapt_minimums``: if the nodes left are
        fewer than the wrapped strategy's minimums, lower those minimums to the nodes left (for
        this call and later ones) instead of raising `TooFewNodesError`.
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
        hidden = self._hidden(grid)
        context, left = self._context(nodes), len(connected - hidden - set(nodes))
        self._check_nodes(nodes, left, adapt=adapt_minimums)
        start = time.perf_counter()
        receipt = None  # with a ledger: the request on disk before anything changes
        if self.register is not None:
            receipt = self.register.begin(nodes, self.method, to_state(arrays))
        self.forgotten.update(nodes)
        metered = WithoutNodes(grid, self.forgotten | hidden)
        result = self.method.unlearn(to_state(arrays), context)
        title = self.method.title or self.method.name
        logger.info("%s forgets nodes %s: %s.", title, nodes, _step(self.method, result.notes))
        out = UnlearningResult(
            to_arrays(result.state), self.method.name, sorted(self.forgotten), result.notes
        )
        if result.schedule != "none" and rounds > 0:
            logger.info(
                "Recovery: %d rounds of %s on the %d nodes left; nodes %s get no message.",
                rounds,
                type(self.strategy).__name__,
                left,
                sorted(self.forgotten),
            )
            out.recovery = self.start(
                metered,
                out.arrays,
                num_rounds=rounds,
                timeout=timeout,
                train_config=train_config,
                evaluate_config=evaluate_config,
                evaluate_fn=evaluate_fn,
            )
            out.arrays = out.recovery.arrays
        out.bytes_sent, out.bytes_received = dict(metered.sent), dict(metered.received)
        out.seconds = time.perf_counter() - start
        if self.register is not None and receipt is not None:
            ran = rounds if out.recovery is not None else 0
            out.receipt = self.register.finish(
                receipt,
                notes=out.notes,
                rounds=ran,
                sent=out.bytes_sent,
                received=out.bytes_received,
                state=to_state(out.arrays),
            )
        logger.info("%s done in %.1f s; forgotten nodes: %s.", title, out.seconds, out.forgotten)
        return out

    def nodes_of(self, grid: Grid, identities: Iterable[str]) -> list[int]:
        """The connected nodes with these identities (for requests that name clients, not nodes).

        Needs a ledger (its ``identify``); new nodes are identified first. An identity already
        forgotten has no node here (its node gets no message).
        """
        if self.register is None:
            raise ConfigError("nodes_of() needs UnlearningStrategy(..., ledger=...).")
        hidden = self._hidden(grid)
        return [n for n in self.register.nodes_of(identities) if n not in hidden]

    def _check_nodes(self, nodes: list[int], left: int, *, adapt: bool) -> None:
        """Refuse (or, with ``adapt``, lower the minimums) if ``left`` nodes are too few."""
        need = node_need(self.strategy, left)
        required, reason = (need.required, need.reason) if need else (1, "a node to train on")
        forgotten = len(self.forgotten | set(nodes))
        if left < 1:
            raise TooFewNodesError(
                f"Cannot forget nodes {nodes}: no node would be left to train on ({forgotten} "
                "forgotten of those connected). Forget fewer nodes, or start more SuperNodes.",
                left=left,
                required=max(required, 1),
            )
        if required <= left:
            return
        if adapt and (changed := lower_minimums(self.strategy, left)):
            logger.warning("adapt_minimums=True: lowered %s.", ", ".join(changed))
            return
        raise TooFewNodesError(
            f"Cannot forget nodes {nodes}: {left} node(s) would be left (the forgotten get no "
            f"message), but the wrapped strategy waits for {required} ({reason}), so its rounds "
            "would wait forever ('Waiting for nodes to connect'). Nothing was changed. Start "
            f"more SuperNodes ({required + forgotten} in all; a simulation: flwr run <app> "
            f'--federation-config "num-supernodes={required + forgotten}"), lower the '
            f"strategy's minimums (min_available_nodes, min_train_nodes, min_evaluate_nodes) to "
            f"{left}, or pass adapt_minimums=True to unlearn() to have them lowered.",
            left=left,
            required=required,
        )

    def _grid(self, grid: Grid) -> Grid:
        """``grid`` without the forgotten nodes (and, with a ledger, the unidentified ones)."""
        hidden = self._hidden(grid)
        if isinstance(grid, WithoutNodes):
            grid.hidden = hidden
            return grid
        return WithoutNodes(grid, hidden) if hidden else grid

    def _hidden(self, grid: Grid) -> set[int]:
        """The nodes to leave out: the forgotten ones and, with a ledger, the unidentified ones.

        With a ledger, nodes not seen before are identified first, and a node whose identity
        the ledger lists is forgotten.
        """
        if self.register is None:
            return set(self.forgotten)
        gone, unknown = self.register.sort(grid)
        self.forgotten |= gone
        return self.forgotten | unknown

    def _context(self, nodes: list[int]) -> UnlearnContext:
        """The context on the server of an app: the model and the request, no client data."""
        if self.initial_arrays is None and self.method.schedule == "train":
            raise ConfigError(
                f"{self.method.title or self.method.name} starts from the initial weights: "
                "pass initial_arrays=... to UnlearningStrategy."
            )
        initial = to_state(self.initial_arrays) if self.initial_arrays is not None else {}
        return UnlearnContext.create(
            self.method,
            ForgetRequest(clients=tuple(nodes)),
            ModelParts(self.model, initial),
            SeedStreams(self.seed),
        )


def _step(method: Unlearner, notes: dict[str, Any]) -> str:
    """The method's server-side step, in words."""
    if "negated_parameters" in notes:
        return f"negated {', '.join(notes['negated_parameters'])}"
    if method.schedule == "train":
        return "restarted from initial_arrays"
    return "no server-side step"
