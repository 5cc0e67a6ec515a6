"""A Grid that counts the bytes of the messages that travel through it.

`MeteredGrid` wraps the Grid a ServerApp receives and delegates everything to it; on the way it
adds up the content bytes of every message it sends and every reply it receives, per message
type, as flwr's ``message_size_mod`` counts them on the client (`records.message_bytes`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo  # pylint: disable=E0611
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fednot.errors import ConfigError, FedNotError
from fednot.integrations.flower.records import message_bytes


class MeteredGrid(Grid):
    """Delegates to ``grid``; `sent` and `received` count content bytes per message type.

    `send_and_receive` pulls replies every ``poll`` seconds.
    """

    def __init__(self, grid: Grid, poll: float = 0.05) -> None:
        self.grid = grid
        self.poll = poll
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()

    def set_run(self, run: Run) -> None:
        """Delegate."""
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        """The wrapped grid's run."""
        run: Run = self.grid.run
        return run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Delegate."""
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        """Delegate."""
        ids: Iterable[int] = self.grid.get_node_ids()
        return ids

    def get_nodes(self) -> Iterable[NodeInfo]:
        """Delegate (the nodes' details: public keys, names)."""
        nodes: Iterable[NodeInfo] = self.grid.get_nodes()
        return nodes

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Count, then delegate."""
        messages = list(messages)
        self._count_sent(messages)
        ids: Iterable[str] = self.grid.push_messages(messages)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Delegate, then count."""
        replies = list(self.grid.pull_messages(message_ids))
        self._count_received(replies)
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``, then pull their replies every ``poll`` seconds until all are in.

        Flower's own grids sleep 3 s between pulls, which a deployment round pays at least
        once; pulling through the public `pull_messages` sooner costs the SuperLink a cheap
        request. Stops after ``timeout`` seconds (``None``: waits for every reply).
        """
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            got = list(self.pull_messages(pending))
            replies += got
            pending -= {m.metadata.reply_to_message_id for m in got}
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.poll)
        return replies

    def total(self) -> int:
        """All bytes counted so far, both ways."""
        return sum(self.sent.values()) + sum(self.received.values())

    def _count_sent(self, messages: list[Message]) -> None:
        for message in messages:
            self.sent[message.metadata.message_type] += message_bytes(message)

    def _count_received(self, replies: list[Message]) -> None:
        for reply in replies:
            self.received[reply.metadata.message_type] += message_bytes(reply)


class WithoutNodes(MeteredGrid):
    """A metered grid that hides the nodes ``hidden`` and refuses to message them.

    ``hidden`` may be replaced between rounds (`UnlearningStrategy` adds the nodes it
    recognises as forgotten, and those it cannot identify yet).
    """

    def __init__(self, grid: Grid, hidden: set[int]) -> None:
        super().__init__(grid)
        self.hidden = hidden

    def get_node_ids(self) -> Iterable[int]:
        """The connected nodes, but the hidden ones."""
        return [n for n in super().get_node_ids() if n not in self.hidden]

    def get_nodes(self) -> Iterable[NodeInfo]:
        """The connected nodes' details, but the hidden ones'."""
        return [n for n in super().get_nodes() if n.node_id not in self.hidden]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Push, after checking that no message goes to a hidden node."""
        return super().push_messages(self._checked(messages))

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Send and receive, after checking that no message goes to a hidden node."""
        return super().send_and_receive(self._checked(messages), timeout=timeout)

    def _checked(self, messages: Iterable[Message]) -> list[Message]:
        messages = list(messages)
        bad = sorted({m.metadata.dst_node_id for m in messages} & self.hidden)
        if bad:
            raise ConfigError(f"The wrapped strategy addressed forgotten nodes {bad}.")
        return messages


def wait_for_nodes(grid: Grid, count: int, timeout: float, poll: float = 0.5) -> list[int]:
    """Wait until ``count`` nodes are connected; return their ids (sorted).

    Raises:
        FedNotError: if fewer are connected after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while len(nodes := sorted(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            raise FedNotError(
                f"Only {len(nodes)} of {count} SuperNodes connected within {timeout:.0f} s. Start "
                'one SuperNode per client (--node-config "partition-id=<k> num-partitions='
                f"{count}\"), or raise the run config's `node-timeout`."
            )
        time.sleep(poll)
    return nodes
