"""Who is who, and who asks to be forgotten: the two QUERY rounds of a fednot run.

Flower's node ids are random 64-bit integers, new every run, and nothing on the server says
which data owner a node is. `identify_clients` asks every node for its fednot client id
(``query.identify``) and builds a `ClientMap`. `collect_requests` asks every node for its own
forget request (``query.request``) and screens each one: a node may ask only for the data of the
client it identified as. A request naming any other client is refused: it is logged and
ignored, the run goes on, and the refusal is recorded in the result.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fednot.errors import ConfigError, FedNotError
from fednot.integrations.flower.grid import wait_for_nodes
from fednot.integrations.flower.records import CONFIG, as_int, config_in, request_from_config
from fednot.types import ForgetRequest

logger = logging.getLogger("flwr.fednot")  # under flwr's logger: it reaches `flwr run --stream`


@dataclass(frozen=True)
class ClientMap:
    """The node of every fednot client id of a run (a bijection)."""

    node_of: dict[int, int]

    @property
    def client_of(self) -> dict[int, int]:
        """The fednot client id of every node."""
        return {node: client for client, node in self.node_of.items()}

    @property
    def ids(self) -> tuple[int, ...]:
        """Client ids, ascending."""
        return tuple(sorted(self.node_of))

    def nodes(self, clients: Iterable[int]) -> list[int]:
        """The nodes of ``clients``, in the given order."""
        return [self.node_of[c] for c in clients]


@dataclass(frozen=True)
class FiledRequest:
    """A request as a client filed it."""

    client: int
    request: ForgetRequest


@dataclass(frozen=True)
class Refusal:
    """A refused request: which node and client sent it, and why it was refused."""

    node: int
    client: int
    request: dict[str, object]
    reason: str


def query(grid: Grid, action: str, nodes: Iterable[int], timeout: float) -> list[Message]:
    """Send an empty ``query.<action>`` to each node; return the error-free replies."""
    messages = [
        Message(RecordDict({CONFIG: ConfigRecord()}), node, f"{MessageType.QUERY}.{action}")
        for node in nodes
    ]
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    for reply in replies:
        if reply.has_error():
            logger.warning(
                "Node %d failed to answer query.%s: %s",
                reply.metadata.src_node_id,
                action,
                reply.error.reason,
            )
    return [r for r in replies if not r.has_error()]


def identify_clients(grid: Grid, num_clients: int, *, timeout: float) -> ClientMap:
    """Wait for ``num_clients`` nodes and map each fednot client id to its node.

    Raises:
        FedNotError: if a client id is missing, out of range or declared by two nodes.
    """
    nodes = wait_for_nodes(grid, num_clients, timeout)
    claims: dict[int, list[int]] = defaultdict(list)
    for reply in query(grid, "identify", nodes, timeout):
        client = as_int(config_in(reply.content)["client-id"], "client-id")
        claims[client].append(reply.metadata.src_node_id)
    twice = {c: n for c, n in claims.items() if len(n) > 1}
    missing = sorted(set(range(num_clients)) - set(claims))
    if twice or missing or len(claims) != num_clients:
        raise FedNotError(
            f"Expected one node per fednot client 0..{num_clients - 1}; client ids claimed by "
            f"several nodes: {twice or 'none'}; client ids with no node: {missing or 'none'}; "
            f"claimed ids: {sorted(claims)}. Check each SuperNode's --node-config partition-id."
        )
    mapping = ClientMap({c: n[0] for c, n in claims.items()})
    logger.info("Client ids of the nodes: %s", mapping.client_of)
    return mapping


def screen_request(client: int, request: ForgetRequest) -> str | None:
    """Why a request from ``client`` must be refused, or ``None`` to accept it."""
    others = sorted(set(request.clients) - {client})
    if others:
        return (
            f"client {client} asked to forget data of client(s) {others}: a client may only ask "
            "for its own data to be forgotten"
        )
    return None


def collect_requests(
    grid: Grid, clients: ClientMap, *, timeout: float
) -> tuple[list[FiledRequest], list[Refusal]]:
    """Ask every node for its own forget request; accept each one that names only its sender."""
    accepted: list[FiledRequest] = []
    refused: list[Refusal] = []
    client_of = clients.client_of
    for reply in query(grid, "request", clients.nodes(clients.ids), timeout):
        node = reply.metadata.src_node_id
        config = config_in(reply.content)
        try:
            request = request_from_config(config)
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            refused.append(Refusal(node, client_of[node], {}, f"malformed request: {e}"))
            continue
        if request is None:
            continue
        reason = screen_request(client_of[node], request)
        if reason is None:
            accepted.append(FiledRequest(client_of[node], request))
        else:
            logger.warning("Refused the forget request of node %d: %s. Ignoring it.", node, reason)
            refused.append(Refusal(node, client_of[node], request.to_dict(), reason))
    return sorted(accepted, key=lambda f: f.client), refused


def merge_requests(filed: Iterable[FiledRequest], *, separate: bool) -> list[ForgetRequest]:
    """Group accepted requests into the requests to serve, in client order.

    Client-wise requests merge into one (the clients leave together), class-wise requests for
    the same classes merge, instance-wise requests merge; with ``separate`` (methods whose
    target runs a step of its own) every client's request is served on its own.
    """
    filed = sorted(filed, key=lambda f: f.client)
    if separate:
        return [f.request for f in filed]
    groups: dict[tuple[str, tuple[int, ...] | None], list[ForgetRequest]] = defaultdict(list)
    for f in filed:
        groups[(f.request.kind, f.request.classes)].append(f.request)
    merged = []
    for (kind, classes), requests in groups.items():
        clients = tuple(c for r in requests for c in r.clients)
        indices = None
        if kind == "instance":
            indices = tuple(sorted(i for r in requests for i in (r.indices or ())))
        merged.append(ForgetRequest(clients=clients, classes=classes, indices=indices))
    return merged
