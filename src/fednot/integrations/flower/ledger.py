"""Who a node is across restarts: the identities `UnlearningStrategy` keys its ledger by.

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
from collections.abc import Callable, Mapping, Sequence

from flwr.serverapp import Grid

from fednot.errors import ConfigError
from fednot.integrations.flower.identity import query
from fednot.integrations.flower.records import config_in

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`

Identify = Callable[[Grid, Sequence[int]], Mapping[int, str]]
"""``identify(grid, node_ids) -> {node_id: identity}``; nodes left out are unidentified."""

IDENTITY_KEY = "identity"
"""The key of the identity in the ``"config"`` record of a ``query.identify`` reply."""


def query_identity(*, action: str = "identify", timeout: float = 60.0) -> Identify:
    """Identities the ClientApp declares, answering an empty ``query.<action>`` message.

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
