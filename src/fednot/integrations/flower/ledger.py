"""Who a node is across restarts: the identities a deletion ledger is keyed by.

`NodeRegister` is `UnlearningStrategy`'s side of the ledger (other people's apps);
`ClientLedger` is fednot's own apps' side (`run_fednot`), keyed by fednot client ids.

Flower's node ids are random and new whenever a SuperNode registers, and a simulation draws new
ones every run, so a deletion ledger (`fednot.store.ledger.DeletionLedger`) cannot be keyed by
them. An ``identify`` callable maps the node ids the server does not know yet to identities
that survive restarts: ``identify(grid, node_ids) -> {node_id: identity}``; a node it leaves
out is unidentified, and gets no message but the identity query until it is identified.

Two are provided:

- `query_identity` (the default): the app's own client identity. It sends each new node an
  empty ``query.identify`` message; the ClientApp answers with a `ConfigRecord` ``"config"``
  holding ``"identity"`` (the quickstart's ``partition-id``, a data owner's account, ...).
  This works in simulation and in any deployment, but it trusts what a node declares, and a
  forgotten node receives that one query (no model, no training) in each new ServerApp run,
  before it is recognised.
- `public_key_identity`: the SuperNode's public key, which Flower 1.42 passes to a ServerApp
  through ``Grid.get_nodes()`` (`NodeInfo.public_key`). With node authentication on
  (``flower-superlink --enable-supernode-auth`` and keys registered with
  ``flwr supernode register``) the key is pinned to its owner, so the identity cannot be
  forged and no message is needed to learn it. Without authentication a SuperNode may come
  back with a new key, and a simulation draws random keys every run: use the app's identity.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from flwr.serverapp import Grid

from fednot.errors import ConfigError
from fednot.integrations.flower.grid import MeteredGrid
from fednot.integrations.flower.identity import query
from fednot.integrations.flower.records import config_in
from fednot.integrations.flower.result import ServedRequest
from fednot.integrations.flower.session import ServerSession
from fednot.store.ledger import DeletionLedger, Receipt, state_digest
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`

Identify = Callable[[Grid, Sequence[int]], Mapping[int, str]]
"""``identify(grid, node_ids) -> {node_id: identity}``; nodes left out are unidentified."""

IDENTITY_KEY = "identity"
"""The key of the identity in the ``"config"`` record of a ``query.identify`` reply."""


def query_identity(*, action: str = "identify", timeout: float = 600.0) -> Identify:
    """Identities the ClientApp declares, answering an empty ``query.<action>`` message.

    ``timeout``: seconds to wait for the replies (it returns as soon as every node answered; a
    node's first message may wait for its ClientApp to start, which takes minutes on a loaded
    machine). A node that does not answer in time stays unidentified and is asked again.

    The ClientApp's handler (plain Flower)::

        @app.query("identify")
        def identify(msg: Message, context: Context) -> Message:
            identity = ConfigRecord({"identity": str(context.node_config["partition-id"])})
            return Message(RecordDict({"config": identity}), reply_to=msg)
    """

    def identify(grid: Grid, nodes: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for reply in query(grid, action, nodes, timeout):
            try:
                found[reply.metadata.src_node_id] = str(config_in(reply.content)[IDENTITY_KEY])
            except KeyError:
                logger.warning(
                    "Node %d answered query.%s without a 'config' record holding %r.",
                    reply.metadata.src_node_id,
                    action,
                    IDENTITY_KEY,
                )
        return found

    return identify


def public_key_identity(grid: Grid, nodes: Sequence[int]) -> dict[int, str]:
    """``"key:<sha256 of the SuperNode's public key, 32 hex digits>"`` from ``grid.get_nodes()``.

    Raises:
        ConfigError: the grid reports no public key for a node (a grid that does not implement
            `Grid.get_nodes`, such as a test grid).
    """
    keys = {info.node_id: bytes(info.public_key) for info in grid.get_nodes()}
    missing = [n for n in nodes if n in keys and not keys[n]]
    if missing:
        raise ConfigError(
            f"The grid reports no public key for nodes {missing}: identify nodes by the app's "
            "own identity instead (identify=query_identity())."
        )
    return {n: f"key:{hashlib.sha256(keys[n]).hexdigest()[:32]}" for n in nodes if n in keys}


class NodeRegister:
    """Who each node of this run is, against the ledger: `UnlearningStrategy`'s ledger side.

    Args:
        ledger: the deletion ledger.
        identify: how nodes are identified (default: `query_identity`).
    """

    def __init__(self, ledger: DeletionLedger, identify: Identify | None = None) -> None:
        self.ledger = ledger
        self.identify = identify or query_identity()
        self.identity_of: dict[int, str] = {}  # node id -> identity, in this run

    def sort(self, grid: Grid) -> tuple[set[int], set[int]]:
        """``(forgotten, unidentified)`` nodes of ``grid``, identifying new nodes first.

        Raises:
            ConfigError: no connected node told its identity (the ClientApp lacks the handler).
        """
        raw = grid.grid if isinstance(grid, MeteredGrid) else grid  # queries are not unlearning
        connected = list(raw.get_node_ids())
        new = [n for n in connected if n not in self.identity_of]
        if new:
            self.identity_of.update(self.identify(raw, new))
            if not any(n in self.identity_of for n in connected):
                raise ConfigError(
                    f"No node told its identity (nodes {new}), so none can be checked against "
                    f"the deletion ledger {self.ledger.path}. Answer the identity query in the "
                    "ClientApp (fednot.integrations.flower.ledger.query_identity shows how; if "
                    "the nodes answer it but slowly, give query_identity a longer timeout), or "
                    "pass identify=public_key_identity where SuperNode authentication is on."
                )
        gone = self.ledger.forgotten
        forgotten = {n for n, i in self.identity_of.items() if i in gone}
        unknown = {n for n in connected if n not in self.identity_of}
        if unknown:
            logger.warning("Nodes %s have no identity yet: they get no message.", sorted(unknown))
        return forgotten, unknown

    def nodes_of(self, identities: Iterable[str]) -> list[int]:
        """The nodes identified so far with these identities."""
        wanted = set(identities)
        return sorted(n for n, i in self.identity_of.items() if i in wanted)

    def begin(self, nodes: list[int], method: Unlearner, state: StateDict) -> Receipt:
        """Record the request of ``nodes`` as started (their identities on disk); return it."""
        unknown = [n for n in nodes if n not in self.identity_of]
        if unknown:
            raise ConfigError(f"Cannot record nodes {unknown} in the ledger: no identity.")
        identities = sorted({self.identity_of[n] for n in nodes})
        receipt = self.ledger.begin(
            identities,
            nodes,
            method.name,
            settings=method.options(),
            digest_before=state_digest(state),
        )
        logger.info(
            "Ledger %s: forgetting %s (request %s).",
            self.ledger.path,
            identities,
            receipt.request_id,
        )
        return receipt

    def finish(
        self,
        receipt: Receipt,
        *,
        notes: dict[str, Any],
        rounds: int,
        sent: dict[str, int],
        received: dict[str, int],
        state: StateDict,
    ) -> Receipt:
        """Complete ``receipt``: the step's notes, the recovery's rounds and bytes, the model."""
        return self.ledger.finish(
            receipt,
            step=notes,
            recovery_rounds=rounds,
            bytes_sent=sent,
            bytes_received=received,
            digest_after=state_digest(state),
        )


class ClientLedger:
    """fednot's own apps' side of the ledger: identities are fednot client ids (``"3"``).

    A node tells its client id (its ``partition-id``) when the run identifies it, so the ledger
    needs no identity of its own. `run_fednot` leaves the `forgotten` clients out of the whole
    run (no training, no request query) and records every request it serves (`record`).

    Args:
        path: the ledger file (``""``: no ledger; nothing is read or recorded).

    Raises:
        LedgerError: the file is damaged (never read as an empty ledger).
    """

    def __init__(self, path: str) -> None:
        self.ledger = DeletionLedger(path) if path else None

    def forgotten(self, clients: Sequence[int]) -> list[int]:
        """Those of ``clients`` that a client-wise request in the ledger forgot.

        Raises:
            ConfigError: the ledger forgot every one of ``clients``: none is left to train.
        """
        if self.ledger is None:
            return []
        gone = sorted(c for c in clients if str(c) in self.ledger.forgotten)
        if gone and len(gone) == len(clients):
            raise ConfigError(f"The ledger {self.ledger.path} forgot every client: none can train.")
        if gone:
            logger.info(
                "Ledger %s: clients %s were forgotten; they take no part.", self.ledger.path, gone
            )
        return gone

    def record(
        self,
        session: ServerSession,
        method: Unlearner,
        request: ForgetRequest,
        state: StateDict,
        serve: Callable[[], tuple[ServedRequest, StateDict]],
    ) -> tuple[ServedRequest, StateDict]:
        """``serve()`` the request from ``state``, its receipt begun before and finished after.

        The receipt: the requesting clients' ids and nodes, the method and its options, the
        request's kind and entries, the model's digest before and after, the step's notes, the
        recovery rounds, and the bytes the serving added to the grid's counts (by message type).
        """
        if self.ledger is None:
            return serve()
        receipt = self.ledger.begin(
            [str(c) for c in request.clients],
            session.clients.nodes(request.clients),
            method.name,
            settings=method.options(),
            digest_before=state_digest(state),
            kind=request.kind,
            request=request.to_dict(),
        )
        logger.info(
            "Ledger %s: %s request of clients %s (request %s).",
            self.ledger.path,
            request.kind,
            list(request.clients),
            receipt.request_id,
        )
        sent, received = Counter(session.grid.sent), Counter(session.grid.received)
        served, after = serve()
        self.ledger.finish(
            receipt,
            step=served.outcome.notes,
            recovery_rounds=len(served.outcome.log.rounds),
            bytes_sent=dict(session.grid.sent - sent),
            bytes_received=dict(session.grid.received - received),
            digest_after=state_digest(after),
        )
        return served, after
